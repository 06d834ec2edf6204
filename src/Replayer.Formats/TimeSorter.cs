using Replayer.Core;

namespace Replayer.Formats;

/// <summary>
/// Yields a reader's events in timestamp order, ties in source order, merging out-of-order lines (per-CPU
/// buffers) within a bounded window of <see cref="Window"/> events. An event older than one already
/// emitted (out of order by more than the window) is emitted as soon as it is seen and counted
/// (<c>out_of_order_events</c>, error level), never dropped. Memory: at most <see cref="Window"/> events.
/// </summary>
public sealed class TimeSorter : ITraceReader
{
    public const int DefaultWindow = 1 << 20;

    readonly ITraceReader _inner;
    readonly PriorityQueue<TraceEvent, (long Ts, long Seq)> _queue = new();
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

    public TraceEvent? Read()
    {
        while (!_innerDone && _queue.Count < Window)
        {
            var e = _inner.Read();
            if (e == null) { _innerDone = true; break; }
            if (e.Timestamp < _lastEmitted)
            {
                OutOfOrderEvents++;
                _inner.Stats.Add("out_of_order_events", StatSeverity.Error);
            }
            _queue.Enqueue(e, (e.Timestamp, _seq++));
        }
        if (_queue.Count == 0) return null;
        var next = _queue.Dequeue();
        if (next.Timestamp > _lastEmitted) _lastEmitted = next.Timestamp;
        return next;
    }

    public void Dispose() => _inner.Dispose();
}
