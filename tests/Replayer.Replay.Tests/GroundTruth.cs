using System.Text.RegularExpressions;

namespace Replayer.Replay.Tests;

/// <summary>
/// The workload's own record (<c>workload.stdout</c> beside the trace): <c>file_mapped</c> of memcg A and
/// B at each phase, and the markers it wrote (<c>### migwl: …</c>), in order. The ground truth at a
/// marker is the last phase printed before it.
/// </summary>
public sealed partial class GroundTruth
{
    /// <param name="FirstAfterPhase">No other marker since the phase was printed: the phase's values hold at
    /// this marker even when the workload prints a phase after the marker that ends the step it measures.</param>
    public sealed record Point(string Marker, long? APages, long? BPages, bool FirstAfterPhase = true);

    public List<Point> AtMarkers { get; } = [];
    public long? FinalA { get; private set; }
    public long? FinalB { get; private set; }
    public List<long> AllB { get; } = [];

    [GeneratedRegex(@"^\[(?<phase>[^\]]+)\] memcg(?<cg>[AB]) memory\.stat file_mapped (?<bytes>\d+)$")]
    private static partial Regex PhaseLine();

    public static GroundTruth? For(string tracePath)
    {
        var f = Path.Combine(Path.GetDirectoryName(tracePath)!, "workload.stdout");
        if (!File.Exists(f)) return null;
        var g = new GroundTruth();
        long? a = null, b = null;
        bool fresh = false;
        foreach (var line in File.ReadLines(f))
        {
            var m = PhaseLine().Match(line);
            if (m.Success)
            {
                long pages = long.Parse(m.Groups["bytes"].Value) / 4096;
                if (m.Groups["cg"].Value == "A") a = pages; else { b = pages; g.AllB.Add(pages); }
                fresh = true;
                continue;
            }
            if (line.StartsWith("### ", StringComparison.Ordinal)) { g.AtMarkers.Add(new Point(line[4..].Trim(), a, b, fresh)); fresh = false; }
        }
        g.FinalA = a; g.FinalB = b;
        return g;
    }
}
