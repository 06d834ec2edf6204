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
/// </summary>
public sealed class BenchBinary : IBenchmark
{
    public string Name => "binary";
    public string Help => "trace.dat / perf.data decode throughput vs trace-cmd report / perf script [trace.dat] [perf.data[.zst]]";

    public int Run(string[] args)
    {
        string root = BenchMain.RepoRoot;
        string dat = args.Length > 0 ? args[0] : Path.Combine(root, "traces", "6.1-ext4-large", "tracecmd", "trace.dat");
        string perfIn = args.Length > 1 ? args[1] : Path.Combine(root, "traces", "6.1-ext4-basic", "perf", "perf.data.zst");
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
            Console.WriteLine($"# trace.dat: {dat} ({new FileInfo(dat).Length / 1e6:F1} MB)");
            var (n, time, alloc) = Measure(() => new TraceDatReader(dat));
            Report("replayer trace.dat", n, time, alloc);
            double secs = time.Wall;
            var tc = Tool("trace-cmd");
            if (tc != null)
            {
                double t = External(tc, $"report -i {dat}");
                Console.WriteLine($"trace-cmd report > /dev/null      {t,8:F2} s   {n / t / 1e6,7:F2} M events/s   replayer is {t / secs:F1}x faster");
            }
            else Console.WriteLine("trace-cmd report: not installed (apt-get install trace-cmd)");

            Console.WriteLine($"# perf.data: {perfIn} ({new FileInfo(perf).Length / 1e6:F1} MB decompressed)");
            var (pn, ptime, palloc) = Measure(() => new PerfDataReader(perf));
            Report("replayer perf.data", pn, ptime, palloc);
            double psecs = ptime.Wall;
            var pt = Tool("perf");
            if (pt != null)
            {
                double t = External(pt, $"script -i {perf}");
                Console.WriteLine($"perf script > /dev/null           {t,8:F2} s   {pn / t / 1e6,7:F2} M events/s   replayer is {t / psecs:F1}x faster");
            }
            else Console.WriteLine("perf script: not installed (apt-get install linux-perf)");
        }
        finally
        {
            if (tmp != null) File.Delete(tmp);
        }
        return 0;
    }

    static void Report(string what, long n, (double Wall, double Cpu) t, long alloc) =>
        Console.WriteLine($"{what,-33} {t.Wall,8:F2} s   {n / t.Wall / 1e6,7:F2} M events/s   (process CPU {t.Cpu:F2} s = {n / t.Cpu / 1e6:F2} M events/CPU-s)   {n} events   {alloc / (double)n,4:F0} B allocated/event   peak working set {Process.GetCurrentProcess().PeakWorkingSet64 / 1e6:F0} MB");

    /// <summary>Best of three full decodes (the first also warms the JIT): wall time and the process's
    /// CPU time (includes GC threads), since wall time on a shared machine depends on its load.</summary>
    static (long Events, (double Wall, double Cpu) Time, long Allocated) Measure(Func<ITraceReader> open)
    {
        (double Wall, double Cpu) best = (double.MaxValue, double.MaxValue);
        long events = 0, alloc = 0;
        for (int i = 0; i < 3; i++)
        {
            long a0 = GC.GetAllocatedBytesForCurrentThread();
            var cpu0 = Process.GetCurrentProcess().TotalProcessorTime;
            var sw = Stopwatch.StartNew();
            long n = 0;
            using (var r = open())
                while (r.Read() != null) n++;
            sw.Stop();
            double cpu = (Process.GetCurrentProcess().TotalProcessorTime - cpu0).TotalSeconds;
            long a = GC.GetAllocatedBytesForCurrentThread() - a0;
            if (sw.Elapsed.TotalSeconds < best.Wall) { best.Wall = sw.Elapsed.TotalSeconds; alloc = a; }
            best.Cpu = Math.Min(best.Cpu, cpu);
            events = n;
        }
        return (events, best, alloc);
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

    static string? Tool(string name) =>
        (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':').Select(d => Path.Combine(d, name)).FirstOrDefault(File.Exists);

}
