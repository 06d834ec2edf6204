namespace Replayer.TestKit;

/// <summary>Locates the repository and its bundled captures from a test's working directory.</summary>
public static class Repo
{
    static readonly Lazy<string> _root = new(() =>
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir != null && !File.Exists(Path.Combine(dir.FullName, "Replayer.sln")))
            dir = dir.Parent;
        return dir?.FullName ?? throw new InvalidOperationException("Replayer.sln not found above " + AppContext.BaseDirectory);
    });

    public static string Root => _root.Value;
    public static string Traces => Path.Combine(Root, "traces");
    public static string Trace(params string[] parts) => Path.Combine([Traces, .. parts]);

    /// <summary>The real capture folders (6.1-ext4-basic, …) under traces/.</summary>
    public static IEnumerable<string> RealCaptures() =>
        Directory.GetDirectories(Traces).Where(d => File.Exists(Path.Combine(d, "summary.txt"))).OrderBy(d => d, StringComparer.Ordinal);

    /// <summary>A scratch directory under the system temp folder, deleted by the caller.</summary>
    public static string TempDir(string prefix)
    {
        var d = Path.Combine(Path.GetTempPath(), "replayer-" + prefix + "-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(d);
        return d;
    }
}
