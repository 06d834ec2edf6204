using System.Text.Json;
using Replayer.Cli;
using Replayer.TestKit;
using ZstdSharp;

namespace Replayer.Cli.Tests;

/// <summary><c>replayer check / state / history</c>, run in-process.</summary>
[Collection("console")]
public class CheckCommandTests : IDisposable
{
    readonly string _tmp = Repo.TempDir("cli-check");
    public void Dispose() => Directory.Delete(_tmp, true);

    static (int Code, string Out, string Err) Run(params string[] args) => InProcessCli.Run(args);

    static string[] Unzstd(string path)
    {
        using var fs = File.OpenRead(path);
        using var z = new DecompressionStream(fs);
        using var r = new StreamReader(z);
        return r.ReadToEnd().Split('\n');
    }

    /// <summary>A copy of a capture phase folder's metadata with a (possibly edited) raw ftrace text.</summary>
    string CopyPhase(string capture, Func<string[], string[]> edit)
    {
        var src = Repo.Trace(capture, "ftrace");
        var dst = Path.Combine(_tmp, capture);
        Directory.CreateDirectory(dst);
        foreach (var f in Directory.GetFiles(src)) if (!f.EndsWith(".zst", StringComparison.Ordinal)) File.Copy(f, Path.Combine(dst, Path.GetFileName(f)));
        foreach (var d in Directory.GetDirectories(Path.Combine(src, "formats"), "*", SearchOption.AllDirectories))
            Directory.CreateDirectory(Path.Combine(dst, Path.GetRelativePath(src, d)));
        foreach (var f in Directory.GetFiles(Path.Combine(src, "formats"), "*", SearchOption.AllDirectories))
            File.Copy(f, Path.Combine(dst, Path.GetRelativePath(src, f)));
        var trace = Path.Combine(dst, "trace.txt");
        File.WriteAllText(trace, string.Join('\n', edit(Unzstd(Path.Combine(src, "trace.txt.zst")))));
        return trace;
    }

    [Fact]
    public void Check_json_on_a_real_capture_passes_with_every_verdict_and_ground_truth()
    {
        var (code, stdout, err) = Run("check", Repo.Trace("6.12-ext4-basic", "ftrace", "trace.txt.zst"), "--json");
        Assert.True(code == 0, err + stdout);
        using var doc = JsonDocument.Parse(stdout);
        var root = doc.RootElement;
        Assert.Equal("Linux612", root.GetProperty("era").GetString());
        Assert.Equal(0, root.GetProperty("findings").GetArrayLength());
        var verdicts = root.GetProperty("invariants").EnumerateArray().ToDictionary(v => v.GetProperty("id").GetString()!, v => v.GetProperty("verdict").GetString());
        Assert.Equal("pass", verdicts["file-mapped-conservation"]);
        Assert.Equal("pass", verdicts["commit-before-remap"]);
        Assert.Equal("pass", verdicts["migration-entry-balance"]);
        Assert.Equal("not checkable", verdicts["anon-vma-lifetime"]);
        Assert.Equal(7, verdicts.Count);
        var truth = root.GetProperty("ground_truth").EnumerateArray().Select(t => t.GetProperty("cgroup").GetString()).ToList();
        Assert.Contains(truth, c => c!.EndsWith("_A", StringComparison.Ordinal));
        Assert.All(root.GetProperty("memcgs").EnumerateArray(), m =>
            Assert.Equal(m.GetProperty("file_mapped_delta_counter_pages").GetInt64(), m.GetProperty("file_mapped_delta_page_states").GetInt64()));
    }

