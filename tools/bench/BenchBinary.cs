using System.Diagnostics;
using System.Globalization;
using Replayer.Core;
using Replayer.Formats.Binary;

namespace Replayer.Bench;

/// <summary>
/// Decode throughput of the binary readers, side by side with the reference tools on the same data:
/// trace.dat (default: the 6.1-ext4-large capture) against <c>trace-cmd report &gt; /dev/null</c>, and
/// perf.data (default: the 6.1-ext4-basic capture, decompressed to a temp file) against
/// <c>perf script &gt; /dev/null</c>. One core: the readers are single-threaded.
/// <para>Each reader is timed two ways over the whole file (open included): <c>ReadBlock</c> into a reused
/// <see cref="EventBlock"/> of 4096 rows with a consumer that touches every field of every row (the
/// allocation-free path), and <c>Read()</c> (one <see cref="TraceEvent"/> per event). For trace.dat the
/// cost of reading and decompressing the pages alone is printed too (<see cref="TraceDatReader.ReadPagesOnly"/>).
/// Best of N runs (default 5; the first also warms the JIT) by wall time, and the lowest process CPU time
/// (GC and JIT threads included).</para>
/// </summary>
public sealed class BenchBinary : IBenchmark
{
    public string Name => "binary";
    public string Help => "trace.dat / perf.data decode throughput (ReadBlock and Read) vs trace-cmd report / perf script; args: [trace.dat] [perf.data[.zst]] [--runs N]";

    public int Run(string[] args)
    {
        string root = BenchMain.RepoRoot;
        var files = new List<string>();
        int runs = 5;
        for (int i = 0; i < args.Length; i++)
        {
            if (args[i] == "--runs" && i + 1 < args.Length) runs = Math.Max(1, int.Parse(args[++i], CultureInfo.InvariantCulture));
            else files.Add(args[i]);
        }
        string dat = files.Count > 0 ? files[0] : Path.Combine(root, "traces", "6.1-ext4-large", "tracecmd", "trace.dat");
        string perfIn = files.Count > 1 ? files[1] : Path.Combine(root, "traces", "6.1-ext4-basic", "perf", "perf.data.zst");
        string perf = perfIn;
        string? tmp = null;
        if (perfIn.EndsWith(".zst", StringComparison.Ordinal))
        {
            tmp = Path.Combine(Path.GetTempPath(), "replayer-bench-" + Guid.NewGuid().ToString("N")[..8] + ".data");
            using (var i = File.OpenRead(perfIn))
            using (var z = new ZstdSharp.DecompressionStream(i))
            using (var o = File.Create(tmp))
                z.CopyTo(o);
            perf = tmp;
        }
        try
        {
            Console.WriteLine($"# {Environment.ProcessorCount} CPUs, load average {LoadAverage()}, best of {runs} runs, zstd by {(ZstdFrameDecoder.Native ? "the system libzstd" : "ZstdSharp")}");
            Console.WriteLine($"# trace.dat: {dat} ({new FileInfo(dat).Length / 1e6:F1} MB)");
            var block = Measure(() => new TraceDatReader(dat), runs, blocks: true);
            Report("replayer trace.dat ReadBlock", block);
            var obj = Measure(() => new TraceDatReader(dat), runs, blocks: false);
            Report("replayer trace.dat Read()", obj);
            var pages = MeasurePages(dat, runs);
            Console.WriteLine($"  of which pages read + decompressed {pages.Wall,6:F3} s ({pages.Bytes / 1e6:F0} MB of pages, {pages.Bytes / pages.Wall / 1e9:F2} GB/s) = {pages.Wall / block.Wall:P0} of ReadBlock's wall time");
            var tc = Tool("trace-cmd");
            if (tc != null)
            {
                double t = External(tc, $"report -i {dat}");
                Console.WriteLine($"{"trace-cmd report > /dev/null",-33} {t,8:F3} s   {block.Events / t / 1e6,7:F2} M events/s   ReadBlock is {t / block.Wall:F1}x faster, Read() {t / obj.Wall:F1}x");
            }
            else Console.WriteLine("trace-cmd report: not installed (apt-get install trace-cmd)");

            Console.WriteLine($"# perf.data: {perfIn} ({new FileInfo(perf).Length / 1e6:F1} MB decompressed)");
            var pblock = Measure(() => new PerfDataReader(perf), runs, blocks: true);
            Report("replayer perf.data ReadBlock", pblock);
            var pobj = Measure(() => new PerfDataReader(perf), runs, blocks: false);
            Report("replayer perf.data Read()", pobj);
            var pt = Tool("perf");
            if (pt != null)
            {
                double t = External(pt, $"script -i {perf}");
                Console.WriteLine($"{"perf script > /dev/null",-33} {t,8:F3} s   {pblock.Events / t / 1e6,7:F2} M events/s   ReadBlock is {t / pblock.Wall:F1}x faster, Read() {t / pobj.Wall:F1}x");
            }
            else Console.WriteLine("perf script: not installed (apt-get install linux-perf)");
        }
        finally
        {
            if (tmp != null) File.Delete(tmp);
        }
        return 0;
    }

