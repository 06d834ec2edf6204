using System.Runtime.CompilerServices;
using System.Text.Json;
using Replayer.Core;

namespace Replayer.Store;

/// <summary>What both stores share: per-event views over slices, catch-up subscriptions, change signals.</summary>
public abstract class EventStoreBase : IEventStore
{
    TaskCompletionSource _changed = new(TaskCreationOptions.RunContinuationsAsynchronously);
    readonly object _signalLock = new();

    public abstract string Description { get; }
    public abstract Task<AppendResult> AppendAsync(StreamName stream, ExpectedRevision expected, EventBatch batch, CancellationToken ct = default);
    public abstract Task<IAppendTransaction> BeginAppendAsync(StreamName stream, ExpectedRevision expected, CancellationToken ct = default);
    public abstract IAsyncEnumerable<EventSlice> ReadAllSlicesAsync(GlobalPosition from, CancellationToken ct = default);
    public abstract Task<StreamInfo?> GetStreamInfoAsync(StreamName stream, CancellationToken ct = default);
    public abstract IAsyncEnumerable<StreamInfo> ListStreamsAsync(CancellationToken ct = default);
    public abstract Task<string?> GetStreamMetadataAsync(StreamName stream, CancellationToken ct = default);
    public abstract Task SetStreamMetadataAsync(StreamName stream, string json, CancellationToken ct = default);
    public abstract Task DeleteStreamAsync(StreamName stream, ExpectedRevision expected, CancellationToken ct = default);
    public abstract Task<VerifyReport> VerifyAsync(CancellationToken ct = default);
    public abstract ValueTask DisposeAsync();
    public void Dispose() => DisposeAsync().AsTask().GetAwaiter().GetResult();

    /// <summary>Slices of a stream. Forward: batches ascending, from revision <paramref name="from"/> on.
    /// Backward: batches descending, revisions up to and including <paramref name="from"/>.</summary>
    protected abstract IAsyncEnumerable<EventSlice> ReadStreamSlicesCoreAsync(StreamName stream, ulong from, bool backward, CancellationToken ct);

    /// <summary>Picks up changes made by other processes (called before a subscription re-reads).</summary>
    protected virtual ValueTask RefreshAsync(CancellationToken ct) => ValueTask.CompletedTask;

    /// <summary>How often a waiting subscription looks for changes it was not told about (other processes).</summary>
    protected virtual TimeSpan PollInterval => TimeSpan.FromMilliseconds(200);

    public abstract IAsyncEnumerable<EventBlockSlice> ReadStreamBlocksAsync(StreamName stream, StreamRevision from, CancellationToken ct = default);

    /// <summary>
    /// Decodes <paramref name="items"/> (batches) into pooled blocks, up to <paramref name="parallel"/> at once on the
    /// thread pool, and yields the slices in order. A yielded block goes back to the pool when the consumer asks
    /// for the next slice. <paramref name="decode"/> returns a slice with an empty block and
    /// <see cref="EventBlockSlice.RecordsSkipped"/> set for a batch of records; those are folded into the next slice.
    /// </summary>
    protected static async IAsyncEnumerable<EventBlockSlice> DecodeBlocksAhead<T>(IAsyncEnumerable<T> items, Func<T, EventBlock, EventBlockSlice> decode,
        int parallel, [EnumeratorCancellation] CancellationToken ct)
    {
        var window = new Queue<(Task<EventBlockSlice> Task, EventBlock Block)>();
        EventBlock? held = null;
        long skipped = 0;
        var it = items.GetAsyncEnumerator(ct);
        try
        {
            bool more = await it.MoveNextAsync().ConfigureAwait(false);
            while (more || window.Count > 0)
            {
                while (more && window.Count < Math.Max(1, parallel))
                {
                    var item = it.Current;
                    var block = BlockPool.Rent();
                    window.Enqueue((Task.Run(() => decode(item, block), ct), block));
                    more = await it.MoveNextAsync().ConfigureAwait(false);
                }
                var (task, b) = window.Peek();
                var s = await task.ConfigureAwait(false);
                window.Dequeue();
                ct.ThrowIfCancellationRequested();
                if (held != null)
                {
                    BlockPool.Return(held);
                    held = null;
                }
                if (s.Count == 0)
                {
                    skipped += s.RecordsSkipped;
                    BlockPool.Return(b);
                    continue;
                }
                s.RecordsSkipped += skipped;
                skipped = 0;
                held = b;
                yield return s;
            }
        }
        finally
        {
            if (held != null) BlockPool.Return(held);
            // Decodes still running own their blocks; those blocks are left to the collector.
            foreach (var (t, _) in window) _ = t.ContinueWith(static t => _ = t.Exception, TaskScheduler.Default);
            await it.DisposeAsync().ConfigureAwait(false);
        }
    }

