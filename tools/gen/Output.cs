using System.Globalization;
using System.Text;
using System.Text.Json;
using Replayer.Core;
using Replayer.Gen.Sim;

namespace Replayer.Gen;

/// <summary>Writes a generated scenario as a capture folder: <c>trace.txt</c> (raw ftrace text),
/// <c>kprobe_events.txt</c> (the <c>rt</c> probe definitions) and <c>expected.json</c>.</summary>
public static class Output
{
    public const string TraceFile = "trace.txt", KprobeFile = "kprobe_events.txt", ExpectedFile = "expected.json", UnameFile = "uname.txt";

    /// <summary>Replay's invariant ids (src/Replayer.Replay/README.md) of I1–I7.</summary>
    public static readonly IReadOnlyDictionary<string, string> InvariantIds = new Dictionary<string, string>
    {
        ["I1"] = "file-mapped-conservation", ["I2"] = "commit-before-remap", ["I3"] = "migration-flag-lifetime",
        ["I4"] = "unmap-null-mapping", ["I5"] = "anon-vma-lifetime", ["I6"] = "migration-entry-balance", ["I7"] = "migrate-summary-consistency",
    };

    public static void WriteFolder(GenResult r, string dir)
    {
        Directory.CreateDirectory(dir);
        File.WriteAllText(Path.Combine(dir, TraceFile), FtraceText(r.Events), Utf8NoBom);
        File.WriteAllText(Path.Combine(dir, KprobeFile), KprobeEvents, Utf8NoBom);
        File.WriteAllText(Path.Combine(dir, ExpectedFile), ExpectedJson(r), Utf8NoBom);
        File.WriteAllText(Path.Combine(dir, UnameFile), Uname(r.Release), Utf8NoBom);
    }

    static readonly UTF8Encoding Utf8NoBom = new(false);

    /// <summary><c>uname -a</c> of the simulated kernel (era detection reads the release from it).</summary>
    public static string Uname(string release) => $"Linux replayer-sim {release} #1 SMP x86_64 GNU/Linux\n";

    /// <summary>The <c>rt</c> group as it would be written to <c>kprobe_events</c> on 2.6.35
    /// x86_64 (struct page: <c>_mapcount</c> +12, <c>mapping</c> +24; page_cgroup: flags +0,
    /// mem_cgroup +8). The synthetic capture prints every page argument as its pfn.</summary>
    public const string KprobeEvents =
        "# replayer-gen: the rt group of the pinned 2.6.35-era vocabulary (docs/capture-vocabulary.md).\n" +
        "# Event name = probed function. Page arguments print as pfns and pcflags/anon/memcg as the\n" +
        "# vocabulary defines them; the fetch args show where a 2.6.35 x86_64 probe would read them.\n" +
        "p:rt/mem_cgroup_prepare_migration mem_cgroup_prepare_migration page=%di:x64 newpage=%si:x64 anon=+24(%di):u8 pcflags=+0(%ax):x32 memcg=+8(%ax):x64\n" +
        "r:rt/mem_cgroup_prepare_migration_ret mem_cgroup_prepare_migration ret=$retval:s32\n" +
        "p:rt/__mem_cgroup_commit_charge __mem_cgroup_commit_charge page=+16(%si):x64 memcg=%di:x64 ctype=%dx:u32 pcflags=+0(%si):x32\n" +
        "p:rt/mem_cgroup_end_migration mem_cgroup_end_migration mem=%di:x64 oldpage=%si:x64 newpage=%dx:x64 oldmapping=+24(%si):x64\n" +
        "p:rt/__mem_cgroup_uncharge_common __mem_cgroup_uncharge_common page=%di:x64 ctype=%si:u32 pcflags=+0(%ax):x32 memcg=+8(%ax):x64 mapcount=+12(%di):s32\n" +
        "p:rt/mem_cgroup_uncharge_page mem_cgroup_uncharge_page page=%di:x64 pcflags=+0(%ax):x32 mapcount=+12(%di):s32\n" +
        "p:rt/mem_cgroup_update_file_mapped mem_cgroup_update_file_mapped page=%di:x64 val=%si:s32 pcflags=+0(%ax):x32 memcg=+8(%ax):x64\n" +
        "p:rt/page_add_file_rmap page_add_file_rmap page=%di:x64 mapcount=+12(%di):s32\n" +
        "p:rt/page_add_anon_rmap page_add_anon_rmap page=%di:x64 mapcount=+12(%di):s32 anon_vma=+136(%si):x64\n" +
        "p:rt/page_remove_rmap page_remove_rmap page=%di:x64 mapcount=+12(%di):s32 anon=+24(%di):u8\n" +
        "p:rt/try_to_unmap try_to_unmap page=%di:x64 mapping=+24(%di):x64 flags=%si:x32\n" +
        "p:rt/move_to_new_page move_to_new_page newpage=%di:x64 page=%si:x64\n" +
        "r:rt/move_to_new_page_ret move_to_new_page rc=$retval:s32\n" +
        "p:rt/remove_migration_ptes remove_migration_ptes old=%di:x64 new=%si:x64\n" +
        "p:rt/anon_vma_pin anon_vma_pin page=%di:x64 anon_vma=%si:x64\n" +
        "p:rt/anon_vma_unpin anon_vma_unpin page=%di:x64 anon_vma=%si:x64\n" +
        "p:rt/anon_vma_free anon_vma_free anon_vma=%di:x64\n" +
        "p:rt/putback_lru_page putback_lru_page page=%di:x64\n";

