using System.Collections.Concurrent;
using Replayer.Core;
using Replayer.Core.Domain;
using Replayer.Formats;
using Replayer.Replay;
using Replayer.TestKit;

namespace Replayer.Replay.Tests;

/// <summary>The real captures' trace files and their decoded events.</summary>
public static class Captures
{
    /// <summary>Trace files relative to a capture folder, in every format we read.</summary>
    static readonly string[] Candidates =
    [
        "ftrace/trace.txt", "ftrace/trace.txt.zst", "tracecmd/report_host.txt", "tracecmd/report_host.txt.zst",
        "perf/perf_script.txt", "perf/perf_script.txt.zst", "tracecmd/trace.dat",
    ];

    /// <summary>The text traces only (raw ftrace, trace-cmd report, perf script).</summary>
    public static IEnumerable<object[]> TextTraces(bool includeOffline = false) =>
        Traces(includeOffline).Where(t => !((string)t[1]).EndsWith(".dat", StringComparison.Ordinal));

    /// <summary>(capture, trace) pairs; offline/large are big and only in the small set when asked.</summary>
    public static IEnumerable<object[]> Traces(bool includeOffline = false)
    {
        foreach (var dir in Repo.RealCaptures())
        {
            var name = Path.GetFileName(dir);
            // the 1.7 M-event capture runs in the benchmark; REPLAYER_TEST_LARGE=1 adds it here
            if (name.Contains("large", StringComparison.Ordinal) && Environment.GetEnvironmentVariable("REPLAYER_TEST_LARGE") != "1") continue;
            if (!includeOffline && (name.Contains("offline", StringComparison.Ordinal) || name.Contains("large", StringComparison.Ordinal))) continue;
            foreach (var c in Candidates)
                if (File.Exists(Path.Combine(dir, c))) yield return [name, c];
        }
    }

    /// <summary>Every trace including the <c>perf script -F</c> all-fields variant (clean check and decode counts only).</summary>
    public static IEnumerable<object[]> AllTraces() => Traces(includeOffline: true).Concat(AllFieldsPerf());

    static IEnumerable<object[]> AllFieldsPerf() =>
        Repo.RealCaptures().Where(d => File.Exists(Path.Combine(d, "perf", "perf_script_F_all.txt.zst")))
            .Select(d => new object[] { Path.GetFileName(d), "perf/perf_script_F_all.txt.zst" });

    public static IEnumerable<object[]> AllTextTraces() =>
        TextTraces(includeOffline: true).Concat(AllFieldsPerf());

    public static string PathOf(string capture, string trace) => Repo.Trace(capture, trace);

    public static IEnumerable<TraceEvent> Read(string path, Action<CaptureHeader>? header = null)
    {
        using ITraceReader r = Open(path);
        header?.Invoke(r.Header);
        TraceEvent? e;
        while ((e = r.Read()) != null) yield return e;
    }

    static ITraceReader Open(string path) => TraceOpener.Open(path);

    static readonly ConcurrentDictionary<string, Lazy<(List<DomainEvent> Events, ProbeResolver Probes, CaptureHeader Header)>> _decoded = new();

    /// <summary>Decoded events of a (small) capture, cached for the mutation tests.</summary>
    public static (List<DomainEvent> Events, ProbeResolver Probes, CaptureHeader Header) Decoded(string path) =>
        _decoded.GetOrAdd(path, p => new Lazy<(List<DomainEvent>, ProbeResolver, CaptureHeader)>(() =>
        {
            var dec = new DomainDecoder(Replay.Audit.ResolverFor(p));
            CaptureHeader h = new();
            var list = Read(p, x => h = x).Select(dec.Decode).ToList();
            return (list, dec.Probes, h);
        })).Value;

    public static AuditResult Audit(string path, IEnumerable<DomainEvent> events, Action<DomainEvent, ReplayState>? applied = null)
    {
        var (_, probes, header) = Decoded(path);
        return Replay.Audit.RunDecoded(events, new AuditOptions { TracePath = path, Header = header, Applied = applied }, probes, out _);
    }
}
