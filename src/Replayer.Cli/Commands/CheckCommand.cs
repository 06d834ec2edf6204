using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using Replayer.Core;
using Replayer.Core.Domain;
using Replayer.Formats;
using Replayer.Replay;
using Replayer.Store;

namespace Replayer.Cli.Commands;

/// <summary><c>replayer check FILE|CAPTURE [--store S] [--json] [--era E]</c>: replay the trace and audit the
/// migration invariants. With a store (<c>--store</c>, <c>$REPLAYER_STORE</c>, or a capture id) the trace is
/// ingested first (a no-op when already stored), the stored capture is audited, and the result is appended to
/// the stream <c>audit-&lt;capture id&gt;</c>; without one the file is audited directly and nothing is written.
/// Exit 0 = no findings, 1 = findings, 2 = input error.</summary>
public static class CheckCommand
{
    public static Command Create()
    {
        var file = new Argument<string>("file") { Description = "Trace file (any format replayer reads), or a stored capture stream (capture-<id>)" };
        var json = new Option<bool>("--json") { Description = "Print the audit result as JSON" };
        var era = new Option<string?>("--era") { Description = "Force the kernel era: 2.6.34, 2.6.35, 6.1, 6.12, 6.13 (default: detected)" };
        var store = IngestCommand.StoreOption();
        var lenient = new Option<bool>("--lenient") { Description = "Count lines that are not understood (reported as reader counters) instead of stopping at the first one" };
        var noSave = new Option<bool>("--no-save") { Description = "With a store: do not append the audit result to the stream audit-<capture id>" };
        var cmd = new Command("check", "Audit FILE_MAPPED accounting and the migration protocol (invariants I1–I7); exit 1 when there are findings. With --store (or $REPLAYER_STORE) the trace is ingested first and the result is appended to audit-<capture id>") { file, json, era, store, noSave, lenient };
        cmd.SetAction(pr => CliRunner.Run(() => Run(pr.GetValue(file)!, pr.GetValue(json), pr.GetValue(era), Console.Out, pr.GetValue(store), !pr.GetValue(noSave), !pr.GetValue(lenient))));
        return cmd;
    }

    public const string AuditStreamPrefix = "audit-";
    /// <summary>Event type of audit results in <c>audit-&lt;capture id&gt;</c> streams (payload: MessagePack <see cref="AuditResult"/>).</summary>
    public const string AuditEventType = "AuditResult";

    static bool IsStoredCapture(string arg) => StoredCapture.Names(arg);

    /// <summary>Audits a capture stream of the store. Kprobe definitions, uname and formats come from the capture
    /// context stored with it (metadata <c>context</c>); for captures stored without one, from the folder it was
    /// ingested from when that still exists (metadata <c>sourcePath</c>).</summary>
    public static AuditResult AuditStored(IEventStore store, string streamName, Era? era, Action<DomainEvent, ReplayState>? applied = null) =>
        AuditStored(store, streamName, era, out _, applied);

    /// <inheritdoc cref="AuditStored(IEventStore, string, Era?, Action{DomainEvent, ReplayState}?)"/>
    /// <param name="truth">the ground truth stored with the capture (memory.stat before/after).</param>
    public static AuditResult AuditStored(IEventStore store, string streamName, Era? era, out List<CgroupTruth> truth, Action<DomainEvent, ReplayState>? applied = null)
    {
        using var capture = StoredCapture.Open(store, streamName);
        truth = GroundTruth(capture.GroundTruthFiles);
        var header = new CaptureHeader { KernelRelease = capture.KernelRelease };
        // the context stored at ingest, never the current disk; the source folder only for captures stored without one
        var r = Replay.Audit.Run(capture.Views(), new AuditOptions
        {
            Context = capture.Context, TracePath = capture.Context == null ? capture.TracePath : null, Header = header, Era = era, Applied = applied,
            DecodeAhead = true,
        }, out _);
        return r with { Source = capture.StreamName };
    }

    /// <summary>Appends <paramref name="result"/> to <c>audit-&lt;captureId&gt;</c>; returns the stream name.</summary>
    public static string Save(IEventStore store, string captureId, AuditResult result)
    {
        var stream = new StreamName(AuditStreamPrefix + captureId);
        var payload = MessagePack.MessagePackSerializer.Serialize(result);
        store.AppendAsync(stream, ExpectedRevision.Any, EventBatch.Of([new EventRecord(AuditEventType, payload)])).GetAwaiter().GetResult();
        return stream.Value;
    }

    /// <summary>Ground truth from <c>memory.stat.&lt;cgroup&gt;.{before,after}</c> beside the trace: file_mapped in pages.</summary>
    public sealed record CgroupTruth(string Cgroup, long BeforePages, long AfterPages)
    {
        public long DeltaPages => AfterPages - BeforePages;
    }

