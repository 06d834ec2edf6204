using System.CommandLine;

namespace Replayer.Cli.Commands;

/// <summary>Every subcommand, in the order `replayer --help` lists them.</summary>
public static class CommandRegistry
{
    public static IEnumerable<Command> All()
    {
        yield return StatsCommand.Create();
        yield return ConvertCommand.Create();
        yield return CheckCommand.Create();
        yield return ReportCommand.Create();
        yield return StateCommand.Create();
        yield return HistoryCommand.Create();
        yield return IngestCommand.Create();
        yield return LsCommand.Create();
        yield return StoreCommand.Create();
    }
}
