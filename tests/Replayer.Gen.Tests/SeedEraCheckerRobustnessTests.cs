using System.Text.RegularExpressions;
using Replayer.Gen;
using Replayer.Replay;

namespace Replayer.Gen.Tests;

/// <summary>
/// The checker on captures that are not whole: it must never report on state it does not know.
/// A capture that starts mid-run or has lost events may miss findings, but every finding it reports
/// must be one the simulation caused (same invariant, kind, pfns and time).
/// </summary>
public partial class SeedEraCheckerRobustnessTests
{
    static readonly string[] All = Scenarios.All.Select(s => s.Name).ToArray();

    static List<string> Keys(AuditResult r) => r.Findings.Select(SeedCheck.Key).ToList();

    static void WriteVariant(string dir, Replayer.Gen.GenResult g, Func<List<string>, List<string>> edit)
    {
        Output.WriteFolder(g, dir);
        var path = Path.Combine(dir, Output.TraceFile);
        var lines = File.ReadAllLines(path).ToList();
        File.WriteAllText(path, string.Join("\n", edit(lines)) + "\n");
    }

    [Fact]
    public void A_capture_that_starts_mid_run_never_invents_findings()
    {
        var dir = Replayer.TestKit.Repo.TempDir("seed-cut");
        var rng = new Random(7);
        int partial = 0;
        try
        {
            for (ulong seed = 1; seed <= 300; seed++)
            {
                var g = Scenarios.Generate(All[(int)(seed % (ulong)All.Length)], seed);
                int header = 11, events = g.Events.Count;
                int cut = rng.Next(1, events);
                WriteVariant(dir, g, lines => lines.Take(header).Concat(lines.Skip(header + cut)).ToList());
                var audit = SeedCheck.Audit(Path.Combine(dir, Output.TraceFile));
                var oracle = g.Findings.Select(SeedCheck.Key).ToHashSet();
                foreach (var k in Keys(audit)) Assert.True(oracle.Contains(k), $"{g.Scenario} --seed {seed} cut {cut}: invented {k}");
                if (audit.Findings.Length < g.Findings.Count(f => f.TimeNs > g.Events[cut].Timestamp)) partial++;
            }
        }
        finally { Directory.Delete(dir, true); }
        Assert.True(partial > 0, "cutting the head never hid a finding: the unknown-state path is not exercised");
    }

    [Fact]
    public void Lost_events_make_state_unknown_and_never_invent_findings()
    {
        var dir = Replayer.TestKit.Repo.TempDir("seed-lost");
        var rng = new Random(11);
        try
        {
            for (ulong seed = 1; seed <= 400; seed++)
            {
                var g = Scenarios.Generate(All[(int)(seed % (ulong)All.Length)], seed);
                int at = 11 + rng.Next(1, g.Events.Count);
                // drop a few events and say so, as the kernel does
                int drop = rng.Next(1, 12);
                WriteVariant(dir, g, lines =>
                {
                    var l = lines.Take(at).ToList();
                    l.Add("CPU:1 [LOST " + drop + " EVENTS]");
                    l.AddRange(lines.Skip(at + drop));
                    return l;
                });
                var audit = SeedCheck.Audit(Path.Combine(dir, Output.TraceFile));
                Assert.Equal(1, audit.DataLossEvents);
                var oracle = g.Findings.Select(SeedCheck.Key).ToHashSet();
                foreach (var k in Keys(audit)) Assert.True(oracle.Contains(k), $"{g.Scenario} --seed {seed} loss at line {at}: invented {k}");
            }
        }
        finally { Directory.Delete(dir, true); }
    }

    [GeneratedRegex(@" newpage=0x[0-9a-f]+(?= anon=)")]
    private static partial Regex PrepareNewpage();

    [Fact]
    public void Prepare_without_a_newpage_argument_gives_the_same_findings()
    {
        // 2.6.34's mem_cgroup_prepare_migration(page, &mem) has no newpage: a real probe cannot fetch it.
        var dir = Replayer.TestKit.Repo.TempDir("seed-nonew");
        try
        {
            for (ulong seed = 1; seed <= 200; seed++)
            {
                var g = Scenarios.Generate(All[(int)(seed % (ulong)All.Length)], seed);
                WriteVariant(dir, g, lines => lines.Select(l => l.Contains(" mem_cgroup_prepare_migration: (") ? PrepareNewpage().Replace(l, "") : l).ToList());
                Assert.DoesNotContain("newpage=0x", File.ReadAllLines(Path.Combine(dir, Output.TraceFile)).Where(l => l.Contains(" mem_cgroup_prepare_migration: (")).FirstOrDefault() ?? "");
                var audit = SeedCheck.Audit(Path.Combine(dir, Output.TraceFile));
                Assert.Equal(g.Findings.Select(SeedCheck.Key).Order(StringComparer.Ordinal), Keys(audit).Order(StringComparer.Ordinal));
            }
        }
        finally { Directory.Delete(dir, true); }
    }

    [Fact]
    public void Without_the_prepare_return_probe_the_findings_are_the_same()
    {
        // a capture that defines no kretprobe on mem_cgroup_prepare_migration: prepare's success is
        // inferred from the migration going on to unmap or move the page
        var dir = Replayer.TestKit.Repo.TempDir("seed-noret");
        try
        {
            for (ulong seed = 1; seed <= 200; seed++)
            {
                var g = Scenarios.Generate(All[(int)(seed % (ulong)All.Length)], seed);
                WriteVariant(dir, g, lines => lines.Where(l => !l.Contains(" mem_cgroup_prepare_migration_ret: (")).ToList());
                File.WriteAllLines(Path.Combine(dir, Output.KprobeFile), File.ReadAllLines(Path.Combine(dir, Output.KprobeFile)).Where(l => !l.StartsWith("r:rt/mem_cgroup_prepare_migration_ret")));
                var audit = SeedCheck.Audit(Path.Combine(dir, Output.TraceFile));
                Assert.Equal(g.Findings.Select(SeedCheck.Key).Order(StringComparer.Ordinal), Keys(audit).Order(StringComparer.Ordinal));
            }
        }
        finally { Directory.Delete(dir, true); }
    }

    [Fact]
    public void Without_uname_the_era_comes_from_the_events_and_the_findings_are_the_same()
    {
        var dir = Replayer.TestKit.Repo.TempDir("seed-noname");
        try
        {
            for (ulong seed = 1; seed <= 100; seed++)
            {
                var g = Scenarios.Generate(All[(int)(seed % (ulong)All.Length)], seed);
                Output.WriteFolder(g, dir);
                File.Delete(Path.Combine(dir, Output.UnameFile));
                var audit = SeedCheck.Audit(Path.Combine(dir, Output.TraceFile));
                Assert.True(audit.Era.IsSeed(), $"{g.Scenario} --seed {seed}: detected {audit.Era}");
                Assert.Equal(g.Findings.Select(SeedCheck.Key).Order(StringComparer.Ordinal), Keys(audit).Order(StringComparer.Ordinal));
            }
        }
        finally { Directory.Delete(dir, true); }
    }
}
