using Replayer.Core;
using Replayer.Core.Domain;
using Replayer.Replay;

namespace Replayer.Report;

/// <summary>A migration attempt as a time slice: begin (first event of the attempt) → end (the event that closed it).</summary>
public readonly record struct AttemptSlice(long Id, int Pid, int Cpu, ulong SrcPfn, ulong? DstPfn, long Start, long End, MigrationOutcome Outcome, ulong? Memcg, bool Tainted);

/// <summary>An <c>mm_migrate_pages_start</c> … <c>mm_migrate_pages</c> window of one task.</summary>
public sealed record WindowSlice(int Pid, string Comm, long Start, long End, bool Closed, int Attempts, int Succeeded, int Failed, bool Tainted, string? Reason);

/// <summary>FILE_MAPPED deltas of every memcg at one moment (a marker, the start or the end of the capture).</summary>
public sealed record Snapshot(long Time, string? Marker, IReadOnlyDictionary<ulong, (long Counter, long Implied)> Memcgs);

/// <summary>
/// Watches a replay (the engine's <c>Applied</c> callback and the state's attempt hooks) and keeps what a
/// timeline needs, in bounded memory: per memcg a downsampled FILE_MAPPED series (counter and implied),
/// exact snapshots at each marker, the migration windows and attempts, event counts per name.
/// Optional callbacks stream every change (chrome export).
/// </summary>
public sealed class TimelineRecorder(int maxBuckets = 400, int maxWindows = 5000, int maxMarkers = 10_000)
{
    readonly Dictionary<ulong, StepSeries> _series = [];
    readonly List<(MemcgState State, StepSeries Series, long LastC, long LastI)> _watch = [];
    int _memcgCount = -1;
    readonly Dictionary<long, (MigrationAttempt A, long Start, int Cpu)> _openAttempts = [];
    readonly List<MigrationAttempt> _ended = [];
    readonly Dictionary<int, (MigrationWindow W, long Start)> _openWindows = [];
    readonly List<(long Start, long End)> _attemptBands = [];
    bool _hooked;
    ReplayState? _state;

    public Dictionary<string, long> EventsPerName { get; } = new(StringComparer.Ordinal);
    public long TraceEvents { get; private set; }
    public long FirstTime { get; private set; } = long.MaxValue;
    public long LastTime { get; private set; } = long.MinValue;
    public IReadOnlyDictionary<ulong, StepSeries> Series => _series;
    public List<Snapshot> Snapshots { get; } = [];
    public List<WindowSlice> Windows { get; } = [];
    public int WindowsDropped { get; private set; }
    public long AttemptsBegun { get; private set; }
    public long AttemptsSucceeded { get; private set; }
    public long AttemptsFailed { get; private set; }
    /// <summary>Merged time ranges during which at least one attempt was open (for captures without windows).</summary>
    public IReadOnlyList<(long Start, long End)> AttemptBands => _attemptBands;

    /// <summary>Streams each closed attempt (chrome export).</summary>
    public Action<AttemptSlice>? AttemptClosed { get; init; }
    /// <summary>Streams each FILE_MAPPED change: memcg, time, counter delta, implied delta.</summary>
    public Action<ulong, long, long, long>? MemcgChanged { get; init; }
    /// <summary>Streams each closed window.</summary>
    public Action<WindowSlice>? WindowClosed { get; init; }

    /// <summary>Counts a trace event (call for every event read, before it is decoded).</summary>
    public void OnTrace(TraceEvent e)
    {
        TraceEvents++;
        ref long c = ref System.Runtime.InteropServices.CollectionsMarshal.GetValueRefOrAddDefault(EventsPerName, e.Name, out _);
        c++;
    }