    [Fact]
    public void Check_reports_a_deleted_file_mapped_update_with_evidence_lines_and_exit_1()
    {
        int deletedAt = -1;
        string? deletedLine = null;
        var trace = CopyPhase("6.1-ext4-basic", lines =>
        {
            // the 300th NR_FILE_MAPPED update charged to a memcg
            int seen = 0;
            for (int i = 0; i < lines.Length; i++)
                if (lines[i].Contains(" lruvec_stat: ", StringComparison.Ordinal) && lines[i].Contains(" idx=18 ", StringComparison.Ordinal) && !lines[i].Contains("memcg=0x0", StringComparison.Ordinal) && ++seen == 300)
                { deletedAt = i; deletedLine = lines[i]; break; }
            return [.. lines[..deletedAt], .. lines[(deletedAt + 1)..]];
        });
        var (code, stdout, err) = Run("check", trace, "--json");
        Assert.True(code == 1, $"exit {code}: {err}");
        using var doc = JsonDocument.Parse(stdout);
        var findings = doc.RootElement.GetProperty("findings").EnumerateArray().ToList();
        Assert.NotEmpty(findings);
        Assert.All(findings, f => Assert.Equal("file-mapped-conservation", f.GetProperty("invariant").GetString()));
        var f0 = findings[0];
        var lines = File.ReadAllLines(trace);
        // the evidence names the rmap call whose update is missing, by its line in the input
        var ev = f0.GetProperty("evidence").EnumerateArray().First();
        long line = ev.GetProperty("line").GetInt64();
        var cited = lines[line - 1];
        Assert.Contains("rmap", cited);
        var ptr = deletedLine!.Split(' ').First(t => t.StartsWith("ptr=", StringComparison.Ordinal))[4..];
        Assert.Contains("page=" + ptr, cited);
        Assert.Equal(deletedAt, (int)line); // the rmap call is the line just before the deleted one (1-based = 0-based index)
        Assert.NotEqual(JsonValueKind.Null, f0.GetProperty("memcg").ValueKind);
        Assert.Single(f0.GetProperty("pfns").EnumerateArray());

        var (code2, text, _) = Run("check", trace);
        Assert.Equal(1, code2);
        Assert.Contains("[file-mapped-conservation]", text);
        Assert.Contains("FAIL", text);
    }

    [Fact]
    public void Bad_input_and_bad_usage_exit_2_with_one_line()
    {
        var (code, _, err) = Run("check", Path.Combine(_tmp, "missing.txt"));
        Assert.Equal(2, code);
        Assert.Single(err.Trim().Split('\n'));
        var (code2, _, err2) = Run("check", Repo.Trace("6.1-ext4-fail", "ftrace", "trace.txt.zst"), "--era", "linux-banana");
        Assert.Equal(2, code2);
        Assert.Contains("era", err2);
        var garbage = Path.Combine(_tmp, "garbage.txt");
        File.WriteAllBytes(garbage, [0x00, 0x01, 0xfe, 0x42, 0x17]);
        var (code3, _, err3) = Run("check", garbage);
        Assert.Equal(2, code3);
        Assert.Single(err3.Trim().Split('\n'));
    }

    [Fact]
    public void State_and_history_follow_one_page_through_its_migration()
    {
        var trace = Repo.Trace("6.1-ext4-basic", "ftrace", "trace.txt.zst");
        // a page that is migrated: the src of the first try_to_migrate in the file, by its pointer and the vmemmap base
        var lines = Unzstd(trace);
        var t2m = lines.First(l => l.Contains(" try_to_migrate: ", StringComparison.Ordinal));
        ulong folio = Convert.ToUInt64(t2m.Split(' ').First(t => t.StartsWith("folio=", StringComparison.Ordinal))[8..], 16);
        var rmap = lines.First(l => l.Contains(" vm=0x", StringComparison.Ordinal));
        ulong vm = Convert.ToUInt64(rmap.Split(' ').First(t => t.StartsWith("vm=", StringComparison.Ordinal))[5..], 16);
        ulong pfn = (folio - vm) / 64;
        string time = t2m.Split(':')[0].Trim().Split(' ').Last();

        var (code, stdout, err) = Run("history", trace, "--pfn", "0x" + pfn.ToString("x"));
        Assert.True(code == 0, err);
        Assert.Contains("try_to_migrate", stdout);
        Assert.Contains("set_migration_pte", stdout);
        Assert.Contains("migrating(src", stdout);
        Assert.Contains($"touched pfn 0x{pfn:x}", stdout);

        var (code2, state, err2) = Run("state", trace, "--at", time, "--pfn", "0x" + pfn.ToString("x"));
        Assert.True(code2 == 0, err2);
        Assert.Contains($"pfn 0x{pfn:x} allocated", state);
        Assert.Contains("migrating(src", state);

        var (code3, _, err3) = Run("state", trace, "--at", "soon");
        Assert.Equal(2, code3);
        Assert.Contains("--at", err3);
    }