    readonly record struct Result(long Events, double Wall, double Cpu, long Allocated, long Checksum);

    static void Report(string what, Result r) =>
        Console.WriteLine($"{what,-33} {r.Wall,8:F3} s   {r.Events / r.Wall / 1e6,7:F2} M events/s   (process CPU {r.Cpu:F3} s = {r.Events / r.Cpu / 1e6:F2} M events/CPU-s)   {r.Events} events   {r.Allocated / (double)r.Events,4:F0} B allocated/event   peak working set {Process.GetCurrentProcess().PeakWorkingSet64 / 1e6:F0} MB");

    /// <summary>Best of <paramref name="runs"/> whole-file decodes (open included).</summary>
    static Result Measure(Func<ITraceReader> open, int runs, bool blocks)
    {
        double bestWall = double.MaxValue, bestCpu = double.MaxValue;
        long events = 0, alloc = 0, check = 0;
        var block = new EventBlock(4096);
        for (int i = 0; i < runs; i++)
        {
            GC.Collect();
            GC.WaitForPendingFinalizers();
            long a0 = GC.GetAllocatedBytesForCurrentThread();
            var cpu0 = Environment.CpuUsage.TotalTime;
            var sw = Stopwatch.StartNew();
            long n = 0, sum = 0;
            using (var r = open())
            {
                if (blocks)
                {
                    while (true)
                    {
                        block.Clear();
                        int k = r.ReadBlock(block, 4096);
                        if (k == 0) break;
                        n += k;
                        sum += Touch(block);
                    }
                }
                else
                {
                    while (r.Read() is { } e)
                    {
                        n++;
                        sum += e.Timestamp + e.Fields.Length;
                    }
                }
            }
            sw.Stop();
            double cpu = (Environment.CpuUsage.TotalTime - cpu0).TotalSeconds;
            long a = GC.GetAllocatedBytesForCurrentThread() - a0;
            if (sw.Elapsed.TotalSeconds < bestWall) { bestWall = sw.Elapsed.TotalSeconds; alloc = a; }
            bestCpu = Math.Min(bestCpu, cpu);
            events = n;
            check = sum;
        }
        return new Result(events, bestWall, bestCpu, alloc, check);
    }

    /// <summary>The consumer of a block: reads every row's timestamp and every field's value.</summary>
    static long Touch(EventBlock b)
    {
        long sum = 0;
        var ts = b.Timestamps;
        for (int i = 0; i < ts.Length; i++)
        {
            sum += ts[i];
            foreach (ref readonly var f in b.FieldsOf(i))
                sum += f.Text is { } t ? t.Length : (long)f.Bits;
        }
        return sum;
    }

    static (double Wall, long Bytes) MeasurePages(string dat, int runs)
    {
        double best = double.MaxValue;
        long bytes = 0;
        for (int i = 0; i < runs; i++)
        {
            var sw = Stopwatch.StartNew();
            using (var r = new TraceDatReader(dat)) bytes = r.ReadPagesOnly();
            best = Math.Min(best, sw.Elapsed.TotalSeconds);
        }
        return (best, bytes);
    }

    /// <summary>Wall time of <c>exe args &gt; /dev/null</c> (best of two).</summary>
    static double External(string exe, string args)
    {
        double best = double.MaxValue;
        for (int i = 0; i < 2; i++)
        {
            var psi = new ProcessStartInfo("/bin/sh", ["-c", $"exec {exe} {args} > /dev/null 2>&1"]) { UseShellExecute = false };
            var sw = Stopwatch.StartNew();
            using var p = Process.Start(psi)!;
            p.WaitForExit();
            best = Math.Min(best, sw.Elapsed.TotalSeconds);
        }
        return best;
    }

    static string LoadAverage()
    {
        try { return string.Join(' ', File.ReadAllText("/proc/loadavg").Split(' ').Take(3)); }
        catch (IOException) { return "unknown"; }
    }

    static string? Tool(string name) =>
        (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':').Select(d => Path.Combine(d, name)).FirstOrDefault(File.Exists);
}