    /// <summary>The engine's <c>Applied</c> callback.</summary>
    public void OnApplied(DomainEvent e, ReplayState s)
    {
        long t = e.Timestamp;
        if (!_hooked)
        {
            _hooked = true;
            _state = s;
            s.AttemptBegun = a => Begin(a, a.StartEvent?.Timestamp ?? t, a.StartEvent?.Cpu ?? -1);
            s.AttemptEnded = a => _ended.Add(a);
            foreach (var a in s.AttemptsBySrc.Values) Begin(a, t, e.Cpu); // begun by the very first event
            Snapshots.Add(new Snapshot(t, null, new Dictionary<ulong, (long, long)>()));
        }
        if (t < FirstTime) FirstTime = t;
        if (t > LastTime) LastTime = t;
        if (_ended.Count > 0)
        {
            foreach (var a in _ended) Close(a, t);
            _ended.Clear();
        }
        if (s.Memcgs.Count != _memcgCount) RefreshMemcgs(s);
        var watch = System.Runtime.InteropServices.CollectionsMarshal.AsSpan(_watch);
        for (int i = 0; i < watch.Length; i++)
        {
            ref var w = ref watch[i];
            long c = w.State.CounterDelta, im = w.State.ImpliedDelta;
            if (c == w.LastC && im == w.LastI) continue;
            w.LastC = c; w.LastI = im;
            w.Series.Add(t, c, im);
            MemcgChanged?.Invoke(w.State.Id, t, c, im);
        }
        if (s.Windows.Count > 0 || _openWindows.Count > 0) TrackWindows(s, t);
        if (e is MarkerEvent m && Snapshots.Count < maxMarkers) Snapshots.Add(new Snapshot(t, m.Text, Snap(s)));
    }

    static Dictionary<ulong, (long, long)> Snap(ReplayState s) =>
        s.Memcgs.Values.ToDictionary(m => m.Id, m => (m.CounterDelta, m.ImpliedDelta));

    void RefreshMemcgs(ReplayState s)
    {
        _memcgCount = s.Memcgs.Count;
        foreach (var m in s.Memcgs.Values)
        {
            if (m.IsCgroupId && m.Updates == 0) continue;
            bool known = false;
            foreach (var w in _watch) if (ReferenceEquals(w.State, m)) { known = true; break; }
            if (known) continue;
            if (!_series.TryGetValue(m.Id, out var series)) _series[m.Id] = series = new StepSeries(maxBuckets);
            _watch.Add((m, series, 0, 0));
        }
    }

    void Begin(MigrationAttempt a, long t, int cpu)
    {
        if (_openAttempts.ContainsKey(a.Id)) return;
        // a new attempt on a src whose previous attempt was never closed supersedes it
        AttemptsBegun++;
        _openAttempts[a.Id] = (a, t, cpu);
    }

    void Close(MigrationAttempt a, long t)
    {
        if (!_openAttempts.Remove(a.Id, out var open)) return;
        if (a.Outcome == MigrationOutcome.Success) AttemptsSucceeded++;
        else if (a.Outcome == MigrationOutcome.Failed) AttemptsFailed++;
        long end = Math.Max(t, open.Start);
        AddBand(open.Start, end);
        AttemptClosed?.Invoke(new AttemptSlice(a.Id, a.Pid, open.Cpu, a.SrcPfn, a.DstPfn == PageRef.NoPfn ? null : a.DstPfn, open.Start, end, a.Outcome, a.SrcMemcg, a.Tainted));
    }

    void AddBand(long start, long end)
    {
        if (_attemptBands.Count > 0)
        {
            var (ls, le) = _attemptBands[^1];
            if (start <= le) { _attemptBands[^1] = (Math.Min(ls, start), Math.Max(le, end)); return; }
        }
        if (_attemptBands.Count >= maxWindows)
        {
            // bounded: merge the last band with this one
            var (ls, le) = _attemptBands[^1];
            _attemptBands[^1] = (ls, Math.Max(le, end));
            return;
        }
        _attemptBands.Add((start, end));
    }

    void TrackWindows(ReplayState s, long t)
    {
        foreach (var w in s.Windows.Values)
            if (!_openWindows.TryGetValue(w.Pid, out var known) || !ReferenceEquals(known.W, w))
            {
                if (known.W != null) CloseWindow(known.W, known.Start, t);
                _openWindows[w.Pid] = (w, w.Start?.Timestamp ?? t);
            }
        if (_openWindows.Count == s.Windows.Count) return;
        List<int>? gone = null;
        foreach (var (pid, (w, start)) in _openWindows)
            if (!s.Windows.TryGetValue(pid, out var cur) || !ReferenceEquals(cur, w)) (gone ??= []).Add(pid);
        if (gone != null)
            foreach (var pid in gone)
            {
                var (w, start) = _openWindows[pid];
                _openWindows.Remove(pid);
                CloseWindow(w, start, t);
            }
    }

