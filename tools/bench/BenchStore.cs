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
        // The same batches as blocks, for the block append (an ingest that reads blocks hands these over).
        var blocks = new List<EventBlock>();
        for (int i = 0; i < events.Length; i += batch)
        {
            var b = new EventBlock(batch);
            for (int k = i; k < Math.Min(events.Length, i + batch); k++) b.Add(events[k]);
            blocks.Add(b);
        }
        try
        {
            // Warm-up: the whole capture once on a scratch store, printed as the cold figure. With tiered JIT,
            // a few dozen batches leave most of the path (the zstd port, MessagePack writer) in tier-0 or
            // instrumented code for much of the run; that is a per-process start cost, not the store's steady
            // state, so it is reported apart.
            var warm = dir + "-warm";
            Settle();
            using (var s = EmbeddedEventStore.Open(warm))
            {
                var m = Measure(() => { Append(s, "warm", events, batch); return events.Length; });
                Report("embedded append, cold (first in this process, tiered JIT warming up)", m);
                Report("embedded read as blocks, cold", Measure(() => ReadBlocks(s, "warm")));
                Report("embedded read as TraceEvents, cold", Measure(() => Read(s, "warm")));
                Report("embedded append from blocks, cold", Measure(() => { AppendBlocks(s, "warm-blocks", blocks); return events.Length; }));
            }
            Directory.Delete(warm, true);

            Settle();
            using (var s = EmbeddedEventStore.Open(dir))
            {
                var pause = GC.GetTotalPauseDuration();
                int gen2 = GC.CollectionCount(2);
                var m = Measure(() => { Append(s, "capture-bench", events, batch); return events.Length; });
                Report($"embedded append (TraceEvent batches of {batch}, one transaction, fsync on commit: commit took {LastCommitSeconds:F3}s; GC pauses {(GC.GetTotalPauseDuration() - pause).TotalSeconds:F2}s, {GC.CollectionCount(2) - gen2} gen2)", m);
            }
            long size = Directory.EnumerateFiles(dir, "*", SearchOption.AllDirectories).Sum(f => new FileInfo(f).Length);
            Console.WriteLine($"embedded size: {size / 1e6:F1} MB = {(double)size / referenceBytes:F2}x the capture's trace.dat ({referenceBytes / 1e6:F1} MB); {size / (double)events.Length:F1} bytes/event");

            var dirBlocks = dir + "-blocks";
            Settle();
            using (var s = EmbeddedEventStore.Open(dirBlocks))
            {
                var pause = GC.GetTotalPauseDuration();
                var m = Measure(() => { AppendBlocks(s, "capture-bench", blocks); return events.Length; });
                Report($"embedded append from blocks (EventBatch.Of(block) of {batch}, one transaction, fsync on commit; GC pauses {(GC.GetTotalPauseDuration() - pause).TotalSeconds:F2}s)", m);
            }
            Directory.Delete(dirBlocks, true);

            if (pg is { Length: > 0 })
            {
                var schema = "bench_" + Guid.NewGuid().ToString("N")[..8];
                var spec = pg + (pg.Contains("://", StringComparison.Ordinal) ? (pg.Contains('?') ? "&" : "?") + "schema=" + schema : ";schema=" + schema);
                pgStore = PostgresEventStore.Open(spec);
                Append(pgStore, "warm", events.AsSpan(0, Math.Min(events.Length, batch * 32)).ToArray(), batch);
                Settle();
                var m = Measure(() => { Append(pgStore, "capture-bench", events, batch); return events.Length; });
                Report($"postgres append ({pgStore.Description}; CPU of this process only)", m, thousands: true);
            }
            else Console.WriteLine("postgres: skipped (no --pg and no REPLAYER_TEST_PG; start one with .ci/postgres.sh)");

            // Readers do not hold the source capture in memory: drop it before measuring reads.
            events = null!;
            blocks = null!;
            Settle();

            using (var s = EmbeddedEventStore.Open(dir))
            {
                for (int rep = 1; rep <= 2; rep++)
                {
                    var pause = GC.GetTotalPauseDuration();
                    var m = Measure(() => ReadBlocks(s, "capture-bench"));
                    Report($"embedded read as blocks #{rep} (every field of every event decoded into a block, every row touched; GC pauses {(GC.GetTotalPauseDuration() - pause).TotalSeconds:F2}s)", m);
                    pause = GC.GetTotalPauseDuration();
                    m = Measure(() => Read(s, "capture-bench"));
                    Report($"embedded read as TraceEvents #{rep} (every event a TraceEvent; GC pauses {(GC.GetTotalPauseDuration() - pause).TotalSeconds:F2}s)", m);
                }
                var sw2 = Stopwatch.StartNew();
                var v = s.VerifyAsync().GetAwaiter().GetResult();
                Console.WriteLine($"embedded verify: {(v.Ok ? "ok" : "PROBLEMS")} {v.Events} events in {sw2.Elapsed.TotalSeconds:F3}s");
            }
            if (pgStore != null)
            {
                Report("postgres read as blocks", Measure(() => ReadBlocks(pgStore, "capture-bench")));
                Report("postgres read as TraceEvents", Measure(() => Read(pgStore, "capture-bench")));
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

    readonly record struct Measured(double Wall, double Cpu, long Events, string Load);

    static Measured Measure(Func<long> body)
    {
        var cpu = Cpu();
        var sw = Stopwatch.StartNew();
        long n = body();
        double wall = sw.Elapsed.TotalSeconds;
        return new Measured(wall, Cpu() - cpu, n, LoadAverage());
    }

    static void Report(string what, Measured m, bool thousands = false)
    {
        string rate = thousands ? $"{m.Events / m.Wall / 1e3:F0} k events/s" : $"{m.Events / m.Wall / 1e6:F2} M events/s";
        Console.WriteLine($"{what}: {m.Events} events in {m.Wall:F3}s wall = {rate}; {m.Cpu:F2} CPU-s ({m.Events / Math.Max(m.Cpu, 1e-9) / 1e6:F2} M events per CPU-second); load average {m.Load}");
    }

    static string LoadAverage() => File.Exists("/proc/loadavg") ? string.Join(' ', File.ReadAllText("/proc/loadavg").Split(' ').Take(3)) : "?";

    /// <summary>Single-thread cost of each step of the stored form (body kind 4, shaped), in ns per event, wall and CPU
    /// (the machine may be shared); zstd (what is written) against LZ4 for the same raw bodies; kind 3 for reference.</summary>
    static void CodecOnly(TraceEvent[] events, int batch)
    {
        var batches = new List<TraceEvent[]>();
        for (int i = 0; i < events.Length; i += batch) batches.Add(events[i..Math.Min(events.Length, i + batch)]);
        double N = events.Length;
        for (int rep = 0; rep < 2; rep++)
        {
            var ph = new Stopwatch();
            double Ns(double seconds) => seconds * 1e9 / N;

            // Encode phases.
            var raws = new List<byte[]>();
            ph.Restart();
            foreach (var b in batches) raws.Add(ShapedTraceEventCodec.Encode(b).ToArray());
            double tEnc = ph.Elapsed.TotalSeconds;
            long rawTotal = raws.Sum(r => (long)r.Length);
            var cz = new ZstdSharp.Compressor(BatchCodec.ZstdLevel);
            var zout = new byte[64 << 20];
            var zs = new List<byte[]>();
            ph.Restart();
            foreach (var r in raws) zs.Add(zout.AsSpan(0, cz.Wrap(r, zout)).ToArray());
            double tZ = ph.Elapsed.TotalSeconds;
            var ls = new List<byte[]>();
            ph.Restart();
            foreach (var r in raws) ls.Add(zout.AsSpan(0, K4os.Compression.LZ4.LZ4Codec.Encode(r, zout, K4os.Compression.LZ4.LZ4Level.L00_FAST)).ToArray());
            double tL = ph.Elapsed.TotalSeconds;
            uint crc = 0;
            ph.Restart();
            foreach (var z in zs) crc ^= Crc32C.Compute(z);
            double tCrc = ph.Elapsed.TotalSeconds;
            GC.KeepAlive(crc);
            Console.WriteLine($"  encode: shaped body {Ns(tEnc):F0} ns/event ({rawTotal / N:F1} raw bytes/event), zstd level {BatchCodec.ZstdLevel} {Ns(tZ):F0} ns/event ({zs.Sum(z => (long)z.Length) / 1e6:F1} MB), LZ4 {Ns(tL):F0} ns/event ({ls.Sum(z => (long)z.Length) / 1e6:F1} MB), CRC-32C {Ns(tCrc):F1} ns/event");

            // Decode phases.
            var buf = new byte[64 << 20];
            var dz = new ZstdSharp.Decompressor();
            ph.Restart();
            for (int i = 0; i < zs.Count; i++) dz.Unwrap(zs[i], buf.AsSpan(0, raws[i].Length));
            double tDz = ph.Elapsed.TotalSeconds;
            ph.Restart();
            for (int i = 0; i < ls.Count; i++) K4os.Compression.LZ4.LZ4Codec.Decode(ls[i], buf.AsSpan(0, raws[i].Length));
            double tDl = ph.Elapsed.TotalSeconds;
            var block = new EventBlock(batch);
            var alloc0 = GC.GetTotalAllocatedBytes(true);
            ph.Restart();
            long m = 0;
            foreach (var r in raws)
            {
                block.Clear();
                m += ShapedTraceEventCodec.Decode(r, block, 0, out _);
            }
            double tDec = ph.Elapsed.TotalSeconds;
            double allocBlock = (GC.GetTotalAllocatedBytes(true) - alloc0) / N;
            Console.WriteLine($"  decode: zstd {Ns(tDz):F0} ns/event, LZ4 {Ns(tDl):F0} ns/event, shaped body into a block {Ns(tDec):F0} ns/event ({allocBlock:F1} bytes/event allocated)");

            // Whole batches as the store decodes them (decompress + decode, untrusted-data checks), one thread.
            var encoded = batches.Select(b => BatchCodec.Encode(EventBatch.Of(b))).ToList();
            var proc = Process.GetCurrentProcess();
            double cpu0 = Cpu();
            ph.Restart();
            long nb = 0;
            foreach (var e in encoded)
            {
                block.Clear();
                BatchCodec.DecodeInto(e.Kind, e.Codec, e.RawLength, e.Count, e.Body, "bench", block);
                nb += block.Count;
            }
            double bWall = ph.Elapsed.TotalSeconds, bCpu = Cpu() - cpu0;
            alloc0 = GC.GetTotalAllocatedBytes(true);
            cpu0 = Cpu();
            ph.Restart();
            long no = 0;
            foreach (var e in encoded) no += BatchCodec.Decode(e.Kind, e.Codec, e.RawLength, e.Count, e.Body, "bench").Events!.Length;
            double oWall = ph.Elapsed.TotalSeconds, oCpu = Cpu() - cpu0;
            double allocObj = (GC.GetTotalAllocatedBytes(true) - alloc0) / N;

            // Kind 3 (compact, zstd), what was written before, for reference.
            var rawBuf = new System.Buffers.ArrayBufferWriter<byte>(1 << 20);
            double t3Enc = 0, t3Dz = 0, t3Dec = 0;
            long raw3 = 0;
            foreach (var b in batches)
            {
                rawBuf.ResetWrittenCount();
                ph.Restart();
                CompactTraceEventEncoder.Encode(rawBuf, b);
                t3Enc += ph.Elapsed.TotalSeconds;
                raw3 += rawBuf.WrittenCount;
                var z = zout.AsSpan(0, cz.Wrap(rawBuf.WrittenSpan, zout)).ToArray();
                ph.Restart();
                int n3 = dz.Unwrap(z, buf);
                t3Dz += ph.Elapsed.TotalSeconds;
                ph.Restart();
                TraceEventDecoder.DecodeCompact(buf.AsMemory(0, n3), out _);
                t3Dec += ph.Elapsed.TotalSeconds;
            }
            Console.WriteLine($"  kind 3 for reference: encode {Ns(t3Enc):F0} ns/event ({raw3 / N:F1} raw bytes/event), zstd decompress {Ns(t3Dz):F0} ns/event, decode to TraceEvents {Ns(t3Dec):F0} ns/event");
            Console.WriteLine($"codec #{rep + 1}: encode (shaped + zstd) {Ns(tEnc + tZ):F0} ns/event; decode to blocks (zstd + shaped, as stored) {Ns(bWall):F0} ns/event wall, {bCpu * 1e9 / N:F0} ns/event CPU = {nb / bWall / 1e6:F2} M events/s on one thread; decode to TraceEvents {Ns(oWall):F0} ns/event wall, {oCpu * 1e9 / N:F0} ns CPU ({allocObj:F0} bytes/event allocated); {encoded.Sum(e => (long)e.Body.Length) / 1e6:F1} MB stored of {rawTotal / 1e6:F1} MB raw; load average {LoadAverage()}");
            GC.KeepAlive(no);
        }
    }

    static double LastCommitSeconds;

    static void Append(IEventStore s, string stream, TraceEvent[] events, int batch)
    {
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
    }

    /// <summary>Appends block batches the way a block ingest does: <c>EventBatch.Of(block)</c> copies, so one block could be refilled.</summary>
    static void AppendBlocks(IEventStore s, string stream, List<EventBlock> blocks)
    {
        var tx = s.BeginAppendAsync(stream, ExpectedRevision.NoStream).GetAwaiter().GetResult();
        try
        {
            foreach (var b in blocks) tx.AppendAsync(EventBatch.Of(b)).GetAwaiter().GetResult();
            tx.CommitAsync().GetAwaiter().GetResult();
        }
        finally
        {
            tx.DisposeAsync().AsTask().GetAwaiter().GetResult();
        }
    }

    /// <summary>Every event as a TraceEvent object, each one touched.</summary>
    static long Read(IEventStore s, string stream)
    {
        long n = 0, check = 0;
        var e = s.ReadStreamSlicesAsync(stream, StreamRevision.Start).GetAsyncEnumerator();
        try
        {
            while (e.MoveNextAsync().AsTask().GetAwaiter().GetResult())
            {
                var slice = e.Current;
                var a = slice.TraceEvents!;
                for (int i = slice.Offset; i < slice.Offset + slice.Count; i++)
                {
                    var ev = a[i];
                    check += ev.Timestamp + ev.Cpu + ev.Name.Length;
                    foreach (var f in ev.Fields) check ^= (long)f.Bits;
                }
                n += slice.Count;
            }
        }
        finally
        {
            e.DisposeAsync().AsTask().GetAwaiter().GetResult();
        }
        GC.KeepAlive(check);
        return n;
    }

    /// <summary>Every event as a block row, each row and each field touched (as a consumer reading the columns would).</summary>
    static long ReadBlocks(IEventStore s, string stream)
    {
        long n = 0, check = 0;
        var e = s.ReadStreamBlocksAsync(stream, StreamRevision.Start).GetAsyncEnumerator();
        try
        {
            while (e.MoveNextAsync().AsTask().GetAwaiter().GetResult())
            {
                var b = e.Current.Block;
                var ts = b.Timestamps;
                var cpus = b.Cpus;
                var names = b.Names;
                for (int i = 0; i < ts.Length; i++)
                {
                    check += ts[i] + cpus[i] + names[i].Length;
                    foreach (ref readonly var f in b.FieldsOf(i)) check ^= (long)f.Bits;
                }
                n += b.Count;
            }
        }
        finally
        {
            e.DisposeAsync().AsTask().GetAwaiter().GetResult();
        }
        GC.KeepAlive(check);
        return n;
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
