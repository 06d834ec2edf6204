using System.Globalization;
using System.Text.Json;
using Replayer.Core;
using Replayer.Formats.Writers;
using Replayer.Replay;

namespace Replayer.Report;

/// <summary>
/// Trace → Chrome Trace Event JSON for the Perfetto UI / chrome://tracing, in one pass: every event on its
/// CPU's track; the replay adds migration attempts and <c>mm_migrate_pages</c> windows as async slices (src/dst
/// pfn args), FILE_MAPPED of each memcg as a counter track (counter events and implied by page states), and the
/// audit's findings as instant events on the CPU where they happened.
/// </summary>
public static class ChromeExport
{
    public const int MigrationProcess = 2;
    public const int MemcgProcess = 3;
    public const string AttemptCategory = "migration";
    public const string WindowCategory = "migrate_pages";
    public const string FindingCategory = "finding";

    static string Hex(ulong v) => "0x" + v.ToString("x", CultureInfo.InvariantCulture);

    public static string CounterName(ulong memcg) => "FILE_MAPPED memcg " + Hex(memcg);

    public static ReportData Write(ReportInput input, Stream output)
    {
        using var w = new ChromeTraceWriter(output, leaveOpen: true);
        w.ProcessName(MigrationProcess, "Migrations", 1);
        w.ProcessName(MemcgProcess, "FILE_MAPPED per memcg (pages, change since capture start)", 2);
        long windowId = 0;
        var recorder = new TimelineRecorder
        {
            AttemptClosed = a =>
            {
                long id = a.Id * 2;
                Action<Utf8JsonWriter> args = j =>
                {
                    j.WriteString("src_pfn", Hex(a.SrcPfn));
                    j.WriteString("dst_pfn", a.DstPfn is { } d ? Hex(d) : "unknown");
                    j.WriteNumber("task", a.Pid);
                    j.WriteString("outcome", a.Outcome.ToString());
                    if (a.Memcg is { } m) j.WriteString("memcg", Hex(m));
                    if (a.Tainted) j.WriteBoolean("data_loss", true);
                };
                w.AsyncBegin("migrate " + Hex(a.SrcPfn), AttemptCategory, id, a.Start, MigrationProcess, a.Pid, args);
                w.AsyncEnd("migrate " + Hex(a.SrcPfn), AttemptCategory, id, a.End, MigrationProcess, a.Pid);
            },
            WindowClosed = win =>
            {
                long id = ++windowId * 2 + 1;
                var name = "migrate_pages " + win.Comm + "-" + win.Pid.ToString(CultureInfo.InvariantCulture);
                w.AsyncBegin(name, WindowCategory, id, win.Start, MigrationProcess, win.Pid, j =>
                {
                    j.WriteNumber("task", win.Pid);
                    if (win.Reason != null) j.WriteString("reason", win.Reason);
                    j.WriteNumber("attempts", win.Attempts);
                    j.WriteNumber("succeeded", win.Succeeded);
                    j.WriteNumber("failed", win.Failed);
                    if (!win.Closed) j.WriteBoolean("open_at_end", true);
                });
                w.AsyncEnd(name, WindowCategory, id, win.End, MigrationProcess, win.Pid);
            },
            MemcgChanged = (memcg, t, counter, implied) =>
                w.Counter(CounterName(memcg), t, MemcgProcess, [("counter", counter), ("implied", implied)]),
        };
        var data = ReportBuilder.Collect(input, recorder, w.Write);
        foreach (var f in data.Audit.Findings)
            w.Instant("finding: " + f.InvariantId, FindingCategory, f.Timestamp, ChromeTraceWriter.CpuProcess, w.CpuTrack(f.Cpu), 't', j =>
            {
                j.WriteString("invariant", f.InvariantId);
                j.WriteString("severity", f.Severity.ToString());
                j.WriteString("explanation", f.Explanation);
                j.WriteNumber("task", f.Pid);
                j.WriteStartArray("pfns");
                foreach (var p in f.Pfns) j.WriteStringValue(Hex(p));
                j.WriteEndArray();
                if (f.Memcg is { } m) j.WriteString("memcg", Hex(m));
                j.WriteStartArray("evidence");
                foreach (var ev in f.Evidence) j.WriteStringValue($"{ev.Source}: {ev.Text}");
                j.WriteEndArray();
            });
        return data;
    }
}