    /// <summary>A list as an async sequence (for <see cref="DecodeBlocksAhead"/>).</summary>
    protected static async IAsyncEnumerable<T> AsAsync<T>(IReadOnlyList<T> list)
    {
        foreach (var x in list) yield return x;
        await Task.CompletedTask.ConfigureAwait(false);
    }

    public IAsyncEnumerable<EventSlice> ReadStreamSlicesAsync(StreamName stream, StreamRevision from, CancellationToken ct = default) =>
        ReadStreamSlicesCoreAsync(stream, from.Value, false, ct);

    public async IAsyncEnumerable<ResolvedEvent> ReadStreamAsync(StreamName stream, Direction direction = Direction.Forward,
        StreamRevision? from = null, long maxCount = long.MaxValue, [EnumeratorCancellation] CancellationToken ct = default)
    {
        if (maxCount <= 0) yield break;
        long n = 0;
        if (direction == Direction.Forward)
        {
            ulong start = from?.Value ?? 0;
            await foreach (var s in ReadStreamSlicesCoreAsync(stream, start, false, ct).ConfigureAwait(false))
                for (int i = 0; i < s.Count; i++)
                {
                    yield return s[i];
                    if (++n >= maxCount) yield break;
                }
        }
        else
        {
            ulong start = from?.Value ?? ulong.MaxValue;
            await foreach (var s in ReadStreamSlicesCoreAsync(stream, start, true, ct).ConfigureAwait(false))
                for (int i = s.Count - 1; i >= 0; i--)
                {
                    yield return s[i];
                    if (++n >= maxCount) yield break;
                }
        }
    }

    public async IAsyncEnumerable<ResolvedEvent> ReadAllAsync(GlobalPosition from, [EnumeratorCancellation] CancellationToken ct = default)
    {
        await foreach (var s in ReadAllSlicesAsync(from, ct).ConfigureAwait(false))
            for (int i = 0; i < s.Count; i++)
                yield return s[i];
    }

    public async IAsyncEnumerable<ResolvedEvent> SubscribeToAllAsync(GlobalPosition? checkpoint, [EnumeratorCancellation] CancellationToken ct)
    {
        ulong next = checkpoint is { } c ? c.Value + 1 : 0;
        while (true)
        {
            ct.ThrowIfCancellationRequested();
            var changed = ChangeSignal;
            await RefreshAsync(ct).ConfigureAwait(false);
            await foreach (var s in ReadAllSlicesAsync(next, ct).ConfigureAwait(false))
                for (int i = 0; i < s.Count; i++)
                {
                    var e = s[i];
                    if (e.Position.Value < next) continue;
                    next = e.Position.Value + 1;
                    yield return e;
                }
            await WaitAsync(changed, ct).ConfigureAwait(false);
        }
    }

    public async IAsyncEnumerable<ResolvedEvent> SubscribeToStreamAsync(StreamName stream, StreamRevision? checkpoint, [EnumeratorCancellation] CancellationToken ct)
    {
        ulong next = checkpoint is { } c ? c.Value + 1 : 0;
        while (true)
        {
            ct.ThrowIfCancellationRequested();
            var changed = ChangeSignal;
            await RefreshAsync(ct).ConfigureAwait(false);
            await foreach (var s in ReadStreamSlicesCoreAsync(stream, next, false, ct).ConfigureAwait(false))
                for (int i = 0; i < s.Count; i++)
                {
                    var e = s[i];
                    if (e.Revision.Value < next) continue;
                    next = e.Revision.Value + 1;
                    yield return e;
                }
            await WaitAsync(changed, ct).ConfigureAwait(false);
        }
    }

    Task ChangeSignal { get { lock (_signalLock) return _changed.Task; } }

    async Task WaitAsync(Task changed, CancellationToken ct)
    {
        try { await changed.WaitAsync(PollInterval, ct).ConfigureAwait(false); }
        catch (TimeoutException) { }
    }

    /// <summary>Wakes waiting subscriptions (call after a commit).</summary>
    protected void SignalChange()
    {
        TaskCompletionSource old;
        lock (_signalLock)
        {
            old = _changed;
            _changed = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        }
        old.TrySetResult();
    }

    /// <summary>Rejects metadata that is not one JSON document.</summary>
    protected static void ValidateJson(string json)
    {
        ArgumentNullException.ThrowIfNull(json);
        try { using var _ = JsonDocument.Parse(json); }
        catch (JsonException e) { throw new ArgumentException("stream metadata must be a JSON document: " + e.Message, nameof(json)); }
    }
}
