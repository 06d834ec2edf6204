using System.Text.Json;
using Replayer.Cli;
using Replayer.TestKit;

namespace Replayer.Cli.Tests;

/// <summary>A stored capture is self-contained: its capture context (kprobe_events.txt, uname.txt,
/// kallsyms_bases.txt, formats/) is stored at ingest and its audit never reads the folder it came from.</summary>
[Collection("console")]
public class StoredContextTests : IDisposable
{
    readonly string _tmp = Repo.TempDir("cli-context");
    public void Dispose() => Directory.Delete(_tmp, true);

    static (int Code, string Out, string Err) Run(params string[] args) => InProcessCli.Run(args);

    static void CopyTree(string src, string dst)
    {
        Directory.CreateDirectory(dst);
        foreach (var f in Directory.GetFiles(src)) File.Copy(f, Path.Combine(dst, Path.GetFileName(f)));
        foreach (var d in Directory.GetDirectories(src)) CopyTree(d, Path.Combine(dst, Path.GetFileName(d)));
    }

    /// <summary>A temp copy of the trace's capture: the trace's folder, and for a phase folder (ftrace/, tracecmd/)
    /// the capture folder's own files and sysinfo/ (kprobe_events.txt and uname.txt live there too).</summary>
    string CopyCapture(string capture, string trace)
    {
        var src = Repo.Trace(capture, trace);
        var dst = Path.Combine(_tmp, "copy", capture);
        var rel = Path.GetDirectoryName(trace) ?? "";
        if (rel.Length > 0)
        {
            Directory.CreateDirectory(dst);
            foreach (var f in Directory.GetFiles(Repo.Trace(capture))) File.Copy(f, Path.Combine(dst, Path.GetFileName(f)));
            if (Directory.Exists(Repo.Trace(capture, "sysinfo"))) CopyTree(Repo.Trace(capture, "sysinfo"), Path.Combine(dst, "sysinfo"));
        }
        CopyTree(Path.GetDirectoryName(src)!, Path.Combine(dst, rel));
        return Path.Combine(dst, trace);
    }

    /// <summary>What `check --json` says about the events (not the file name or the ground truth beside it).</summary>
    static string Verdicts(string json)
    {
        using var doc = JsonDocument.Parse(json);
        var r = doc.RootElement;
        var memcgs = r.GetProperty("memcgs").EnumerateArray().Select(m =>
            $"{m.GetProperty("memcg")} {m.GetProperty("file_mapped_delta_counter_pages")} {m.GetProperty("file_mapped_delta_page_states")} {m.GetProperty("tainted")}");
        return string.Join('\n', [
            $"era {r.GetProperty("era")} forced {r.GetProperty("era_forced")} kernel {r.GetProperty("kernel_release")}",
            $"events {r.GetProperty("events")} data loss {r.GetProperty("data_loss_events")}",
            .. r.GetProperty("findings").EnumerateArray().Select(f => f.GetRawText()),
            .. r.GetProperty("invariants").EnumerateArray().Select(v => v.GetRawText()),
            .. memcgs]);
    }

    [Theory]
    [InlineData("vmcap-6.12-ext4-fail", "trace.txt.zst")]
    [InlineData("6.1-ext4-fail", "tracecmd/report_host.txt.zst")]
    [InlineData("6.12-ext4-basic", "perf/perf_script.txt.zst")]
    public void A_stored_capture_audits_the_same_after_its_folder_is_gone(string capture, string trace)
    {
        var original = Repo.Trace(capture, trace);
        var (code, direct, err) = Run("check", original, "--json");
        Assert.True(code is 0 or 1, err);

        var copy = CopyCapture(capture, trace);
        var store = Path.Combine(_tmp, "store-" + capture);
        var (ci, _, erri) = Run("ingest", copy, "--store", store);
        Assert.True(ci == 0, erri);
        var id = Commands.IngestCommand.Identify(copy).Id;
        Directory.Delete(Path.Combine(_tmp, "copy"), true);

        var (cs, stored, errs) = Run("check", id, "--store", store, "--json", "--no-save");
        Assert.True(cs == code, errs);
        Assert.Equal(Verdicts(direct), Verdicts(stored));

        // the stored copy is preferred even when a folder is back at the source path: a different one changes nothing
        Directory.CreateDirectory(Path.GetDirectoryName(copy)!);
        File.WriteAllText(Path.Combine(Path.GetDirectoryName(copy)!, "kprobe_events.txt"), "p:rt/bogus nothing\n");
        File.WriteAllText(Path.Combine(Path.GetDirectoryName(copy)!, "uname.txt"), "Linux host 2.6.35 #1 SMP\n");
        var (cs2, stored2, errs2) = Run("check", id, "--store", store, "--json", "--no-save");
        Assert.True(cs2 == code, errs2);
        Assert.Equal(Verdicts(direct), Verdicts(stored2));

        using var s = Replayer.Store.StoreFactory.Open(store, readOnly: true);
        using var c = Commands.StoredCapture.Open(s, id);
        Assert.NotNull(c.Context);
        Assert.NotNull(c.Context!.KprobeEvents);
        Assert.Contains(c.Context.Files.Keys, k => k.Contains("formats/", StringComparison.Ordinal));
    }
}