    public static Era? ParseEra(string? era)
    {
        if (era == null) return null;
        try { return Eras.Parse(era); }
        catch (ArgumentException e) { throw new UsageException(e.Message); }
    }

    public static IEnumerable<TraceEvent> ReadAll(string path, Action<CaptureHeader>? header = null)
    {
        if (!File.Exists(path)) throw new UsageException($"{path}: no such file");
        using var r = TraceOpener.Open(path);
        header?.Invoke(r.Header);
        while (r.Read() is { } e) yield return e;
    }

    /// <summary>Runs the audit of a trace file.</summary>
    public static AuditResult Audit(string path, Era? era, Action<DomainEvent, ReplayState>? applied = null, bool strict = false)
    {
        if (!File.Exists(path)) throw new UsageException($"{path}: no such file");
        using var r = TraceOpener.Open(path, new TraceOpenOptions { Strict = strict });
        try
        {
            return Replay.Audit.Run(r.Views(), new AuditOptions { TracePath = path, Header = r.Header, Era = era, Applied = applied, DecodeAhead = true }, out _);
        }
        catch (InvalidOperationException e) when (e.Message.StartsWith("no era adapter", StringComparison.Ordinal))
        {
            throw new UsageException(e.Message);
        }
    }

    /// <summary>Ground truth from the <c>memory.stat.&lt;cgroup&gt;.{before,after}</c> files beside a trace.</summary>
    public static List<CgroupTruth> GroundTruth(string tracePath)
    {
        var dir = Path.GetDirectoryName(Path.GetFullPath(tracePath))!;
        return GroundTruth(Directory.GetFiles(dir, "memory.stat.*").ToDictionary(f => Path.GetFileName(f), File.ReadAllText, StringComparer.Ordinal));
    }

    /// <summary>Ground truth from <c>memory.stat.&lt;cgroup&gt;.{before,after}</c> contents by file name (a folder's or a stored capture's).</summary>
    public static List<CgroupTruth> GroundTruth(IReadOnlyDictionary<string, string> files)
    {
        var list = new List<CgroupTruth>();
        foreach (var (before, text) in files.Where(kv => kv.Key.StartsWith("memory.stat.", StringComparison.Ordinal) && kv.Key.EndsWith(".before", StringComparison.Ordinal)).OrderBy(kv => kv.Key, StringComparer.Ordinal))
        {
            if (!files.TryGetValue(before[..^".before".Length] + ".after", out var afterText)) continue;
            long? b = FileMapped(text), a = FileMapped(afterText);
            if (b == null || a == null) continue;
            var name = before["memory.stat.".Length..^".before".Length];
            list.Add(new CgroupTruth(name, b.Value / 4096, a.Value / 4096));
        }
        return list;
    }

    static long? FileMapped(string memoryStat)
    {
        foreach (var line in memoryStat.Split('\n'))
        {
            var parts = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            if (parts.Length == 2 && parts[0] is "file_mapped" or "mapped_file" && long.TryParse(parts[1], out var v)) return v;
        }
        return null;
    }

    public static int Run(string path, bool json, string? era, TextWriter output, string? storeSpec = null, bool save = true, bool strict = true)
    {
        var forced = ParseEra(era);
        AuditResult result;
        List<CgroupTruth> truth;
        string? saved = null;
        storeSpec ??= NullIfEmpty(Environment.GetEnvironmentVariable("REPLAYER_STORE"));
        if (IsStoredCapture(path))
        {
            using var store = StoreFactory.Open(storeSpec, readOnly: !save);
            result = AuditStored(store, path, forced, out truth);
            if (save) saved = Save(store, StoredCapture.StreamNameOf(path)[IngestCommand.StreamPrefix.Length..], result);
        }
        else if (storeSpec != null)
        {
            if (!File.Exists(path)) throw new UsageException($"{path}: no such file");
            using var store = StoreFactory.Open(storeSpec);
            // Event-sourced: the capture is stored once and every audit replays the stored events.
            var id = IngestCommand.IngestOne(store, path, strict, Console.Error);
            result = AuditStored(store, IngestCommand.StreamPrefix + id, forced, out truth);
            if (save) saved = Save(store, id, result);
        }
        else
        {
            result = Audit(path, forced, strict: strict);
            truth = GroundTruth(path);
        }
        result = MatchGroundTruth(result, truth);
        if (json) WriteJson(result, truth, output);
        else
        {
            WriteText(result, truth, output);
            if (saved != null) output.WriteLine("Audit result appended to " + saved + ".");
        }
        return result.Findings.Length > 0 ? ExitCodes.Findings : ExitCodes.Ok;
    }

