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
    /// <summary>The repository root (the folder with Replayer.sln above the benchmark binary or the working directory).</summary>
    public static string RepoRoot
    {
        get
        {
            foreach (var start in new[] { AppContext.BaseDirectory, Directory.GetCurrentDirectory() })
                for (var d = new DirectoryInfo(start); d != null; d = d.Parent)
                    if (File.Exists(Path.Combine(d.FullName, "Replayer.sln"))) return d.FullName;
            throw new InvalidOperationException("run from inside the repository (Replayer.sln not found)");
        }
    }

    /// <summary>A path under the repository root, e.g. <c>RepoFile("traces", "6.1-ext4-large", …)</c>.</summary>
    public static string RepoFile(params string[] parts) => Path.Combine([RepoRoot, .. parts]);

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
