using System.Diagnostics;
using System.Globalization;
using Replayer.Core;
using Replayer.Core.Domain;
using Replayer.Formats;
using Replayer.Replay;

namespace Replayer.Bench;

/// <summary>
/// Replay + audit throughput: <c>dotnet run -c Release --project tools/bench -- replay [FILE] [--runs N]</c>.
/// Reads and decodes FILE (default: the 1.68 M-event 6.1-ext4-large raw ftrace text) into memory, then
/// times replay+audit (all invariants) over the already-decoded events, best of N runs on one thread,
/// and once end to end from the file (read → decode → replay → audit, streaming).
/// </summary>
public sealed class BenchReplay : IBenchmark
{
    public string Name => "replay";
    public string Help => "replay+audit throughput over decoded events, end to end from a file and from the store; args: [FILE] [--runs N] [--no-store]";

    public int Run(string[] args)
    {
        string path = BenchMain.RepoFile("traces", "6.1-ext4-large", "ftrace", "trace.txt.zst");
        int runs = 5;
        bool storeRun = true;
        for (int i = 0; i < args.Length; i++)
        {
            if (args[i] == "--runs" && i + 1 < args.Length) runs = int.Parse(args[++i], CultureInfo.InvariantCulture);
            else if (args[i] == "--no-store") storeRun = false;
            else path = args[i];
        }

        // 1. read + decode into memory
        var sw = Stopwatch.StartNew();
        var decoder = new DomainDecoder(Audit.ResolverFor(path));
        var events = new List<DomainEvent>();
        CaptureHeader header;
        using (var r = TraceOpener.Open(path))
        {
            header = r.Header;
            while (r.Read() is { } e) events.Add(decoder.Decode(e));
        }
        double readDecode = sw.Elapsed.TotalSeconds;
        Console.WriteLine($"replay: {path}: {events.Count:N0} events read+decoded in {readDecode:F2} s ({events.Count / readDecode / 1e6:F2} M events/s)");

        // 2. replay + audit over the decoded events
        var options = new AuditOptions { TracePath = path, Header = header };
        double best = double.MaxValue, bestCpu = double.MaxValue;
        long alloc = 0;
        AuditResult? result = null;
        int tracked = 0;
        for (int run = 0; run < runs; run++)
        {
            GC.Collect();
            var cpu0 = Process.GetCurrentProcess().TotalProcessorTime;
            long a0 = GC.GetAllocatedBytesForCurrentThread();
            var t = Stopwatch.StartNew();
            result = Audit.RunDecoded(events, options, decoder.Probes, out var engine);
            double s = t.Elapsed.TotalSeconds;
            double c = (Process.GetCurrentProcess().TotalProcessorTime - cpu0).TotalSeconds;
            alloc = GC.GetAllocatedBytesForCurrentThread() - a0;
            tracked = engine.State.Pages.Count;
            best = Math.Min(best, s);
            bestCpu = Math.Min(bestCpu, c);
            Console.WriteLine($"replay: run {run + 1}: {s:F3} s wall, {c:F3} s cpu, {events.Count / s / 1e6:F2} M events/s");
        }
        Console.WriteLine($"replay: replay+audit over decoded events: best {events.Count / best / 1e6:F2} M events/s wall ({events.Count / bestCpu / 1e6:F2} M events/s per cpu-second), " +
            $"{(double)alloc / events.Count:F1} bytes allocated per event, {tracked:N0} pages tracked at the end, {result!.Findings.Length} findings, era {result.Era}");

        // 3. end to end, streaming from the file
        events.Clear();
        events.TrimExcess();
        GC.Collect();
        sw.Restart();
        long n;
        using (var r = TraceOpener.Open(path))
        {
            // what `check FILE` does: views of reused blocks for readers that decode into blocks, objects otherwise
            var res = Audit.Run(r.Views(), new AuditOptions { TracePath = path, Header = r.Header, DecodeAhead = true }, out _);
            n = res.Events;
        }
        double e2e = sw.Elapsed.TotalSeconds;
        Console.WriteLine($"replay: end to end (read, decode, replay, audit) from the file: {n:N0} events in {e2e:F2} s ({n / e2e / 1e6:F2} M events/s), peak working set {Process.GetCurrentProcess().PeakWorkingSet64 / 1e6:F0} MB");
        if (storeRun) FromStore(path);
        return 0;
    }

