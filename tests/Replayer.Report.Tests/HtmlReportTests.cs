using System.Diagnostics;
using System.Text;
using System.Text.RegularExpressions;
using Replayer.Formats;
using Replayer.TestKit;
using Xunit.Abstractions;

namespace Replayer.Report.Tests;

/// <summary>The HTML report rendered by headless Chromium (Debian package <c>chromium</c>): the plot and the findings
/// table are in the rendered page; a screenshot is kept under the test output directory.</summary>
public partial class HtmlReportTests(ITestOutputHelper output)
{
    static ReportData Collect(string path)
    {
        using var r = TraceOpener.Open(path, new TraceOpenOptions { Strict = true });
        return ReportBuilder.Collect(new ReportInput { Name = path, Reader = r, TracePath = path, GroundTruth = GroundTruthData.FromDirectory(path) });
    }

    static string Html(ReportData d)
    {
        var sw = new StringWriter { NewLine = "\n" };
        HtmlReport.Write(d, sw);
        return sw.ToString();
    }

    static string ArtifactDir()
    {
        var d = Path.Combine(AppContext.BaseDirectory, "report-artifacts");
        Directory.CreateDirectory(d);
        return d;
    }

    static string Chromium()
    {
        var env = Environment.GetEnvironmentVariable("REPLAYER_CHROMIUM");
        if (!string.IsNullOrEmpty(env) && File.Exists(env)) return env;
        foreach (var dir in (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':'))
            foreach (var n in new[] { "chromium", "chromium-browser" })
                if (dir.Length > 0 && File.Exists(Path.Combine(dir, n))) return Path.Combine(dir, n);
        Assert.Fail("headless Chromium is needed: install Debian's package `chromium` (apt-get install -y chromium) or set REPLAYER_CHROMIUM");
        return "";
    }

    /// <summary>Runs headless Chromium on a local file with a fresh profile; returns stdout.</summary>
    static string RunChromium(string htmlPath, params string[] extra)
    {
        var profile = Repo.TempDir("chromium");
        try
        {
            var psi = new ProcessStartInfo(Chromium()) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
            foreach (var a in new[] { "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--user-data-dir=" + profile })
                psi.ArgumentList.Add(a);
            foreach (var a in extra) psi.ArgumentList.Add(a);
            psi.ArgumentList.Add(new Uri(htmlPath).AbsoluteUri);
            using var p = Process.Start(psi)!;
            var so = p.StandardOutput.ReadToEndAsync();
            var se = p.StandardError.ReadToEndAsync();
            if (!p.WaitForExit(TimeSpan.FromSeconds(90)))
            {
                p.Kill(entireProcessTree: true);
                Assert.Fail("chromium did not finish within 90 s");
            }
            Assert.True(p.ExitCode == 0, "chromium exit " + p.ExitCode + ": " + se.Result);
            return so.Result;
        }
        finally { try { Directory.Delete(profile, true); } catch (IOException) { } }
    }

    [GeneratedRegex("<tr class=\"finding-row")]
    private static partial Regex FindingRow();

    [Fact]
    public void Report_of_a_capture_with_findings_renders_in_headless_chromium_with_plot_and_findings()
    {
        var path = Repo.Trace("synthetic", "mixed-prefix", "trace.txt");
        var data = Collect(path);
        Assert.NotEmpty(data.Audit.Findings);
        var html = Html(data);
        // self-contained: nothing to fetch
        Assert.DoesNotMatch(@"<[a-zA-Z][^>]*\s(src|href)\s*=", html);
        Assert.DoesNotContain("<script", html);
        var file = Path.Combine(ArtifactDir(), "report-mixed-prefix.html");
        File.WriteAllText(file, html, new UTF8Encoding(false));

        var dom = RunChromium(file, "--dump-dom");
        Assert.Contains("id=\"timeline\"", dom);
        var plots = Regex.Matches(dom, "<svg[^>]*class=\"plot\"").Count;
        Assert.Equal(data.Panels.Length, plots);
        Assert.True(plots > 0);
        Assert.Contains("class=\"counter\"", dom);
        Assert.Contains("class=\"implied\"", dom);
        Assert.Equal(data.Audit.Findings.Length * plots, Regex.Matches(dom, "<path class=\"finding").Count);
        Assert.Contains("id=\"findings\"", dom);
        Assert.Equal(data.Audit.Findings.Length, FindingRow().Matches(dom).Count);
        foreach (var f in data.Audit.Findings)
        {
            Assert.Contains(System.Net.WebUtility.HtmlEncode(f.Explanation), dom);
            foreach (var ev in f.Evidence) Assert.Contains(System.Net.WebUtility.HtmlEncode(ev.Text), dom);
        }
        foreach (var v in data.Audit.Verdicts) Assert.Contains($"<td>{v.InvariantId}</td>", dom);
        foreach (var name in data.Timeline.EventsPerName.Keys) Assert.Contains($"<td>{name}</td>", dom);

        var png = Path.Combine(ArtifactDir(), "report-mixed-prefix.png");
        File.Delete(png);
        RunChromium(file, "--screenshot=" + png, "--window-size=1280,2000");
        var bytes = File.ReadAllBytes(png);
        Assert.True(bytes.Length > 10_000 && bytes.AsSpan(1, 3).SequenceEqual("PNG"u8), "screenshot is a PNG");
        output.WriteLine("screenshot: " + png);
        output.WriteLine("report: " + file);
    }

    [Fact]
    public void Ground_truth_phases_land_on_the_counter_of_the_memcg_they_match_and_render()
    {
        var path = Repo.Trace("6.1-ext4-basic", "ftrace", "trace.txt.zst");
        var data = Collect(path);
        var truth = data.GroundTruth;
        Assert.NotEmpty(truth.Phases);
        var matched = data.Panels.Where(p => p.Memcg != null && p.Baseline != null).ToList();
        var panel = Assert.Single(matched);
        Assert.StartsWith("memcgA", panel.Cgroup);
        // every phase the workload printed for memcgA is on the plot, and the counter (aligned once) agrees with each
        var phasesA = truth.Phases.Where(p => p.Pages.ContainsKey("memcgA")).ToList();
        Assert.True(panel.Truth.Length >= phasesA.Count);
        foreach (var (time, pages, phase) in panel.Truth)
        {
            var snap = data.Timeline.Snapshots.Last(s => s.Time <= time);
            Assert.Equal(pages, panel.Baseline!.Value + (snap.Memcgs.TryGetValue(panel.Memcg!.Value, out var v) ? v.Counter : 0));
        }
        var html = Html(data);
        var file = Path.Combine(ArtifactDir(), "report-6.1-ext4-basic.html");
        File.WriteAllText(file, html, new UTF8Encoding(false));
        var dom = RunChromium(file, "--dump-dom");
        Assert.Equal(data.Panels.Sum(p => p.Truth.Length), Regex.Matches(dom, "<circle class=\"truth\"").Count);
        Assert.Equal(data.Timeline.Windows.Count, Regex.Matches(dom, "<rect class=\"window\"").Count / data.Panels.Length);
        Assert.Contains("id=\"windows\"", dom);
    }
}
