using System.Text.RegularExpressions;
using Replayer.Core.Domain;
using Replayer.Formats;
using Replayer.Replay;
using ZstdSharp;

namespace Replayer.Replay.Tests;

/// <summary>
/// Every vocabulary event of every text format of every capture decodes to its typed domain event,
/// and per event name the number of typed domain events equals the number of lines of that event in
/// the file (counted here independently of the readers, with a regular expression).
/// </summary>
public partial class DecodeCountTests
{
    public static IEnumerable<object[]> Texts() => Captures.AllTextTraces();

    /// <summary>Probed function → domain type.</summary>
    static readonly Dictionary<string, Type> ByFunction = new(StringComparer.Ordinal)
    {
        ["mem_cgroup_migrate"] = typeof(MemcgMigrateEvent),
        ["page_add_file_rmap"] = typeof(RmapAddEvent), ["folio_add_file_rmap_ptes"] = typeof(RmapAddEvent), ["folio_add_file_rmap_pmd"] = typeof(RmapAddEvent),
        ["page_remove_rmap"] = typeof(RmapRemoveEvent), ["folio_remove_rmap_ptes"] = typeof(RmapRemoveEvent), ["folio_remove_rmap_pmd"] = typeof(RmapRemoveEvent),
        ["__mod_lruvec_page_state"] = typeof(LruvecStatEvent), ["__lruvec_stat_mod_folio"] = typeof(LruvecStatEvent),
        ["try_to_migrate"] = typeof(UnmapEvent), ["try_to_unmap"] = typeof(UnmapEvent),
        ["remove_migration_ptes"] = typeof(RemoveMigrationPtesEvent),
        ["folio_migrate_mapping"] = typeof(MigrateMappingEvent), ["__folio_migrate_mapping"] = typeof(MigrateMappingEvent),
        ["move_to_new_folio"] = typeof(MoveToNewFolioEvent), ["migrate_folio_move"] = typeof(MigrateFolioMoveEvent),
        ["migrate_folio_undo_src"] = typeof(MigrateFolioUndoSrcEvent), ["__mem_cgroup_uncharge"] = typeof(MemcgUnchargeEvent),
        ["__mem_cgroup_uncharge_list"] = typeof(MemcgUnchargeBatchEvent), ["__mem_cgroup_uncharge_folios"] = typeof(MemcgUnchargeBatchEvent),
    };

    static readonly Dictionary<string, Type> ByTracepoint = new(StringComparer.Ordinal)
    {
        ["mm_page_alloc"] = typeof(PageAllocEvent), ["mm_page_free"] = typeof(PageFreeEvent), ["mm_page_free_batched"] = typeof(PageFreeEvent),
        ["mm_filemap_add_to_page_cache"] = typeof(PageCacheEvent), ["mm_filemap_delete_from_page_cache"] = typeof(PageCacheEvent),
        ["mm_migrate_pages_start"] = typeof(MigratePagesStartEvent), ["mm_migrate_pages"] = typeof(MigratePagesEndEvent),
        ["set_migration_pte"] = typeof(MigrationPteEvent), ["remove_migration_pte"] = typeof(MigrationPteEvent),
        ["tracing_mark_write"] = typeof(MarkerEvent), ["print"] = typeof(MarkerEvent),
    };

    /// <summary>`…] [flags] 12.345678: [period] NAME: ` (raw ftrace, trace-cmd report, perf script, perf script -F all).</summary>
    [GeneratedRegex(@"\]\s+(?:\S+\s+)?\d+\.\d+:\s+(?:\d+\s+)?(\S+?):\s")]
    private static partial Regex EventName();

    static Dictionary<string, long> CountLines(string path)
    {
        using var fs = File.OpenRead(path);
        using Stream s = path.EndsWith(".zst", StringComparison.Ordinal) ? new DecompressionStream(fs) : fs;
        using var reader = new StreamReader(s);
        var counts = new Dictionary<string, long>(StringComparer.Ordinal);
        string? line;
        while ((line = reader.ReadLine()) != null)
        {
            if (line.Length == 0 || line[0] == '#') continue;
            var m = EventName().Match(line);
            if (!m.Success) continue;
            var name = m.Groups[1].Value;
            name = name[(name.LastIndexOf(':') + 1)..];
            counts[name] = counts.GetValueOrDefault(name) + 1;
        }
        return counts;
    }

    [Theory]
    [MemberData(nameof(Texts))]
    public void Every_vocabulary_line_decodes_to_its_typed_event(string capture, string trace)
    {
        var path = Captures.PathOf(capture, trace);
        var probes = Replay.Audit.ResolverFor(path);
        var lines = CountLines(path);

        // expected type of each event name in the file: tracepoints by name, kprobes by their probed function
        var expected = new Dictionary<string, Type>(StringComparer.Ordinal);
        foreach (var name in lines.Keys)
        {
            if (ByTracepoint.TryGetValue(name, out var t)) { expected[name] = t; continue; }
            var def = probes.Definitions.GetValueOrDefault("rt:" + name);
            if (def.Function != null && ByFunction.TryGetValue(def.Function, out t))
                expected[name] = def.IsReturn ? typeof(FunctionReturnEvent) : t;
        }
        Assert.True(expected.Count >= 15, "vocabulary names found: " + string.Join(",", expected.Keys));

        var decoder = new DomainDecoder(probes);
        var decoded = new Dictionary<(string, Type), long>();
        foreach (var e in Captures.Read(path))
        {
            var d = decoder.Decode(e);
            var key = (e.ShortName.ToString(), d.GetType());
            decoded[key] = decoded.GetValueOrDefault(key) + 1;
        }
        long markers = decoded.Where(kv => kv.Key.Item2 == typeof(MarkerEvent)).Sum(kv => kv.Value);
        foreach (var (name, type) in expected)
        {
            if (type == typeof(MarkerEvent)) continue;
            long got = decoded.GetValueOrDefault((name, type));
            Assert.True(lines[name] == got, $"{name}: {lines[name]} lines, {got} {type.Name}s; decoded as " +
                string.Join(", ", decoded.Where(kv => kv.Key.Item1 == name).Select(kv => $"{kv.Key.Item2.Name}×{kv.Value}")));
        }
        long markerLines = expected.Where(kv => kv.Value == typeof(MarkerEvent)).Sum(kv => lines[kv.Key]);
        Assert.Equal(markerLines, markers);
        Assert.DoesNotContain(decoder.GenericCounts, kv => expected.ContainsKey(kv.Key[(kv.Key.LastIndexOf(':') + 1)..]));
    }
}