    /// <summary>Stores the capture in a scratch embedded store, then times read-from-store → decode → replay → audit.</summary>
    static void FromStore(string path)
    {
        var dir = Path.Combine(Path.GetTempPath(), "replayer-bench-replay-" + Guid.NewGuid().ToString("N")[..8]);
        try
        {
            CaptureHeader header;
            var stream = new Replayer.Store.StreamName("capture-bench");
            using (var store = Replayer.Store.StoreFactory.Open(dir))
            {
                var tx = store.BeginAppendAsync(stream, Replayer.Store.ExpectedRevision.NoStream).GetAwaiter().GetResult();
                using (var r = TraceOpener.Open(path))
                {
                    header = r.Header;
                    var batch = new List<TraceEvent>(16384);
                    while (r.Read() is { } e)
                    {
                        batch.Add(e);
                        if (batch.Count == 16384) { tx.AppendAsync(Replayer.Store.EventBatch.Of(batch.ToArray())).GetAwaiter().GetResult(); batch.Clear(); }
                    }
                    if (batch.Count > 0) tx.AppendAsync(Replayer.Store.EventBatch.Of(batch.ToArray())).GetAwaiter().GetResult();
                }
                tx.CommitAsync().GetAwaiter().GetResult();
                tx.DisposeAsync().AsTask().GetAwaiter().GetResult();
            }
            GC.Collect();
            using (var store = Replayer.Store.StoreFactory.Open(dir, readOnly: true))
            {
                var sw = Stopwatch.StartNew();
                IEnumerable<TraceEvent> Events()
                {
                    var it = store.ReadStreamSlicesAsync(stream, Replayer.Store.StreamRevision.Start).GetAsyncEnumerator();
                    try
                    {
                        while (it.MoveNextAsync().AsTask().GetAwaiter().GetResult())
                        {
                            var slice = it.Current;
                            for (int i = 0; i < slice.Count; i++) yield return slice.TraceEvents![slice.Offset + i];
                        }
                    }
                    finally { it.DisposeAsync().AsTask().GetAwaiter().GetResult(); }
                }
                var res = Audit.Run(Events(), new AuditOptions { TracePath = path, Header = header });
                double s = sw.Elapsed.TotalSeconds;
                Console.WriteLine($"replay: end to end from the store as TraceEvents (read stream, decode, replay, audit): {res.Events:N0} events in {s:F2} s ({res.Events / s / 1e6:F2} M events/s), {res.Findings.Length} findings");
                // what `check CAPTURE` does: rows of the store's blocks, no object per event
                IEnumerable<EventView> Views()
                {
                    var it = store.ReadStreamBlocksAsync(stream, Replayer.Store.StreamRevision.Start).GetAsyncEnumerator();
                    try
                    {
                        while (it.MoveNextAsync().AsTask().GetAwaiter().GetResult())
                        {
                            var b = it.Current.Block;
                            for (int i = 0; i < b.Count; i++) yield return new EventView(b, i);
                        }
                    }
                    finally { it.DisposeAsync().AsTask().GetAwaiter().GetResult(); }
                }
                sw.Restart();
                res = Audit.Run(Views(), new AuditOptions { TracePath = path, Header = header, DecodeAhead = true }, out _);
                s = sw.Elapsed.TotalSeconds;
                Console.WriteLine($"replay: end to end from the store as block rows (read blocks, decode, replay, audit): {res.Events:N0} events in {s:F2} s ({res.Events / s / 1e6:F2} M events/s), {res.Findings.Length} findings");
            }
        }
        finally
        {
            try { Directory.Delete(dir, true); } catch (IOException) { }
        }
    }
}
