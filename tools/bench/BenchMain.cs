using System.Reflection;

namespace Replayer.Bench;

/// <summary>A benchmark: a class with a public parameterless constructor, found by reflection.</summary>
public interface IBenchmark
{
    /// <summary>Name on the command line (<c>bench NAME</c>).</summary>
    string Name { get; }
    string Help { get; }
    int Run(string[] args);
}

public static class BenchMain
{
    public static int Run(string[] args)
    {
        var all = typeof(BenchMain).Assembly.GetTypes()
            .Where(t => typeof(IBenchmark).IsAssignableFrom(t) && t is { IsAbstract: false, IsInterface: false })
            .Select(t => (IBenchmark)Activator.CreateInstance(t)!)
            .OrderBy(b => b.Name, StringComparer.Ordinal)
            .ToList();
        var chosen = args.Length > 0 ? all.FirstOrDefault(b => b.Name == args[0]) : null;
        if (chosen == null)
        {
            Console.Error.WriteLine("usage: dotnet run -c Release --project tools/bench -- <name> [args]");
            foreach (var b in all)
                Console.Error.WriteLine($"  {b.Name,-16} {b.Help}");
            return 2;
        }
        return chosen.Run(args[1..]);
    }
}
