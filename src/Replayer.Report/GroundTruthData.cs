using System.Globalization;
using System.Text.RegularExpressions;

namespace Replayer.Report;

/// <summary>
/// FILE_MAPPED ground truth recorded beside a capture: the phases the workload printed
/// (<c>workload.stdout</c>: <c>[phase] memcgA memory.stat file_mapped BYTES</c>, and its markers
/// <c>### TEXT</c> in order) and <c>memory.stat.&lt;cgroup&gt;.{before,after}</c>. Values in pages (bytes / 4096).
/// </summary>
public sealed partial class GroundTruthData
{
    /// <summary>One phase: values per cgroup; the markers printed before and after it (a phase's values hold
    /// from the end of the action after <see cref="After"/> until <see cref="Before"/> begins the next action).</summary>
    public sealed record Phase(string Name, string? After, string? Before, Dictionary<string, long> Pages);

    public List<Phase> Phases { get; } = [];
    /// <summary>cgroup → (file_mapped before, after) from memory.stat.*.{before,after}.</summary>
    public SortedDictionary<string, (long? Before, long? After)> Stat { get; } = new(StringComparer.Ordinal);
    /// <summary>Names of the cgroups the phases mention (memcgA, …) → the path the workload printed for them, if any.</summary>
    public Dictionary<string, string> Paths { get; } = new(StringComparer.Ordinal);

    public bool IsEmpty => Phases.Count == 0 && Stat.Count == 0;

    [GeneratedRegex(@"^\[(?<phase>[^\]]+)\] (?<cg>\S+) memory\.stat (?:file_mapped|mapped_file) (?<bytes>\d+)\s*$")]
    private static partial Regex PhaseLine();

    [GeneratedRegex(@"\bcg(?<x>[A-Za-z0-9]+)=(?<path>\S+)")]
    private static partial Regex CgroupPath();

    /// <summary>Reads the ground-truth files found beside a trace.</summary>
    public static GroundTruthData FromDirectory(string? tracePath)
    {
        var files = new Dictionary<string, string>(StringComparer.Ordinal);
        if (tracePath != null && Path.GetDirectoryName(Path.GetFullPath(tracePath)) is { } dir && Directory.Exists(dir))
            foreach (var f in Directory.EnumerateFiles(dir))
            {
                var n = Path.GetFileName(f);
                if ((n == "workload.stdout" || n.StartsWith("memory.stat.", StringComparison.Ordinal)) && new FileInfo(f).Length < (1 << 20))
                    files[n] = File.ReadAllText(f);
            }
        return FromFiles(files);
    }

    /// <summary>Parses ground-truth files given by name (as a stored capture's <c>groundTruth</c> metadata keeps them).</summary>
    public static GroundTruthData FromFiles(IReadOnlyDictionary<string, string> files)
    {
        var g = new GroundTruthData();
        if (files.TryGetValue("workload.stdout", out var stdout)) g.ParseStdout(stdout);
        foreach (var (name, text) in files.OrderBy(kv => kv.Key, StringComparer.Ordinal))
        {
            if (!name.StartsWith("memory.stat.", StringComparison.Ordinal)) continue;
            bool before = name.EndsWith(".before", StringComparison.Ordinal), after = name.EndsWith(".after", StringComparison.Ordinal);
            if (!before && !after) continue;
            var cg = name["memory.stat.".Length..^(before ? ".before".Length : ".after".Length)];
            var v = FileMapped(text);
            g.Stat.TryGetValue(cg, out var cur);
            g.Stat[cg] = before ? (v, cur.After) : (cur.Before, v);
        }
        return g;
    }

    static long? FileMapped(string text)
    {
        foreach (var line in text.Split('\n'))
        {
            var parts = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            if (parts.Length == 2 && parts[0] is "file_mapped" or "mapped_file" && long.TryParse(parts[1], NumberStyles.None, CultureInfo.InvariantCulture, out var b)) return b / 4096;
        }
        return null;
    }

    void ParseStdout(string text)
    {
        string? lastMarker = null;
        Phase? open = null;
        foreach (var raw in text.Split('\n'))
        {
            var line = raw.TrimEnd('\r');
            foreach (Match pm in CgroupPath().Matches(line)) Paths.TryAdd("memcg" + pm.Groups["x"].Value, pm.Groups["path"].Value);
            var m = PhaseLine().Match(line);
            if (m.Success)
            {
                var name = m.Groups["phase"].Value;
                if (open == null || open.Name != name)
                {
                    open = new Phase(name, lastMarker, null, new Dictionary<string, long>(StringComparer.Ordinal));
                    Phases.Add(open);
                }
                open.Pages[m.Groups["cg"].Value] = long.Parse(m.Groups["bytes"].Value, CultureInfo.InvariantCulture) / 4096;
                continue;
            }
            if (line.StartsWith("### ", StringComparison.Ordinal))
            {
                lastMarker = line[4..].Trim();
                for (int i = Phases.Count - 1; i >= 0 && Phases[i].Before == null; i--) Phases[i] = Phases[i] with { Before = lastMarker };
                open = null;
            }
        }
    }
}
