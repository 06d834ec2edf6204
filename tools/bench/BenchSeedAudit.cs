using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Replayer.Core;
using Replayer.Formats;
using Replayer.Replay;

namespace Replayer.Bench;

/// <summary>
/// Seed-era audit throughput: <c>dotnet run -c Release --project tools/bench -- seed-audit DIR [--runs N]</c>
/// where DIR is a capture folder made by <c>replayer-gen &lt;scenario&gt; --scale K -o DIR</c>. Streams
/// <c>DIR/trace.txt</c> through <c>TraceOpener</c> and <c>Audit.Run</c> (seed-era adapter and invariants),
/// best of N runs; reports events/s, the peak working set, and the findings against
/// <c>DIR/expected.json</c> (the simulation's own count).
/// </summary>
public sealed class BenchSeedAudit : IBenchmark
{
    public string Name => "seed-audit";
    public string Help => "seed-era audit of a replayer-gen capture folder (events/s, peak RSS, findings vs expected); args: DIR [--runs N]";

    public int Run(string[] args)
    {
        string? dir = null;
        int runs = 3;
        for (int i = 0; i < args.Length; i++)
        {
            if (args[i] == "--runs" && i + 1 < args.Length) runs = int.Parse(args[++i], CultureInfo.InvariantCulture);
            else dir = args[i];
        }
        if (dir == null || !File.Exists(Path.Combine(dir, "trace.txt")))
        {
            Console.Error.WriteLine("seed-audit: expected a folder made by replayer-gen (with trace.txt), e.g. replayer-gen mixed-prefix --scale 1000 -o /tmp/seed");
            return 2;
        }
        string trace = Path.Combine(dir, "trace.txt");
        int expected = -1;
        var exp = Path.Combine(dir, "expected.json");
        if (File.Exists(exp))
        {
            using var doc = JsonDocument.Parse(File.ReadAllBytes(exp));
            expected = doc.RootElement.GetProperty("findings").GetArrayLength();
        }
        double best = double.MaxValue;
        AuditResult? result = null;
        for (int run = 0; run < runs; run++)
        {
            GC.Collect();
            var sw = Stopwatch.StartNew();
            using var reader = TraceOpener.Open(trace);
            result = Audit.Run(Events(reader), new AuditOptions { TracePath = trace, Header = reader.Header });
            best = Math.Min(best, sw.Elapsed.TotalSeconds);
        }
        long peak = Process.GetCurrentProcess().PeakWorkingSet64;
        Console.WriteLine($"seed-audit: {trace}: {result!.Events} events, era {result.Era}, best of {runs}: {best:F3} s = {result.Events / best:N0} events/s, peak working set {peak / 1e6:F0} MB");
        Console.WriteLine($"seed-audit: {result.Findings.Length} findings (expected.json: {expected}); verdicts: "
            + string.Join(", ", result.Verdicts.Select(v => $"{v.InvariantId}={v.Status}({v.Findings})")));
        return 0;
    }

    static IEnumerable<TraceEvent> Events(ITraceReader r)
    {
        while (r.Read() is { } e) yield return e;
    }
}
