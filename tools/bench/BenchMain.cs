namespace Replayer.Bench;

public static class BenchMain
{
    /// <summary>Named benchmarks; each stage registers its own.</summary>
    static readonly Dictionary<string, (string Help, Func<string[], int> Run)> Benchmarks = new(StringComparer.Ordinal);

    public static void Register(string name, string help, Func<string[], int> run) => Benchmarks[name] = (help, run);

    public static int Run(string[] args)
    {
        BenchRegistry.RegisterAll();
        if (args.Length == 0 || !Benchmarks.TryGetValue(args[0], out var b))
        {
            Console.Error.WriteLine("usage: bench <name> [args]");
            foreach (var (name, (help, _)) in Benchmarks.OrderBy(k => k.Key))
                Console.Error.WriteLine($"  {name,-16} {help}");
            return 2;
        }
        return b.Run(args[1..]);
    }
}

/// <summary>One line per stage adds its benchmarks here.</summary>
public static partial class BenchRegistry
{
    public static void RegisterAll()
    {
    }
}
