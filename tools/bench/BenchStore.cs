using System.Diagnostics;
using Replayer.Core;
using Replayer.Store;
using Replayer.Store.Embedded;
using Replayer.Store.Postgres;

namespace Replayer.Bench;

/// <summary>
/// Event store throughput and footprint on the largest real capture.
/// <code>dotnet run -c Release --project tools/bench -- store [--input FILE] [--synthetic N] [--pg CONN] [--batch N]</code>
/// Loads the events once (default: traces/6.1-ext4-large/ftrace/trace.txt.zst through TraceOpener),
/// then: embedded append (one all-or-nothing transaction of 4096-event batches, fsync on commit), store
/// size against the capture's zstd trace.dat, embedded read (every event materialized), verify, and the
/// same append/read on PostgreSQL when <c>--pg</c> or <c>REPLAYER_TEST_PG</c> names a server.
/// </summary>
public sealed class BenchStore : IBenchmark
{
    public string Name => "store";
    public string Help => "store [--input FILE] [--synthetic N] [--pg CONN] : store append/read throughput and footprint";

    public int Run(string[] args)
    {
        string? input = null, pg = Environment.GetEnvironmentVariable("REPLAYER_TEST_PG");
        int synthetic = 0, batch = 4096;
        bool codecOnly = false;
        for (int i = 0; i < args.Length; i++)
        {
            switch (args[i])
            {
                case "--input": input = args[++i]; break;
                case "--synthetic": synthetic = int.Parse(args[++i], System.Globalization.CultureInfo.InvariantCulture); break;
                case "--pg": pg = args[++i]; break;
                case "--no-pg": pg = null; break;
                case "--codec": codecOnly = true; break;
                case "--batch": batch = int.Parse(args[++i], System.Globalization.CultureInfo.InvariantCulture); break;
                default: Console.Error.WriteLine("unknown argument " + args[i]); return 2;
            }
        }

        var sw = Stopwatch.StartNew();
        TraceEvent[] events;
        long referenceBytes = 14_361_519;
        string source;
        if (synthetic > 0)
        {
            events = SyntheticCapture.Generate(synthetic);
            source = $"synthetic ({synthetic} events)";
        }
        else
        {
            var root = BenchMain.RepoRoot;
            input ??= Path.Combine(root, "traces", "6.1-ext4-large", "ftrace", "trace.txt.zst");
            var dat = Path.Combine(Path.GetDirectoryName(Path.GetDirectoryName(Path.GetFullPath(input)))!, "tracecmd", "trace.dat");
            referenceBytes = File.Exists(dat) ? new FileInfo(dat).Length : new FileInfo(input).Length;
            var list = new List<TraceEvent>(1_700_000);
            using (var r = Replayer.Formats.TraceOpener.Open(input, new Replayer.Formats.TraceOpenOptions { Strict = true }))
                while (r.Read() is { } e) list.Add(e);
            events = [.. list];
            source = input;
        }
        Console.WriteLine($"loaded {events.Length} events from {source} in {sw.Elapsed.TotalSeconds:F2}s; {Environment.ProcessorCount} CPUs, load average {(File.Exists("/proc/loadavg") ? File.ReadAllText("/proc/loadavg").Trim() : "?")}");

        if (codecOnly)
        {
            CodecOnly(events, batch);
            return 0;
        }

        var dir = Path.Combine(Path.GetTempPath(), "replayer-bench-store-" + Guid.NewGuid().ToString("N")[..8]);
        PostgresEventStore? pgStore = null;
        try
        {
            // Warm-up: the whole capture once on a scratch store, printed as the cold figure. With tiered JIT,
            // a few dozen batches leave most of the path (MessagePack writer, the managed zstd port) in tier-0
            // or instrumented code for much of the run; that is a per-process start cost, not the store's
            // steady state, so it is reported apart.
            var warm = dir + "-warm";
            Settle();
            using (var s = EmbeddedEventStore.Open(warm))
            {
                var cpu = Cpu();
                var t = Append(s, "warm", events, batch);
                Console.WriteLine($"embedded append, cold (first in this process, tiered JIT warming up): {events.Length / t / 1e6:F2} M events/s, {Cpu() - cpu:F2} CPU-s");
                cpu = Cpu();
                var (rt, rn) = Read(s, "warm");
                Console.WriteLine($"embedded read, cold: {rn / rt / 1e6:F2} M events/s, {Cpu() - cpu:F2} CPU-s");
            }
            Directory.Delete(warm, true);

            Settle();
            using (var s = EmbeddedEventStore.Open(dir))
            {
                var cpu = Cpu();
                var pause = GC.GetTotalPauseDuration();
                int gen2 = GC.CollectionCount(2);
                var t = Append(s, "capture-bench", events, batch);
                cpu = Cpu() - cpu;
                Console.WriteLine($"embedded append: {events.Length} events in {t:F3}s = {events.Length / t / 1e6:F2} M events/s (batches of {batch}, one transaction, fsync on commit: commit took {LastCommitSeconds:F3}s; {cpu:F2} CPU-s; GC pauses {(GC.GetTotalPauseDuration() - pause).TotalSeconds:F2}s, {GC.CollectionCount(2) - gen2} gen2)");
            }
            long size = Directory.EnumerateFiles(dir, "*", SearchOption.AllDirectories).Sum(f => new FileInfo(f).Length);
            Console.WriteLine($"embedded size: {size / 1e6:F1} MB = {(double)size / referenceBytes:F2}x the capture's trace.dat ({referenceBytes / 1e6:F1} MB); {size / (double)events.Length:F1} bytes/event");

            if (pg is { Length: > 0 })
            {
                var schema = "bench_" + Guid.NewGuid().ToString("N")[..8];
                var spec = pg + (pg.Contains("://", StringComparison.Ordinal) ? (pg.Contains('?') ? "&" : "?") + "schema=" + schema : ";schema=" + schema);
                pgStore = PostgresEventStore.Open(spec);
                Append(pgStore, "warm", events.AsSpan(0, Math.Min(events.Length, batch * 32)).ToArray(), batch);
                Settle();
                var cpu = Cpu();
                var t = Append(pgStore, "capture-bench", events, batch);
                cpu = Cpu() - cpu;
                Console.WriteLine($"postgres append: {events.Length} events in {t:F3}s = {events.Length / t / 1e3:F0} k events/s ({pgStore.Description}; {cpu:F2} CPU-s in this process)");
            }
            else Console.WriteLine("postgres: skipped (no --pg and no REPLAYER_TEST_PG; start one with .ci/postgres.sh)");

            // Readers do not hold the source capture in memory: drop it before measuring reads.
            events = null!;
            Settle();

            using (var s = EmbeddedEventStore.Open(dir))
            {
                for (int rep = 1; rep <= 2; rep++)
                {
                    var cpu = Cpu();
                    var pause = GC.GetTotalPauseDuration();
                    var (t, n) = Read(s, "capture-bench");
                    cpu = Cpu() - cpu;
                    Console.WriteLine($"embedded read #{rep}: {n} events in {t:F3}s = {n / t / 1e6:F2} M events/s (every event decoded to a TraceEvent; {cpu:F2} CPU-s; GC pauses {(GC.GetTotalPauseDuration() - pause).TotalSeconds:F2}s)");
                }
                sw.Restart();
                var v = s.VerifyAsync().GetAwaiter().GetResult();
                Console.WriteLine($"embedded verify: {(v.Ok ? "ok" : "PROBLEMS")} {v.Events} events in {sw.Elapsed.TotalSeconds:F3}s");
            }
            if (pgStore != null)
            {
                var (rt, n) = Read(pgStore, "capture-bench");
                Console.WriteLine($"postgres read: {n} events in {rt:F3}s = {n / rt / 1e6:F2} M events/s");
            }
        }
        finally
        {
            if (Directory.Exists(dir)) Directory.Delete(dir, true);
            if (pgStore != null)
            {
                pgStore.DropSchemaAsync().GetAwaiter().GetResult();
                pgStore.Dispose();
            }
        }
        return 0;
    }

