using System.Diagnostics;
using System.Globalization;
using Replayer.Core;
using Replayer.Formats;

namespace Replayer.Bench;

/// <summary>
/// Text parse throughput: <c>dotnet run -c Release --project tools/bench -- parse [FILE] [--runs N]</c>.
/// Decompresses FILE (default: the 340 MB 6.1-ext4-large raw ftrace text) into memory, then times parsing only
/// (best of N runs, one thread; <c>Read()</c> and <c>ReadBlock</c> alternately), and once end to end from the compressed file. Reports events/s and bytes
/// allocated per event (<see cref="GC.GetAllocatedBytesForCurrentThread"/>).
/// </summary>
public sealed class BenchParse : IBenchmark
{
    public string Name => "parse";
    public string Help => "text trace parse throughput (events/s, bytes allocated per event); args: [FILE] [--runs N] [--only read|block]";

    public int Run(string[] args)
    {
        string path = BenchMain.RepoFile("traces", "6.1-ext4-large", "ftrace", "trace.txt.zst");
        int runs = 3;
        string? only = null; // "read" or "block": time just that way of reading
        for (int i = 0; i < args.Length; i++)
        {
            if (args[i] == "--runs" && i + 1 < args.Length) runs = int.Parse(args[++i], CultureInfo.InvariantCulture);
            else if (args[i] == "--only" && i + 1 < args.Length) only = args[++i];
            else path = args[i];
        }
        var sw = Stopwatch.StartNew();
        byte[] plain;
        using (var fs = File.OpenRead(path))
        {
            var (s, prefix, _) = InputStreams.Decode(fs, path);
            var ms = new MemoryStream();
            ms.Write(prefix);
            s.CopyTo(ms);
            plain = ms.ToArray();
        }
        Console.WriteLine($"parse: {path}: {plain.Length / 1e6:F1} MB decompressed in {sw.Elapsed.TotalSeconds:F2} s");

        var opts = new TraceOpenOptions { SourceName = path, Capture = Replayer.Formats.Schema.CaptureContext.Discover(path) };
        // Read(): one TraceEvent per event; ReadBlock: rows parsed into a reused 4096-row block, every column and
        // every field of every row read (folded into a checksum so nothing is left unread). Alternated per run.
        var read = new Measure("Read()");
        var block = new Measure("ReadBlock (every field touched)");
        var measures = only switch
        {
            null => new[] { read, block },
            "read" => [read],
            "block" => [block],
            _ => throw new ArgumentException("--only read|block, not " + only),
        };
        TraceFormat format = TraceFormat.Unknown;
        long checksum = 0;
        for (int run = 0; run < runs; run++)
        {
            foreach (var ms in measures)
            {
                GC.Collect();
                GC.WaitForPendingFinalizers();
                long a0 = GC.GetAllocatedBytesForCurrentThread();
                var cpu0 = Environment.CpuUsage.TotalTime;
                sw.Restart();
                using var r = TraceOpener.Open(new MemoryStream(plain, writable: false), opts);
                long n = 0;
                if (ms == read)
                {
                    while (r.Read() is not null) n++;
                }
                else
                {
                    var blk = new EventBlock(4096);
                    while (true)
                    {
                        blk.Clear();
                        int got = r.ReadBlock(blk, 4096);
                        if (got == 0) break;
                        n += got;
                        checksum += Touch(blk);
                    }
                }
                double t = sw.Elapsed.TotalSeconds;
                double cpu = (Environment.CpuUsage.TotalTime - cpu0).TotalSeconds;
                long a = GC.GetAllocatedBytesForCurrentThread() - a0;
                format = r.Format;
                if (r.Stats.UnparsedLines != 0) Console.WriteLine($"parse: WARNING {r.Stats.UnparsedLines} unparsed lines");
                Console.WriteLine($"parse: run {run + 1} {ms.Name}: {n} events in {t:F3} s wall ({cpu:F3} s process CPU) = {n / t / 1e6:F2} M events/s wall, {n / cpu / 1e6:F2} M events/CPU-s, {(double)a / n:F0} B allocated/event");
                ms.Add(t, cpu, n, a);
            }
        }
        string load = File.ReadAllText("/proc/loadavg").Split(' ')[0];
        foreach (var ms in measures)
            Console.WriteLine($"RESULT parse-only {format} {ms.Name}: {ms.Events} events, best {ms.Best:F3} s, {ms.Events / ms.Best / 1e6:F2} M events/s on one thread (wall clock), {ms.Events / ms.BestCpu / 1e6:F2} M events per process CPU second, {(double)ms.Allocated / ms.Events:F0} B allocated/event, {plain.Length / ms.Best / 1e6:F0} MB/s; load average {load} on {Environment.ProcessorCount} cores");
        Console.WriteLine($"parse: checksum {checksum}");

        {
            GC.Collect();
            sw.Restart();
            using var sorted = new TimeSorter(TraceOpener.Open(new MemoryStream(plain, writable: false), opts));
            long n = 0;
            while (sorted.Read() is not null) n++;
            double t = sw.Elapsed.TotalSeconds;
            Console.WriteLine($"RESULT parse + TimeSorter (window {TimeSorter.DefaultWindow} events, horizon {TimeSorter.DefaultHorizonNs / 1e6:F0} ms): {n} events in {t:F3} s = {n / t / 1e6:F2} M events/s, {sorted.OutOfOrderEvents} out of order");
        }

        plain = [];
        GC.Collect();
        sw.Restart();
        long a1 = GC.GetAllocatedBytesForCurrentThread();
        long m = 0;
        using (var r = TraceOpener.Open(path))
            while (r.Read() is not null) m++;
        double te = sw.Elapsed.TotalSeconds;
        long ae = GC.GetAllocatedBytesForCurrentThread() - a1;
        Console.WriteLine($"RESULT end-to-end (zstd + capture discovery + parse): {m} events in {te:F3} s = {m / te / 1e6:F2} M events/s, {(double)ae / m:F0} B allocated/event");
        return 0;
    }

    sealed class Measure(string name)
    {
        public string Name => name;
        public double Best = double.MaxValue, BestCpu = double.MaxValue;
        public long Events, Allocated;

        public void Add(double wall, double cpu, long events, long allocated)
        {
            if (wall < Best) { Best = wall; Events = events; Allocated = allocated; }
            if (cpu < BestCpu) BestCpu = cpu;
        }
    }

    /// <summary>Reads every column and every field of every row of the block.</summary>
    static long Touch(EventBlock b)
    {
        long h = 0;
        for (int i = 0; i < b.Count; i++)
        {
            h += b.TimestampOf(i) ^ b.SourceOf(i) ^ b.CpuOf(i) ^ b.PidOf(i);
            h += b.CommOf(i).Length + b.NameOf(i).Length + (b.ProbeOf(i)?.Length ?? 0) + (b.FlagsOf(i)?.Length ?? 0);
            foreach (ref readonly var f in b.FieldsOf(i))
                h += (long)f.Bits + f.Name.Length + (f.Text?.Length ?? 0) + (int)f.Kind;
        }
        return h;
    }
}