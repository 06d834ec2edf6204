using System.Diagnostics;
using System.Globalization;
using Replayer.Core;
using Replayer.Formats;

namespace Replayer.Bench;

/// <summary>
/// Text parse throughput: <c>dotnet run -c Release --project tools/bench -- parse [FILE] [--runs N]</c>.
/// Decompresses FILE (default: the 340 MB 6.1-ext4-large raw ftrace text) into memory, then times parsing only
/// (best of N runs, one thread), and once end to end from the compressed file. Reports events/s and bytes
/// allocated per event (<see cref="GC.GetAllocatedBytesForCurrentThread"/>).
/// </summary>
public sealed class BenchParse : IBenchmark
{
    public string Name => "parse";
    public string Help => "text trace parse throughput (events/s, bytes allocated per event); args: [FILE] [--runs N]";

    public int Run(string[] args)
    {
        string path = BenchMain.RepoFile("traces", "6.1-ext4-large", "ftrace", "trace.txt.zst");
        int runs = 3;
        for (int i = 0; i < args.Length; i++)
        {
            if (args[i] == "--runs" && i + 1 < args.Length) runs = int.Parse(args[++i], CultureInfo.InvariantCulture);
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
        double best = double.MaxValue, bestCpu = double.MaxValue;
        long events = 0, allocated = 0;
        TraceFormat format = TraceFormat.Unknown;
        for (int run = 0; run < runs; run++)
        {
            GC.Collect();
            GC.WaitForPendingFinalizers();
            long a0 = GC.GetAllocatedBytesForCurrentThread();
            var cpu0 = Environment.CpuUsage.TotalTime;
            sw.Restart();
            using var r = TraceOpener.Open(new MemoryStream(plain, writable: false), opts);
            long n = 0;
            while (r.Read() is not null) n++;
            double t = sw.Elapsed.TotalSeconds;
            double cpu = (Environment.CpuUsage.TotalTime - cpu0).TotalSeconds;
            long a = GC.GetAllocatedBytesForCurrentThread() - a0;
            format = r.Format;
            if (r.Stats.UnparsedLines != 0) Console.WriteLine($"parse: WARNING {r.Stats.UnparsedLines} unparsed lines");
            Console.WriteLine($"parse: run {run + 1}: {n} events in {t:F3} s wall ({cpu:F3} s process CPU) = {n / t / 1e6:F2} M events/s wall, {n / cpu / 1e6:F2} M events/CPU-s, {(double)a / n:F0} B allocated/event");
            if (t < best) { best = t; events = n; allocated = a; }
            if (cpu < bestCpu) bestCpu = cpu;
        }
        Console.WriteLine($"RESULT parse-only {format}: {events} events, best {best:F3} s, {events / best / 1e6:F2} M events/s on one thread (wall clock), {events / bestCpu / 1e6:F2} M events per process CPU second, {(double)allocated / events:F0} B allocated/event, {plain.Length / best / 1e6:F0} MB/s; load average {File.ReadAllText("/proc/loadavg").Split(' ')[0]} on {Environment.ProcessorCount} cores");

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
}