    /// <summary>Single-thread cost of each step, wall and CPU (the machine may be shared).</summary>
    static void CodecOnly(TraceEvent[] events, int batch)
    {
        var batches = new List<EventBatch>();
        for (int i = 0; i < events.Length; i += batch) batches.Add(EventBatch.Of(events[i..Math.Min(events.Length, i + batch)]));
        for (int rep = 0; rep < 2; rep++)
        {
            var proc = Process.GetCurrentProcess();
            var cpu0 = proc.TotalProcessorTime;
            var sw = Stopwatch.StartNew();
            var enc = batches.Select(b => BatchCodec.Encode(b)).ToList();
            double encWall = sw.Elapsed.TotalSeconds, encCpu = (Process.GetCurrentProcess().TotalProcessorTime - cpu0).TotalSeconds;
            cpu0 = Process.GetCurrentProcess().TotalProcessorTime;
            sw.Restart();
            long n = 0;
            foreach (var e in enc) n += BatchCodec.Decode(e.Kind, e.Codec, e.RawLength, e.Count, e.Body, "bench").Events!.Length;
            double decWall = sw.Elapsed.TotalSeconds, decCpu = (Process.GetCurrentProcess().TotalProcessorTime - cpu0).TotalSeconds;
            sw.Restart();
            var raws = new List<byte[]>();
            var dz = new ZstdSharp.Decompressor();
            foreach (var e in enc) raws.Add(dz.Unwrap(e.Body).ToArray());
            double dzWall = sw.Elapsed.TotalSeconds;
            sw.Restart();
            foreach (var r in raws) { var rd = new MessagePack.MessagePackReader(r); rd.Skip(); }
            double skipWall = sw.Elapsed.TotalSeconds;
            var alloc0 = GC.GetTotalAllocatedBytes(true);
            var pause0 = GC.GetTotalPauseDuration();
            int gc0 = GC.CollectionCount(0), gc2 = GC.CollectionCount(2);
            sw.Restart();
            long m = 0;
            foreach (var r in raws) m += TraceEventDecoder.DecodeCompact(r, out _).Length;
            double decOnly = sw.Elapsed.TotalSeconds;
            Console.WriteLine($"  decode allocated {(GC.GetTotalAllocatedBytes(true) - alloc0) / (double)m:F0} bytes/event, GC pauses {(GC.GetTotalPauseDuration() - pause0).TotalSeconds:F3}s, {GC.CollectionCount(0) - gc0} gen0 / {GC.CollectionCount(2) - gc2} gen2 collections");
            Console.WriteLine($"  zstd decompress {dzWall:F3}s, MessagePack skip {skipWall:F3}s, TraceEventDecoder {decOnly:F3}s ({m / decOnly / 1e6:F2} M/s)");
            // Encode phases, one thread: MessagePack (compact body), zstd, CRC-32C of the compressed body.
            var rawBuf = new System.Buffers.ArrayBufferWriter<byte>(1 << 20);
            var cz = new ZstdSharp.Compressor(BatchCodec.ZstdLevel);
            var zout = new byte[64 << 20];
            double tMp = 0, tZ = 0, tCrc = 0;
            long rawTotal = 0;
            uint crcSink = 0;
            var ph = new Stopwatch();
            foreach (var b in batches)
            {
                ph.Restart();
                rawBuf.ResetWrittenCount();
                CompactTraceEventEncoder.Encode(rawBuf, b.TraceEvents!);
                tMp += ph.Elapsed.TotalSeconds;
                rawTotal += rawBuf.WrittenCount;
                ph.Restart();
                int zn = cz.Wrap(rawBuf.WrittenSpan, zout);
                tZ += ph.Elapsed.TotalSeconds;
                ph.Restart();
                crcSink ^= Crc32C.Compute(zout.AsSpan(0, zn));
                tCrc += ph.Elapsed.TotalSeconds;
            }
            GC.KeepAlive(crcSink);
            Console.WriteLine($"  encode phases: MessagePack {tMp:F3}s ({rawTotal / (double)events.Length:F1} raw bytes/event), zstd level {BatchCodec.ZstdLevel} {tZ:F3}s, CRC-32C {tCrc:F3}s");
            Console.WriteLine($"codec #{rep + 1}: encode (MessagePack + zstd) {events.Length / encWall / 1e6:F2} M events/s wall, {events.Length / encCpu / 1e6:F2} M/s per CPU-second; decode (zstd + MessagePack) {n / decWall / 1e6:F2} M events/s wall, {n / decCpu / 1e6:F2} M/s per CPU-second; {enc.Sum(e => (long)e.Body.Length) / 1e6:F1} MB compressed of {enc.Sum(e => (long)e.RawLength) / 1e6:F1} MB");
        }
    }