    void CloseWindow(MigrationWindow w, long start, long t, bool closed = true)
    {
        int ok = 0, failed = 0;
        foreach (var a in w.Attempts)
        {
            if (a.Outcome == MigrationOutcome.Success) ok++;
            else if (a.Outcome == MigrationOutcome.Failed) failed++;
        }
        string? reason = (w.Start as MigratePagesStartEvent)?.Reason ?? (w.End as MigratePagesEndEvent)?.Reason;
        var slice = new WindowSlice(w.Pid, w.Start?.Comm ?? "", start, w.End?.Timestamp ?? t, closed && w.End != null, w.Attempts.Count, ok, failed, w.Tainted, reason);
        if (Windows.Count < maxWindows) Windows.Add(slice); else WindowsDropped++;
        WindowClosed?.Invoke(slice);
    }

    /// <summary>Closes what is still open at the end of the capture and takes the final snapshot.</summary>
    public void Finish()
    {
        long t = LastTime == long.MinValue ? 0 : LastTime;
        foreach (var a in _ended) Close(a, t);
        _ended.Clear();
        foreach (var (a, _, _) in _openAttempts.Values.ToList()) Close(a, t);
        foreach (var (w, start) in _openWindows.Values.ToList()) CloseWindow(w, start, t, closed: false);
        _openWindows.Clear();
        if (_state != null)
        {
            Snapshots.Add(new Snapshot(t, null, Snap(_state)));
            _state.AttemptBegun = null;
            _state.AttemptEnded = null;
        }
    }
}

/// <summary>
/// A step function downsampled to a bounded number of time buckets: each bucket keeps the first, lowest,
/// highest and last sample of both channels, so the drawn line keeps every excursion. When there are too
/// many buckets the bucket width doubles and neighbours merge.
/// </summary>
public sealed class StepSeries(int maxBuckets)
{
    public readonly record struct Sample(long Time, long Value);

    public sealed class Bucket
    {
        public long Index;
        public Sample[] C = new Sample[4]; // first, min, max, last
        public Sample[] I = new Sample[4];

        public void Merge(Bucket o)
        {
            MergeOne(C, o.C);
            MergeOne(I, o.I);
        }

        static void MergeOne(Sample[] a, Sample[] b)
        {
            if (b[1].Value < a[1].Value) a[1] = b[1];
            if (b[2].Value > a[2].Value) a[2] = b[2];
            a[3] = b[3];
        }
    }

    readonly List<Bucket> _buckets = [];
    long _t0;
    long _width = 1000;
    public long Samples { get; private set; }

    public IReadOnlyList<Bucket> Buckets => _buckets;

    public void Add(long t, long counter, long implied)
    {
        if (Samples++ == 0) _t0 = t;
        long idx = Math.Max(0, t - _t0) / _width;
        if (_buckets.Count > 0 && _buckets[^1].Index >= idx)
        {
            var b = _buckets[^1];
            Put(b.C, t, counter, first: false);
            Put(b.I, t, implied, first: false);
            return;
        }
        var nb = new Bucket { Index = idx };
        Put(nb.C, t, counter, first: true);
        Put(nb.I, t, implied, first: true);
        _buckets.Add(nb);
        while (_buckets.Count > maxBuckets) Compact(); // sparse buckets may need several halvings to merge
    }

    static void Put(Sample[] s, long t, long v, bool first)
    {
        var x = new Sample(t, v);
        if (first) { s[0] = s[1] = s[2] = s[3] = x; return; }
        if (v < s[1].Value) s[1] = x;
        if (v > s[2].Value) s[2] = x;
        s[3] = x;
    }

    void Compact()
    {
        _width *= 2;
        var merged = new List<Bucket>(_buckets.Count / 2 + 1);
        foreach (var b in _buckets)
        {
            b.Index /= 2;
            if (merged.Count > 0 && merged[^1].Index == b.Index) merged[^1].Merge(b);
            else merged.Add(b);
        }
        _buckets.Clear();
        _buckets.AddRange(merged);
    }

    /// <summary>The drawn points of one channel (counter or implied) in time order.</summary>
    public IEnumerable<Sample> Points(bool implied)
    {
        foreach (var b in _buckets)
        {
            var s = implied ? b.I : b.C;
            foreach (var p in s.OrderBy(p => p.Time).Distinct()) yield return p;
        }
    }
}