    /// <summary>Lines of the <c># tracer: nop</c> header before the first event.</summary>
    public const int HeaderLines = 11;

    public static string FtraceText(IReadOnlyList<TraceEvent> events)
    {
        var sb = new StringBuilder(events.Count * 110 + 1024);
        sb.Append("# tracer: nop\n#\n");
        sb.Append("# entries-in-buffer/entries-written: ").Append(events.Count).Append('/').Append(events.Count).Append("   #P:2\n");
        sb.Append("#\n");
        sb.Append("#                              _-----=> irqs-off\n");
        sb.Append("#                             / _----=> need-resched\n");
        sb.Append("#                            | / _---=> hardirq/softirq\n");
        sb.Append("#                            || / _--=> preempt-depth\n");
        sb.Append("#                            ||| /     delay\n");
        sb.Append("#           TASK-PID   CPU#  ||||    TIMESTAMP  FUNCTION\n");
        sb.Append("#              | |       |   ||||       |         |\n");
        foreach (var e in events) AppendLine(sb, e);
        return sb.ToString();
    }

    /// <summary>One line as the kernel prints it: <c>%16s-%-7d [%03d] FLAGS %5lu.%06lu: name: fields</c>.</summary>
    public static void AppendLine(StringBuilder sb, TraceEvent e)
    {
        string pid = e.Pid.ToString(CultureInfo.InvariantCulture);
        sb.Append(e.Comm.PadLeft(16)).Append('-').Append(pid.PadRight(7)).Append(" [")
          .Append(e.Cpu.ToString("D3", CultureInfo.InvariantCulture)).Append("] ").Append(e.Flags ?? "....").Append(' ');
        long sec = e.Timestamp / 1_000_000_000, us = e.Timestamp % 1_000_000_000 / 1000;
        sb.Append(sec.ToString(CultureInfo.InvariantCulture).PadLeft(5)).Append('.').Append(us.ToString("D6", CultureInfo.InvariantCulture)).Append(": ");
        var shortName = e.ShortName;
        if (e.Name == "ftrace:print")
        {
            sb.Append("tracing_mark_write: ").Append(e.Fields[0].Text).Append('\n');
            return;
        }
        sb.Append(shortName).Append(':');
        if (e.Probe != null) sb.Append(" (").Append(e.Probe).Append(')');
        foreach (var f in e.Fields)
        {
            // 2.6.35 mm_pagevec_free prints "page=%p pfn=%lu order=0 cold=%d": order is not a field
            if (f.Name == "cold" && e.Name == "kmem:mm_pagevec_free") sb.Append(" order=0");
            sb.Append(' ').Append(f.Name).Append('=').Append(f.FormatValue());
        }
        sb.Append('\n');
    }

    public static string ExpectedJson(GenResult r)
    {
        using var ms = new MemoryStream();
        using (var w = new Utf8JsonWriter(ms, new JsonWriterOptions { Indented = true, Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping }))
        {
            w.WriteStartObject();
            w.WriteString("scenario", r.Scenario);
            w.WriteNumber("seed", r.Seed);
            w.WriteString("kernel", r.Kernel);
            w.WriteNumber("events", r.Events.Count);
            w.WriteStartArray("findings");
            foreach (var f in r.Findings)
            {
                w.WriteStartObject();
                w.WriteString("invariant", f.Invariant);
                w.WriteString("id", InvariantIds[f.Invariant]);
                w.WriteString("kind", f.Kind);
                w.WriteStartArray("pfns");
                foreach (var p in f.Pfns) w.WriteStringValue("0x" + p.ToString("x", CultureInfo.InvariantCulture));
                w.WriteEndArray();
                w.WriteNumber("time_ns", f.TimeNs);
                w.WriteString("time", TraceEvent.FormatTimestamp(f.TimeNs));
                if (f.EventIndex >= 0) w.WriteNumber("line", HeaderLines + f.EventIndex + 1);
                w.WriteString("detail", f.Detail);
                w.WriteEndObject();
            }
            w.WriteEndArray();
            w.WriteEndObject();
        }
        return Encoding.UTF8.GetString(ms.ToArray()).Replace("\r\n", "\n") + "\n";
    }

    /// <summary>Reads the findings of an <c>expected.json</c>.</summary>
    public static List<ExpectedFinding> ReadExpected(string path)
    {
        using var doc = JsonDocument.Parse(File.ReadAllBytes(path));
        var list = new List<ExpectedFinding>();
        foreach (var f in doc.RootElement.GetProperty("findings").EnumerateArray())
        {
            var pfns = f.GetProperty("pfns").EnumerateArray()
                .Select(p => ulong.Parse(p.GetString()!.AsSpan(2), NumberStyles.HexNumber, CultureInfo.InvariantCulture)).ToArray();
            list.Add(new ExpectedFinding(f.GetProperty("invariant").GetString()!, f.GetProperty("kind").GetString()!, pfns,
                f.GetProperty("time_ns").GetInt64(), f.GetProperty("detail").GetString()!));
        }
        return list;
    }
}
