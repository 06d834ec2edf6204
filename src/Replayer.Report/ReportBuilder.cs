using Replayer.Core;
using Replayer.Formats;
using Replayer.Replay;

namespace Replayer.Report;

/// <summary>What to report on: the events (a reader over a file or a stored capture) and what lies beside them.</summary>
public sealed record ReportInput
{
    /// <summary>Shown as the capture's name (a path or <c>capture-&lt;id&gt;</c>).</summary>
    public required string Name { get; init; }
    public required ITraceReader Reader { get; init; }
    /// <summary>The trace file (kprobe definitions, uname, formats beside it); null when not on disk.</summary>
    public string? TracePath { get; init; }
    /// <summary>The capture context stored with a capture (kprobe definitions, uname, formats); when set it is
    /// used instead of anything on disk.</summary>
    public CaptureFiles? Context { get; init; }
    public GroundTruthData GroundTruth { get; init; } = new();
    public Era? Era { get; init; }
}

/// <summary>Everything the HTML report shows.</summary>
public sealed record ReportData(string Name, TraceFormat Format, AuditResult Audit, TimelineRecorder Timeline, GroundTruthData GroundTruth)
{
    public MemcgTimeline[] Panels { get; init; } = [];
}

/// <summary>One plot panel: a memcg's FILE_MAPPED over time, with the ground truth of the cgroup it matched.</summary>
public sealed record MemcgTimeline(ulong? Memcg, string? Cgroup, long? Baseline, StepSeries? Series, (long Time, long Pages, string Phase)[] Truth);

public static class ReportBuilder
{
    /// <summary>Replays and audits the input once, recording the timeline; <paramref name="recorder"/> may carry streaming callbacks.</summary>
    public static ReportData Collect(ReportInput input, TimelineRecorder? recorder = null, Action<TraceEvent>? onEvent = null)
    {
        var timeline = recorder ?? new TimelineRecorder();
        var reader = input.Reader;
        IEnumerable<TraceEvent> Events()
        {
            while (reader.Read() is { } e)
            {
                timeline.OnTrace(e);
                onEvent?.Invoke(e);
                yield return e;
            }
        }
        var result = Audit.Run(Events(), new AuditOptions { Context = input.Context, TracePath = input.Context == null ? input.TracePath : null, Header = reader.Header, Era = input.Era, Applied = timeline.OnApplied });
        timeline.Finish();
        result = result with { Source = input.Name };
        var data = new ReportData(input.Name, reader.Format, result, timeline, input.GroundTruth);
        return data with { Panels = Align(timeline, input.GroundTruth) };
    }

    static bool SameMarker(string? snap, string phaseMarker)
    {
        if (snap == null) return false;
        var s = snap.Trim();
        return s == phaseMarker || s.EndsWith(phaseMarker, StringComparison.Ordinal) || phaseMarker.EndsWith(s, StringComparison.Ordinal) && s.Length > 8;
    }

    /// <summary>Places the ground truth on the timeline (at the markers the workload wrote) and matches each cgroup
    /// to the memcg whose counter moves exactly like it (the same offset at every phase).</summary>
    public static MemcgTimeline[] Align(TimelineRecorder t, GroundTruthData g)
    {
        var snaps = t.Snapshots;
        var first = snaps.Count > 0 ? snaps[0] : null;
        var last = snaps.Count > 0 ? snaps[^1] : null;
        // cgroup key → timed points (snapshot, pages, phase)
        var truth = new SortedDictionary<string, List<(Snapshot Snap, long Pages, string Phase)>>(StringComparer.Ordinal);
        int cursor = 0;
        foreach (var ph in g.Phases)
        {
            Snapshot? at = null;
            if (ph.Before == null) at = last;
            else
                for (int i = cursor; i < snaps.Count; i++)
                    if (SameMarker(snaps[i].Marker, ph.Before)) { at = snaps[i]; cursor = i + 1; break; }
            if (at == null) continue;
            foreach (var (cg, pages) in ph.Pages)
            {
                if (!truth.TryGetValue(cg, out var list)) truth[cg] = list = [];
                list.Add((at, pages, ph.Name));
            }
        }
        foreach (var (cg, (before, after)) in g.Stat)
        {
            // memory.stat.<cgroup>.*: the same cgroup as the phase name whose printed path ends with it
            var key = g.Paths.FirstOrDefault(kv => Path.GetFileName(kv.Value.TrimEnd('/')) == cg).Key ?? cg;
            if (!truth.TryGetValue(key, out var list)) truth[key] = list = [];
            if (before is { } b && first != null) list.Insert(0, (first, b, "memory.stat before"));
            if (after is { } a && last != null) list.Add((last, a, "memory.stat after"));
        }

        var panels = new List<MemcgTimeline>();
        var matched = new HashSet<string>(StringComparer.Ordinal);
        var byMemcg = new Dictionary<ulong, (string Cg, long Baseline)>();
        foreach (var (cg, pts) in truth)
        {
            if (pts.Count < 2 || pts.Select(p => p.Pages).Distinct().Count() < 2) continue;
            var candidates = new List<(ulong Memcg, long Offset)>();
            foreach (var id in t.Series.Keys)
            {
                var offsets = pts.Select(p => p.Pages - (p.Snap.Memcgs.TryGetValue(id, out var v) ? v.Counter : 0)).Distinct().ToList();
                if (offsets.Count == 1) candidates.Add((id, offsets[0]));
            }
            if (candidates.Count == 1 && !byMemcg.ContainsKey(candidates[0].Memcg))
            {
                byMemcg[candidates[0].Memcg] = (cg, candidates[0].Offset);
                matched.Add(cg);
            }
        }
        string Label(string cg) => g.Paths.TryGetValue(cg, out var p) ? $"{cg} ({p})" : cg;
        foreach (var (id, series) in t.Series.OrderBy(kv => kv.Key))
        {
            if (byMemcg.TryGetValue(id, out var m))
                panels.Add(new MemcgTimeline(id, Label(m.Cg), m.Baseline, series, truth[m.Cg].Select(p => (p.Snap.Time, p.Pages, p.Phase)).ToArray()));
            else panels.Add(new MemcgTimeline(id, null, null, series, []));
        }
        foreach (var (cg, pts) in truth)
            if (!matched.Contains(cg) && pts.Count > 0)
                panels.Add(new MemcgTimeline(null, Label(cg), null, null, pts.Select(p => (p.Snap.Time, p.Pages, p.Phase)).ToArray()));
        return panels.ToArray();
    }
}
