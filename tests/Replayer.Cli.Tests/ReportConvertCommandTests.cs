using System.Text.Json;
using System.Text.RegularExpressions;
using Replayer.Cli.Commands;
using Replayer.Core;
using Replayer.Formats;
using Replayer.TestKit;

namespace Replayer.Cli.Tests;

/// <summary><c>convert --to perf-script|chrome</c>, <c>report</c>, and stats/convert/report/check on a stored capture.</summary>
[Collection("console")]
public class ReportConvertCommandTests : IDisposable
{
    readonly string _tmp = Repo.TempDir("cli-report");
    public void Dispose() => Directory.Delete(_tmp, true);

    static (int Code, string Out, string Err) Run(params string[] args) => InProcessCli.Run(args);

    static List<TraceEvent> Read(string path) => TraceFiles.ReadAll(path);

    static void AssertSame(List<TraceEvent> a, List<TraceEvent> b)
    {
        Assert.Equal(a.Count, b.Count);
        for (int i = 0; i < a.Count; i++)
            if (!a[i].Equals(b[i])) Assert.Fail($"event {i} differs:\n  {a[i]}\n  {b[i]}");
    }

    [Fact]
    public void Convert_to_perf_script_reads_back_to_the_same_events()
    {
        var trace = Repo.Trace("6.1-ext4-basic", "tracecmd", "report_host.txt.zst");
        var outFile = Path.Combine(_tmp, "out.perf.txt");
        var (code, _, err) = Run("convert", trace, "--to", "perf-script", "-o", outFile);
        Assert.True(code == 0, err);
        Assert.DoesNotContain("cannot carry", err);
        using (var r = TraceOpener.Open(outFile)) { r.Read(); Assert.Equal(TraceFormat.PerfScript, r.Format); }
        AssertSame(Read(trace), Read(outFile));
    }

    [Fact]
    public void Convert_to_chrome_writes_json_and_report_writes_html_with_the_findings()
    {
        var trace = Repo.Trace("synthetic", "file-prefix", "trace.txt");
        var json = Path.Combine(_tmp, "t.json");
        var (code, _, err) = Run("convert", trace, "--to", "chrome", "-o", json);
        Assert.True(code == 0, err);
        using var doc = JsonDocument.Parse(File.ReadAllBytes(json));
        var events = Read(trace);
        Assert.True(doc.RootElement.GetProperty("traceEvents").GetArrayLength() > events.Count);

        var html = Path.Combine(_tmp, "r.html");
        (code, _, err) = Run("report", trace, "-o", html);
        Assert.True(code == 0, err);
        var (checkCode, checkOut, _) = Run("check", trace, "--json");
        Assert.Equal(ExitCodes.Findings, checkCode);
        int findings = JsonDocument.Parse(checkOut).RootElement.GetProperty("findings").GetArrayLength();
        Assert.Equal(findings, Regex.Matches(File.ReadAllText(html), "<tr class=\"finding-row").Count);
    }

    [Fact]
    public void Stats_convert_report_and_check_take_a_stored_capture_by_stream_name_or_hex_id()
    {
        var trace = Repo.Trace("6.1-ext4-fail", "ftrace", "trace.txt.zst");
        var store = Path.Combine(_tmp, "store");
        var (code, _, err) = Run("ingest", trace, "--store", store);
        Assert.True(code == 0, err);
        var id = IngestCommand.Identify(trace).Id;

        var (c1, fileStats, e1) = Run("stats", trace, "--json");
        var (c2, storedStats, e2) = Run("stats", "capture-" + id, "--store", store, "--json");
        Assert.True(c1 == 0 && c2 == 0, e1 + e2);
        static string PerName(string json) => JsonDocument.Parse(json).RootElement.GetProperty("events_per_name").GetRawText();
        Assert.Equal(PerName(fileStats), PerName(storedStats));
        Assert.Equal(JsonDocument.Parse(fileStats).RootElement.GetProperty("lines").GetInt64(), JsonDocument.Parse(storedStats).RootElement.GetProperty("lines").GetInt64());

        var jsonl = Path.Combine(_tmp, "stored.jsonl");
        (code, _, err) = Run("convert", id, "--store", store, "--to", "jsonl", "-o", jsonl);
        Assert.True(code == 0, err);
        AssertSame(Read(trace), Read(jsonl));

        var html = Path.Combine(_tmp, "stored.html");
        (code, _, err) = Run("report", "capture-" + id, "--store", store, "-o", html);
        Assert.True(code == 0, err);
        var text = File.ReadAllText(html);
        Assert.Contains("capture-" + id, text);
        // ground truth comes from the capture's metadata: the workload's phases are plotted
        Assert.True(Regex.Matches(text, "<circle class=\"truth\"").Count > 0, "ground truth points on the plot");

        var (fileCheck, fileOut, _) = Run("check", trace, "--json");
        var (storedCheck, storedOut, e3) = Run("check", id, "--store", store, "--json");
        Assert.True(storedCheck is 0 or 1, e3);
        Assert.Equal(fileCheck, storedCheck);
        Assert.Equal(JsonDocument.Parse(fileOut).RootElement.GetProperty("findings").GetArrayLength(), JsonDocument.Parse(storedOut).RootElement.GetProperty("findings").GetArrayLength());

        var (missing, _, missingErr) = Run("stats", "capture-00000000deadbeef", "--store", store);
        Assert.Equal(ExitCodes.InputError, missing);
        Assert.Single(missingErr.Trim().Split('\n'));
    }
}