    /// <summary>The events name a memcg only by its memcg_data pointer, memory.stat by cgroup: a memcg gets a
    /// cgroup's ground truth only when the match is unambiguous (one cgroup and one memcg with the same
    /// non-zero FILE_MAPPED change).</summary>
    public static AuditResult MatchGroundTruth(AuditResult r, List<CgroupTruth> truth)
    {
        var memcgs = r.Memcgs.ToArray();
        foreach (var t in truth.Where(t => t.DeltaPages != 0))
        {
            if (truth.Count(u => u.DeltaPages == t.DeltaPages) != 1) continue;
            var same = Enumerable.Range(0, memcgs.Length).Where(i => memcgs[i].CounterDelta == t.DeltaPages).ToList();
            if (same.Count == 1) memcgs[same[0]] = memcgs[same[0]] with { GroundTruthDelta = t.DeltaPages, Cgroup = t.Cgroup };
        }
        return r with { Memcgs = memcgs };
    }

    static string? NullIfEmpty(string? s) => string.IsNullOrEmpty(s) ? null : s;

    static string Hex(ulong v) => "0x" + v.ToString("x", CultureInfo.InvariantCulture);

    static void WriteText(AuditResult r, List<CgroupTruth> truth, TextWriter o)
    {
        o.WriteLine($"{r.Source}: era {r.Era}{(r.EraForced ? " (forced)" : "")}{(r.KernelRelease != null ? ", kernel " + r.KernelRelease.Split(' ').FirstOrDefault(t => t.Length > 0 && char.IsDigit(t[0])) : "")}, {r.Events} events, {r.DataLossEvents} data-loss markers");
        o.WriteLine();
        if (r.Findings.Length == 0) o.WriteLine("No findings.");
        else o.WriteLine($"{r.Findings.Length} finding(s):");
        foreach (var f in r.Findings)
        {
            o.WriteLine($"  [{f.InvariantId}] {f.Severity.ToString().ToUpperInvariant()} at {TraceEvent.FormatTimestamp(f.Timestamp)} cpu {f.Cpu} pid {f.Pid}"
                + (f.Pfns.Length > 0 ? " pfn " + string.Join(",", f.Pfns.Select(Hex)) : "") + (f.Memcg is { } m ? " memcg " + Hex(m) : ""));
            o.WriteLine("    " + f.Explanation);
            foreach (var ev in f.Evidence) o.WriteLine("      " + ev.Text);
            if (f.StateBefore != null) o.WriteLine("    before: " + f.StateBefore);
            if (f.StateAfter != null) o.WriteLine("    after:  " + f.StateAfter);
        }
        o.WriteLine();
        o.WriteLine("Invariants:");
        foreach (var v in r.Verdicts)
        {
            string status = v.Status switch { VerdictStatus.Pass => "pass", VerdictStatus.Fail => "FAIL", VerdictStatus.NotCheckable => "not checkable", _ => "n/a" };
            string detail = v.Status is VerdictStatus.Pass or VerdictStatus.Fail ? $"{v.Checked} checked" + (v.Findings > 0 ? $", {v.Findings} findings" : "") : "";
            if (v.Reason != null) detail = detail.Length > 0 ? detail + "; " + v.Reason : v.Reason;
            o.WriteLine($"  {v.InvariantId,-30} {status,-14} {detail}");
        }
        o.WriteLine();
        o.WriteLine("FILE_MAPPED per memcg over the capture (pages):");
        o.WriteLine($"  {"memcg",-20} {"counter events",15} {"page states",12} {"ground truth",13}");
        foreach (var m in r.Memcgs)
            o.WriteLine($"  {Hex(m.Memcg),-20} {m.CounterDelta,15:+#;-#;0} {m.ImpliedDelta,12:+#;-#;0} {(m.GroundTruthDelta is { } g ? g.ToString("+#;-#;0", CultureInfo.InvariantCulture) + " (" + m.Cgroup + ")" : "?"),13}{(m.Tainted ? "  (data loss: unreliable)" : "")}");
        if (truth.Count > 0)
        {
            o.WriteLine("Ground truth beside the trace (memory.stat file_mapped, pages):");
            foreach (var t in truth) o.WriteLine($"  {t.Cgroup,-24} before {t.BeforePages,8} after {t.AfterPages,8} delta {t.DeltaPages,8:+#;-#;0}");
        }
    }

    static void WriteJson(AuditResult r, List<CgroupTruth> truth, TextWriter o)
    {
        var ms = new MemoryStream();
        using (var w = new Utf8JsonWriter(ms, new JsonWriterOptions { Indented = true, Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping }))
        {
            w.WriteStartObject();
            w.WriteString("file", r.Source);
            w.WriteString("era", r.Era.ToString());
            w.WriteBoolean("era_forced", r.EraForced);
            if (r.KernelRelease != null) w.WriteString("kernel_release", r.KernelRelease);
            w.WriteNumber("events", r.Events);
            w.WriteNumber("data_loss_events", r.DataLossEvents);
            w.WriteStartArray("findings");
            foreach (var f in r.Findings)
            {
                w.WriteStartObject();
                w.WriteString("invariant", f.InvariantId);
                w.WriteString("severity", f.Severity.ToString().ToLowerInvariant());
                w.WriteNumber("time_ns", f.Timestamp);
                w.WriteString("time", TraceEvent.FormatTimestamp(f.Timestamp));
                w.WriteNumber("cpu", f.Cpu);
                w.WriteNumber("pid", f.Pid);
                w.WriteStartArray("pfns");
                foreach (var p in f.Pfns) w.WriteStringValue(Hex(p));
                w.WriteEndArray();
                if (f.Memcg is { } m) w.WriteString("memcg", Hex(m)); else w.WriteNull("memcg");
                w.WriteString("explanation", f.Explanation);
                w.WriteStartArray("evidence");
                foreach (var ev in f.Evidence)
                {
                    w.WriteStartObject();
                    w.WriteNumber("line", ev.Source);
                    w.WriteNumber("time_ns", ev.Timestamp);
                    w.WriteNumber("cpu", ev.Cpu);
                    w.WriteNumber("pid", ev.Pid);
                    w.WriteString("event", ev.Name);
                    w.WriteString("text", ev.Text);
                    w.WriteEndObject();
                }
                w.WriteEndArray();
                if (f.StateBefore != null) w.WriteString("state_before", f.StateBefore); else w.WriteNull("state_before");
                if (f.StateAfter != null) w.WriteString("state_after", f.StateAfter); else w.WriteNull("state_after");
                w.WriteEndObject();
            }
            w.WriteEndArray();
            w.WriteStartArray("invariants");
            foreach (var v in r.Verdicts)
            {
                w.WriteStartObject();
                w.WriteString("id", v.InvariantId);
                w.WriteString("verdict", v.Status switch { VerdictStatus.Pass => "pass", VerdictStatus.Fail => "fail", VerdictStatus.NotCheckable => "not checkable", _ => "not applicable" });
                if (v.Reason != null) w.WriteString("reason", v.Reason); else w.WriteNull("reason");
                w.WriteNumber("findings", v.Findings);
                w.WriteNumber("checked", v.Checked);
                w.WriteNumber("skipped_unknown", v.SkippedUnknown);
                w.WriteEndObject();
            }
            w.WriteEndArray();
            w.WriteStartArray("memcgs");
            foreach (var m in r.Memcgs)
            {
                w.WriteStartObject();
                w.WriteString("memcg", Hex(m.Memcg));
                w.WriteNumber("file_mapped_delta_counter_pages", m.CounterDelta);
                w.WriteNumber("file_mapped_delta_page_states", m.ImpliedDelta);
                if (m.GroundTruthDelta is { } g) { w.WriteNumber("file_mapped_delta_ground_truth_pages", g); w.WriteString("cgroup", m.Cgroup); }
                w.WriteBoolean("tainted", m.Tainted);
                w.WriteEndObject();
            }
            w.WriteEndArray();
            w.WriteStartArray("ground_truth");
            foreach (var t in truth)
            {
                w.WriteStartObject();
                w.WriteString("cgroup", t.Cgroup);
                w.WriteNumber("file_mapped_before_pages", t.BeforePages);
                w.WriteNumber("file_mapped_after_pages", t.AfterPages);
                w.WriteNumber("file_mapped_delta_pages", t.DeltaPages);
                w.WriteEndObject();
            }
            w.WriteEndArray();
            w.WriteEndObject();
        }
        o.WriteLine(System.Text.Encoding.UTF8.GetString(ms.ToArray()));
    }

    /// <summary>Parses a time given as seconds (<c>25.369233</c>, as traces print it) or nanoseconds (<c>25369233000ns</c>).</summary>
    public static long ParseTime(string s)
    {
        s = s.Trim();
        if (s.EndsWith("ns", StringComparison.Ordinal) && long.TryParse(s[..^2], NumberStyles.None, CultureInfo.InvariantCulture, out var ns)) return ns;
        if (decimal.TryParse(s, NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out var sec)) return (long)(sec * 1_000_000_000m);
        throw new UsageException($"--at: expected seconds (25.369233) or nanoseconds (25369233000ns), found '{s}'");
    }

    /// <summary>Parses a pfn or memcg: hex with 0x, else decimal.</summary>
    public static ulong ParseNumber(string what, string s)
    {
        s = s.Trim();
        if (s.StartsWith("0x", StringComparison.OrdinalIgnoreCase) && ulong.TryParse(s[2..], NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out var h)) return h;
        if (ulong.TryParse(s, NumberStyles.None, CultureInfo.InvariantCulture, out var d)) return d;
        throw new UsageException($"{what}: expected a number (0x1a2b or 6699), found '{s}'");
    }
}
