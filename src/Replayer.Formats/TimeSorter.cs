using Replayer.Core;

namespace Replayer.Formats;

/// <summary>
/// Yields a reader's events in timestamp order, ties in source order, merging out-of-order lines (per-CPU
/// buffers) within a bounded window of <see cref="Window"/> events. An event older than one already
/// emitted (out of order by more than the window) is emitted as soon as it is seen and counted
/// (<c>out_of_order_events</c>, error level), never dropped. Memory: at most <see cref="Window"/> events.
/// In-order runs go through a FIFO, only the events that arrive early go through a heap, so sorted input
/// costs almost nothing.
/// </summary>
public sealed class TimeSorter : ITraceReader
{
    public const int DefaultWindow = 1 << 20;

    readonly ITraceReader _inner;
    readonly Queue<(TraceEvent Event, long Seq)> _fifo = new();
    readonly PriorityQueue<(TraceEvent Event, long Seq), (long Ts, long Seq)> _heap = new();
    long _fifoLastTs = long.MinValue;
    long _seq;
    long _lastEmitted = long.MinValue;
    bool _innerDone;

    public int Window { get; }
    public long OutOfOrderEvents { get; private set; }

    public TimeSorter(ITraceReader inner, int window = DefaultWindow)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(window, 1);
        _inner = inner;
        Window = window;
    }

    public TraceFormat Format => _inner.Format;
    public string SourceName => _inner.SourceName;
    public CaptureHeader Header => _inner.Header;
    public ReadStats Stats => _inner.Stats;

    int Count => _fifo.Count + _heap.Count;

    public TraceEvent? Read()
    {
        while (!_innerDone && Count < Window)
        {
            var e = _inner.Read();
            if (e == null) { _innerDone = true; break; }
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
