using System.Globalization;

namespace Replayer.Gen;

public static class GenMain
{
    const string Usage = "usage: replayer-gen <scenario> [--seed N] [--scale K] -o DIR   |   replayer-gen --list";

    public static int Run(string[] args)
    {
        if (args.Length == 1 && args[0] == "--list")
        {
            foreach (var s in Scenarios.All) Console.WriteLine($"{s.Name,-18} {s.Model.Name,-8} {s.Description}");
            return 0;
        }
        string? scenario = null, outDir = null;
        ulong seed = 1;
        int scale = 1;
        for (int i = 0; i < args.Length; i++)
        {
            switch (args[i])
            {
                case "--seed" when i + 1 < args.Length:
                    if (!ulong.TryParse(args[++i], NumberStyles.None, CultureInfo.InvariantCulture, out seed))
                    { Console.Error.WriteLine("replayer-gen: --seed expects a non-negative integer, found '" + args[i] + "'"); return 2; }
                    break;
                case "--scale" when i + 1 < args.Length:
                    if (!int.TryParse(args[++i], NumberStyles.None, CultureInfo.InvariantCulture, out scale) || scale < 1)
                    { Console.Error.WriteLine("replayer-gen: --scale expects a positive integer, found '" + args[i] + "'"); return 2; }
                    break;
                case "-o" or "--out" when i + 1 < args.Length:
                    outDir = args[++i];
                    break;
                default:
                    if (args[i].StartsWith('-') || scenario != null) { Console.Error.WriteLine(Usage); return 2; }
                    scenario = args[i];
                    break;
            }
        }
        if (scenario == null || outDir == null) { Console.Error.WriteLine(Usage); return 2; }
        var spec = Scenarios.Find(scenario);
        if (spec == null)
        {
            Console.Error.WriteLine("replayer-gen: unknown scenario '" + scenario + "'; known: " + string.Join(", ", Scenarios.All.Select(s => s.Name)));
            return 2;
        }
        var r = Scenarios.Generate(spec, seed, scale);
        try
        {
            Output.WriteFolder(r, outDir);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            Console.Error.WriteLine("replayer-gen: cannot write " + outDir + ": " + e.Message);
            return 2;
        }
        Console.WriteLine($"{spec.Name} seed {seed} ({spec.Model.Name}): {r.Events.Count} events, {r.Findings.Count} expected findings -> {outDir}");
        return 0;
    }
}
