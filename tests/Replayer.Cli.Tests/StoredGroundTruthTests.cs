using System.Text.Json;
using Replayer.TestKit;

namespace Replayer.Cli.Tests;

/// <summary>A stored capture carries its memory.stat ground truth: <c>check &lt;id&gt;</c> shows the same
/// per-cgroup FILE_MAPPED change as <c>check FILE</c>, after the folder it came from is gone.</summary>
[Collection("console")]
public sealed class StoredGroundTruthTests : IDisposable
{
    readonly string _tmp = Repo.TempDir("cli-truth");
    public void Dispose() => Directory.Delete(_tmp, true);

    static JsonElement[] Truth(string json) =>
        JsonDocument.Parse(json).RootElement.GetProperty("ground_truth").EnumerateArray().ToArray();

    [Fact]
    public void Check_of_a_stored_capture_reports_the_ground_truth_stored_with_it()
    {
        var source = Repo.Trace("vmcap-6.12-ext4-fail");
        var copy = Path.Combine(_tmp, "bundle");
        Directory.CreateDirectory(copy);
        foreach (var f in Directory.GetFiles(source)) File.Copy(f, Path.Combine(copy, Path.GetFileName(f)));
        var trace = Path.Combine(copy, "trace.txt.zst");

        var (code, fromFile, err) = InProcessCli.Run("check", trace, "--json");
        Assert.True(code == 0, err);
        var expected = Truth(fromFile);
        Assert.Contains(expected, t => t.GetProperty("cgroup").GetString() == "vmcap_A" && t.GetProperty("file_mapped_delta_pages").GetInt64() == 256);

        var store = Path.Combine(_tmp, "store");
        var (ingestCode, _, ingestErr) = InProcessCli.Run("ingest", trace, "--store", store);
        Assert.True(ingestCode == 0, ingestErr);
        var id = Commands.IngestCommand.Identify(trace).Id;
        Directory.Delete(copy, true);

        var (code2, fromStore, err2) = InProcessCli.Run("check", id, "--store", store, "--json", "--no-save");
        Assert.True(code2 == 0, err2);
        Assert.Equal(expected.Select(t => t.GetRawText()), Truth(fromStore).Select(t => t.GetRawText()));
        var memcgs = JsonDocument.Parse(fromStore).RootElement.GetProperty("memcgs").EnumerateArray();
        Assert.Contains(memcgs, m => m.TryGetProperty("cgroup", out var c) && c.GetString() == "vmcap_A"
            && m.GetProperty("file_mapped_delta_ground_truth_pages").GetInt64() == 256
            && m.GetProperty("file_mapped_delta_counter_pages").GetInt64() == 256);
    }
}
