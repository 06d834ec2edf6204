using Replayer.Core;

namespace Replayer.Formats;

/// <summary>
/// Yields a reader's events in timestamp order, ties in source order, merging out-of-order lines (per-CPU
/// buffers) within a bounded window of <see cref="Window"/> events and, by default, a time horizon of
/// <see cref="HorizonNs"/> (an event is released once the input has moved that far past it). An event older than one already
/// emitted (out of order by more than the window) is emitted as soon as it is seen and counted
/// (<c>out_of_order_events</c>, error level), never dropped. Memory: at most <see cref="Window"/> events.
/// In-order runs go through a FIFO, only the events that arrive early go through a heap, so sorted input
/// costs almost nothing.
/// </summary>
public sealed class TimeSorter : ITraceReader
{
    public const int DefaultWindow = 1 << 20;
    /// <summary>Default time horizon: an event is held until one 100 ms later has been read (or the window is full).
    /// Far beyond cross-CPU clock skew and perf's flush rounds; holding a 1 s span of a busy trace costs more in
    /// GC than parsing it (measured on 6.1-ext4-large: +0.4 s CPU at 100 ms, +1.1 s at 1 s, for 1.68 M events).</summary>
    public const long DefaultHorizonNs = 100_000_000;

    readonly ITraceReader _inner;
    readonly Queue<(TraceEvent Event, long Seq)> _fifo = new();
    readonly PriorityQueue<(TraceEvent Event, long Seq), (long Ts, long Seq)> _heap = new();
    long _fifoLastTs = long.MinValue;
    long _seq;
    long _lastEmitted = long.MinValue;
    bool _innerDone;

    long _maxSeen = long.MinValue;

    public int Window { get; }
    /// <summary>Events are released once the input has moved this far past them (0: only the count window
    /// applies). Keeps the held set small on long, nearly sorted inputs.</summary>
    public long HorizonNs { get; }
    public long OutOfOrderEvents { get; private set; }

    /// <param name="window">Most events held at once.</param>
    /// <param name="horizonNs">Release an event once one <paramref name="horizonNs"/> later was read; 0 = no horizon.</param>
    public TimeSorter(ITraceReader inner, int window = DefaultWindow, long horizonNs = DefaultHorizonNs)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(window, 1);
        ArgumentOutOfRangeException.ThrowIfNegative(horizonNs);
        _inner = inner;
        Window = window;
        HorizonNs = horizonNs;
    }

    long HeadTs => _fifo.Count == 0 ? _heap.Peek().Event.Timestamp
        : _heap.Count == 0 ? _fifo.Peek().Event.Timestamp
        : Math.Min(_fifo.Peek().Event.Timestamp, _heap.Peek().Event.Timestamp);

    public TraceFormat Format => _inner.Format;
    public string SourceName => _inner.SourceName;
    public CaptureHeader Header => _inner.Header;
    public ReadStats Stats => _inner.Stats;

    int Count => _fifo.Count + _heap.Count;

    public TraceEvent? Read()
    {
        while (!_innerDone && Count < Window)
        {
            if (HorizonNs > 0 && Count > 0 && _maxSeen - HeadTs > HorizonNs) break;
            var e = _inner.Read();
            if (e == null) { _innerDone = true; break; }
            if (e.Timestamp > _maxSeen) _maxSeen = e.Timestamp;
            if (e.Timestamp < _lastEmitted)
            {
                OutOfOrderEvents++;
                _inner.Stats.Add("out_of_order_events", StatSeverity.Error);
            }
            var item = (e, _seq++);
            if (e.Timestamp >= _fifoLastTs)
            {
                _fifo.Enqueue(item);
                _fifoLastTs = e.Timestamp;
            }
            else _heap.Enqueue(item, (e.Timestamp, item.Item2));
        }
        (TraceEvent Event, long Seq) next;
        if (_fifo.Count == 0)
        {
            if (_heap.Count == 0) return null;
            next = _heap.Dequeue();
        }
        else if (_heap.Count == 0) next = _fifo.Dequeue();
        else
        {
            var f = _fifo.Peek();
            var h = _heap.Peek();
            bool takeHeap = h.Event.Timestamp < f.Event.Timestamp || (h.Event.Timestamp == f.Event.Timestamp && h.Seq < f.Seq);
            next = takeHeap ? _heap.Dequeue() : _fifo.Dequeue();
        }
        if (_fifo.Count == 0) _fifoLastTs = long.MinValue;
        if (next.Event.Timestamp > _lastEmitted) _lastEmitted = next.Event.Timestamp;
        return next.Event;
    }

    public void Dispose() => _inner.Dispose();
}
