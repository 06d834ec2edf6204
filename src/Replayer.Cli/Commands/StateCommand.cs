using System.CommandLine;
using Replayer.Core;
using Replayer.Replay;

namespace Replayer.Cli.Commands;

/// <summary><c>replayer state FILE --at TIME [--pfn P | --memcg M] [--era E]</c>: the model's state after
/// every event up to TIME.</summary>
public static class StateCommand
{
    public static Command Create()
    {
        var file = new Argument<string>("file") { Description = "Trace file" };
        var at = new Option<string>("--at") { Description = "Time: seconds as the trace prints them (25.369233) or nanoseconds (25369233000ns)", Required = true };
        var pfn = new Option<string?>("--pfn") { Description = "Show this page (0x… or decimal)" };
        var memcg = new Option<string?>("--memcg") { Description = "Show this memcg (its memcg_data pointer, 0x…)" };
        var era = new Option<string?>("--era") { Description = "Force the kernel era" };
        var cmd = new Command("state", "The replayed state (a page, a memcg, or a summary) at a point in time") { file, at, pfn, memcg, era };
        cmd.SetAction(pr => CliRunner.Run(() => Run(pr.GetValue(file)!, pr.GetValue(at)!, pr.GetValue(pfn), pr.GetValue(memcg), pr.GetValue(era), Console.Out)));
        return cmd;
    }

    public static int Run(string path, string atText, string? pfnText, string? memcgText, string? era, TextWriter o)
    {
        if (pfnText != null && memcgText != null) throw new UsageException("state: give --pfn or --memcg, not both");
        long at = CheckCommand.ParseTime(atText);
        ulong? pfn = pfnText == null ? null : CheckCommand.ParseNumber("--pfn", pfnText);
        ulong? memcg = memcgText == null ? null : CheckCommand.ParseNumber("--memcg", memcgText);
        string? snapshot = null;
        long events = 0, lastTs = long.MinValue;
        CheckCommand.Audit(path, CheckCommand.ParseEra(era), (e, s) =>
        {
            if (e.Timestamp > at) return;
            events++;
            lastTs = e.Timestamp;
            if (pfn is { } p) snapshot = s.PageOrNull(p)?.ToString();
            else if (memcg is { } m) snapshot = s.Memcgs.TryGetValue(m, out var ms) ? Memcg(ms) : null;
            else snapshot = $"{s.Pages.Count} pages tracked, {s.Memcgs.Count} memcgs, {s.Windows.Count} open migrate_pages windows, {s.AttemptsBySrc.Count} open migration attempts, {s.DataLoss} data-loss markers";
        });
        o.WriteLine($"state at {TraceEvent.FormatTimestamp(at)} after {events} events" + (lastTs != long.MinValue ? $" (last at {TraceEvent.FormatTimestamp(lastTs)})" : ""));
        if (pfn is { } pp) o.WriteLine(snapshot ?? $"pfn 0x{pp:x}: not tracked (never seen, or freed)");
        else if (memcg is { } mm) o.WriteLine(snapshot ?? $"memcg 0x{mm:x}: no FILE_MAPPED activity seen");
        else o.WriteLine(snapshot ?? "no events before that time");
        return ExitCodes.Ok;
    }

    static string Memcg(MemcgState m) =>
        $"memcg 0x{m.Id:x}: FILE_MAPPED {m.CounterDelta:+#;-#;0} pages by counter events, {m.ImpliedDelta:+#;-#;0} by page states ({m.Updates} updates){(m.Tainted ? "; data loss: unreliable" : "")}";
}