    [Fact]
    public async Task Check_of_a_stored_capture_saves_its_result_in_the_audit_stream()
    {
        var trace = Repo.Trace("6.1-ext4-fail", "ftrace", "trace.txt.zst");
        var store = Path.Combine(_tmp, "store");
        var (code, _, err) = Run("ingest", trace, "--store", store);
        Assert.True(code == 0, err);
        var id = Commands.IngestCommand.Identify(trace).Id;
        var (code2, text, err2) = Run("check", "capture-" + id, "--store", store);
        Assert.True(code2 == 0, err2);
        Assert.Contains("audit-" + id, text);
        // A file with a store: ingest is a no-op (same bytes), the stored capture is audited and saved again.
        var (code3, _, err3) = Run("check", trace, "--store", store, "--json");
        Assert.True(code3 == 0, err3);
        // --no-save leaves the audit stream alone.
        var (code4, _, err4) = Run("check", id, "--store", store, "--no-save");
        Assert.True(code4 == 0, err4);
        // Without a store the file itself is audited.
        var (code5, direct, err5) = Run("check", trace, "--json");
        Assert.True(code5 == 0, err5);

        using var s = Replayer.Store.StoreFactory.Open(store, readOnly: true);
        var saved = new List<Replayer.Replay.AuditResult>();
        await foreach (var ev in s.ReadStreamAsync("audit-" + id))
        {
            Assert.Equal(Commands.CheckCommand.AuditEventType, ev.EventType);
            saved.Add(MessagePack.MessagePackSerializer.Deserialize<Replayer.Replay.AuditResult>(ev.Payload));
        }
        Assert.Equal(2, saved.Count);
        Assert.All(saved, r => Assert.Equal("capture-" + id, r.Source));
        // the stored events audit exactly like the file
        using var doc = System.Text.Json.JsonDocument.Parse(direct);
        Assert.Equal(doc.RootElement.GetProperty("events").GetInt64(), saved[0].Events);
        Assert.Equal(saved[1].Verdicts.Select(v => (v.InvariantId, v.Status, v.Checked)), saved[0].Verdicts.Select(v => (v.InvariantId, v.Status, v.Checked)));
        Assert.Empty(saved[0].Findings);
    }

    [Fact]
    public void Ground_truth_is_put_beside_a_memcg_only_when_the_match_is_unambiguous()
    {
        var r = new Replayer.Replay.AuditResult
        {
            Memcgs = [new() { Memcg = 1, CounterDelta = 5 }, new() { Memcg = 2, CounterDelta = 0 }, new() { Memcg = 3, CounterDelta = -2 }, new() { Memcg = 4, CounterDelta = -2 }],
        };
        var truth = new List<Commands.CheckCommand.CgroupTruth> { new("A", 10, 15), new("B", 0, 0), new("C", 4, 2) };
        var m = Commands.CheckCommand.MatchGroundTruth(r, truth).Memcgs;
        Assert.Equal((5L, "A"), (m[0].GroundTruthDelta, m[0].Cgroup));
        Assert.Null(m[1].GroundTruthDelta); // a zero change says nothing
        Assert.Null(m[2].GroundTruthDelta); // two memcgs changed by −2: ambiguous
        Assert.Null(m[3].GroundTruthDelta);
    }
}
