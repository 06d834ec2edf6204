using System.CommandLine;
using Replayer.Cli.Commands;

namespace Replayer.Cli;

public static class Program
{
    public static int Main(string[] args)
    {
        var root = BuildRoot();
        return CliRunner.Run(() => root.Parse(args).Invoke());
    }

    /// <summary>The command tree. Each command lives in its own file under Commands/.</summary>
    public static RootCommand BuildRoot()
    {
        var root = new RootCommand("replayer: audit Linux page-migration traces (memcg FILE_MAPPED, PCG_MIGRATION)");
        foreach (var c in CommandRegistry.All())
            root.Subcommands.Add(c);
        return root;
    }
}