    static double LastCommitSeconds;

    static double Append(IEventStore s, string stream, TraceEvent[] events, int batch)
    {
        var sw = Stopwatch.StartNew();
        var tx = s.BeginAppendAsync(stream, ExpectedRevision.NoStream).GetAwaiter().GetResult();
        try
        {
            for (int i = 0; i < events.Length; i += batch)
                tx.AppendAsync(EventBatch.Of(events[i..Math.Min(events.Length, i + batch)])).GetAwaiter().GetResult();
            var c = Stopwatch.StartNew();
            tx.CommitAsync().GetAwaiter().GetResult();
            LastCommitSeconds = c.Elapsed.TotalSeconds;
        }
        finally
        {
            tx.DisposeAsync().AsTask().GetAwaiter().GetResult();
        }
        return sw.Elapsed.TotalSeconds;
    }

    static (double Seconds, long Events) Read(IEventStore s, string stream)
    {
        var sw = Stopwatch.StartNew();
        long n = 0, check = 0;
        var e = s.ReadStreamSlicesAsync(stream, StreamRevision.Start).GetAsyncEnumerator();
        try
        {
            while (e.MoveNextAsync().AsTask().GetAwaiter().GetResult())
            {
                var slice = e.Current;
                var a = slice.TraceEvents!;
                for (int i = slice.Offset; i < slice.Offset + slice.Count; i++) check += a[i].Fields.Length;
                n += slice.Count;
            }
        }
        finally
        {
            e.DisposeAsync().AsTask().GetAwaiter().GetResult();
        }
        GC.KeepAlive(check);
        return (sw.Elapsed.TotalSeconds, n);
    }

    /// <summary>A full blocking collection before a measured phase, so that no background GC of the loading
    /// phase's garbage runs during it.</summary>
    static void Settle()
    {
        GC.Collect(2, GCCollectionMode.Forced, blocking: true, compacting: true);
        GC.WaitForPendingFinalizers();
        GC.Collect(2, GCCollectionMode.Forced, blocking: true, compacting: true);
    }

    static double Cpu() => Process.GetCurrentProcess().TotalProcessorTime.TotalSeconds;

}
