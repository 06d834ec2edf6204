using System.Text.RegularExpressions;
using Replayer.TestKit;

namespace Replayer.Cli.Tests;

/// <summary><c>report</c> of a stored capture uses the capture context stored with it (kprobe definitions,
/// formats, uname), so it gives the same verdicts as the report of the file after the file's folder is gone.</summary>
[Collection("console")]
public sealed class StoredReportTests : IDisposable
{
    readonly string _tmp = Repo.TempDir("cli-stored-report");
    public void Dispose() => Directory.Delete(_tmp, true);

    static string[] Verdicts(string html) =>
        Regex.Matches(html, "<td>([a-z-]+)</td><td class=\"verdict\">([^<]+)</td>").Select(m => m.Groups[1].Value + "=" + m.Groups[2].Value).ToArray();

    [Fact]
    public void Report_of_a_stored_trace_cmd_capture_matches_the_file_after_its_folder_is_gone()
    {
        // trace-cmd report text names kprobes by address: only kprobe_events.txt beside it says which function.
        var source = Repo.Trace("6.1-ext4-fail", "tracecmd");
        var copy = Directory.CreateDirectory(Path.Combine(_tmp, "tracecmd")).FullName;
        foreach (var f in Directory.GetFiles(source)) File.Copy(f, Path.Combine(copy, Path.GetFileName(f)));
        var formats = Path.Combine(source, "formats");
        foreach (var f in Directory.GetFiles(formats, "*", SearchOption.AllDirectories))
        {
            var dst = Path.Combine(copy, "formats", Path.GetRelativePath(formats, f));
            Directory.CreateDirectory(Path.GetDirectoryName(dst)!);
            File.Copy(f, dst);
        }
        var trace = Path.Combine(copy, "report_host.txt.zst");

        var fromFile = Path.Combine(_tmp, "file.html");
        var (code, _, err) = InProcessCli.Run("report", trace, "-o", fromFile);
        Assert.True(code == 0, err);
        var expected = Verdicts(File.ReadAllText(fromFile));
        Assert.Equal(7, expected.Length);
        Assert.Contains("file-mapped-conservation=pass", expected);

        var store = Path.Combine(_tmp, "store");
        var (ingestCode, _, ingestErr) = InProcessCli.Run("ingest", trace, "--store", store);
        Assert.True(ingestCode == 0, ingestErr);
        var id = Commands.IngestCommand.Identify(trace).Id;
        Directory.Delete(copy, true);

        var fromStore = Path.Combine(_tmp, "stored.html");
        var (code2, _, err2) = InProcessCli.Run("report", id, "--store", store, "-o", fromStore);
        Assert.True(code2 == 0, err2);
        Assert.Equal(expected, Verdicts(File.ReadAllText(fromStore)));
    }
}
