using Replayer.Core;
using Replayer.Formats;
using Replayer.Gen;
using Replayer.Gen.Sim;
using Replayer.Replay;

namespace Replayer.Gen.Tests;

/// <summary>Runs the real pipeline on a generated capture: raw text → TraceOpener → Audit (seed-era adapter + invariants).</summary>
static class SeedCheck
{
    public static readonly Dictionary<string, string> Ids = new()
    {
        ["I1"] = "file-mapped-conservation", ["I2"] = "commit-before-remap", ["I3"] = "migration-flag-lifetime",
        ["I4"] = "unmap-null-mapping", ["I5"] = "anon-vma-lifetime", ["I6"] = "migration-entry-balance", ["I7"] = "migrate-summary-consistency",
    };

    public static List<TraceEvent> Read(string tracePath)
    {
        using var r = TraceOpener.Open(tracePath);
        var list = new List<TraceEvent>();
        while (r.Read() is { } e) list.Add(e);
        Assert.Equal(0, r.Stats.UnparsedLines);
        return list;
    }

    public static AuditResult Audit(string tracePath)
    {
        using var r = TraceOpener.Open(tracePath);
        var events = new List<TraceEvent>();
        while (r.Read() is { } e) events.Add(e);
        Assert.Equal(0, r.Stats.UnparsedLines);
        return Replay.Audit.Run(events, new AuditOptions { TracePath = tracePath, Header = r.Header });
    }

    /// <summary>(id, kind, pfns, time) of a checker finding; the kind is the explanation's prefix.</summary>
    public static string Key(Finding f) =>
        $"{f.InvariantId} {f.Explanation[..f.Explanation.IndexOf(':')]} {string.Join(",", f.Pfns.Select(p => p.ToString("x")))} @{f.Timestamp}";

    public static string Key(ExpectedFinding f) =>
        $"{Ids[f.Invariant]} {f.Kind} {string.Join(",", f.Pfns.Select(p => p.ToString("x")))} @{f.TimeNs}";

    /// <summary>Generates into a fresh temp folder and audits it.</summary>
    public static (GenResult Gen, AuditResult Audit) GenerateAndAudit(string scenario, ulong seed, string dir)
    {
        var g = Scenarios.Generate(scenario, seed);
        Output.WriteFolder(g, dir);
        return (g, Audit(Path.Combine(dir, Output.TraceFile)));
    }
}
