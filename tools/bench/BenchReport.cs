using System.Diagnostics;
using System.Globalization;
using Replayer.Formats;
using Replayer.Report;

namespace Replayer.Bench;

/// <summary>
/// HTML report and Chrome export of a large capture:
/// <c>dotnet run -c Release --project tools/bench -- report [FILE] [--chrome]</c> (default FILE: the 1.68 M-event
/// 6.1-ext4-large raw ftrace text). Prints time, events/s, the HTML size (bounded by the downsampling, whatever the
/// capture's length) and the peak working set; with <c>--chrome</c> also the Chrome JSON export to a temp file.
/// </summary>
public sealed class BenchReport : IBenchmark
{
    public string Name => "report";
    public string Help => "replayer report (HTML) and convert --to chrome on a large capture; args: [FILE] [--chrome]";

    public int Run(string[] args)
    {
        string? path = null;
        bool chrome = false;
        foreach (var a in args)
            if (a == "--chrome") chrome = true;
            else path = a;
        path ??= BenchMain.RepoFile("traces", "6.1-ext4-large", "ftrace", "trace.txt.zst");
        var sw = Stopwatch.StartNew();
        ReportData data;
        using (var r = TraceOpener.Open(path))
            data = ReportBuilder.Collect(new ReportInput { Name = path, Reader = r, TracePath = path, GroundTruth = GroundTruthData.FromDirectory(path) });
        var ms = new MemoryStream();
        using (var w = new StreamWriter(ms, leaveOpen: true)) HtmlReport.Write(data, w);
        double s = sw.Elapsed.TotalSeconds;
        long events = data.Timeline.TraceEvents;
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"report: {path}: {events:N0} events, {data.Timeline.AttemptsBegun:N0} attempts, {data.Audit.Findings.Length} findings; replay+audit+HTML {s:F2} s ({events / s / 1e6:F2} M events/s); HTML {ms.Length:N0} bytes; peak working set {Process.GetCurrentProcess().PeakWorkingSet64 / 1048576.0:F0} MiB"));
        if (chrome)
        {
            var tmp = Path.Combine(Path.GetTempPath(), "replayer-bench-chrome-" + Environment.ProcessId + ".json");
            try
            {
                sw.Restart();
                using (var fs = new FileStream(tmp, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 16))
                using (var r = TraceOpener.Open(path))
                    ChromeExport.Write(new ReportInput { Name = path, Reader = r, TracePath = path }, fs);
                double c = sw.Elapsed.TotalSeconds;
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"chrome: {events:N0} events in {c:F2} s ({events / c / 1e6:F2} M events/s); JSON {new FileInfo(tmp).Length:N0} bytes; peak working set {Process.GetCurrentProcess().PeakWorkingSet64 / 1048576.0:F0} MiB"));
            }
            finally { File.Delete(tmp); }
        }
        return 0;
    }
}
