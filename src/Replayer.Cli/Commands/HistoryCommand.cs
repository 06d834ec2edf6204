using System.CommandLine;
using Replayer.Core.Domain;
using Replayer.Replay;

namespace Replayer.Cli.Commands;

/// <summary><c>replayer history FILE --pfn P [--era E]</c>: every event that touched the page, with its state after each.</summary>
public static class HistoryCommand
{
    public static Command Create()
    {
        var file = new Argument<string>("file") { Description = "Trace file" };
        var pfn = new Option<string>("--pfn") { Description = "The page (0x… or decimal)", Required = true };
        var era = new Option<string?>("--era") { Description = "Force the kernel era" };
        var cmd = new Command("history", "Every event that touched a page, with the page's state after each") { file, pfn, era };
        cmd.SetAction(pr => CliRunner.Run(() => Run(pr.GetValue(file)!, pr.GetValue(pfn)!, pr.GetValue(era), Console.Out)));
        return cmd;
    }

    public static int Run(string path, string pfnText, string? era, TextWriter o)
    {
        ulong pfn = CheckCommand.ParseNumber("--pfn", pfnText);
        long n = 0;
        CheckCommand.Audit(path, CheckCommand.ParseEra(era), (e, s) =>
        {
            bool touches = false;
            foreach (var p in DomainEventPages.Pfns(e)) if (p == pfn) { touches = true; break; }
            if (!touches) return;
            n++;
            o.WriteLine(DomainFormat.Short(e));
            o.WriteLine("    → " + (s.PageOrNull(pfn)?.ToString() ?? $"pfn 0x{pfn:x} freed / not tracked"));
        });
        o.WriteLine($"{n} events touched pfn 0x{pfn:x}");
        return ExitCodes.Ok;
    }
}
