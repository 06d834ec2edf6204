namespace Replayer.Store;

/// <summary>
/// An event store with EventStoreDB semantics: streams of events with revisions, a global order
/// ($all) with positions, optimistic concurrency, catch-up subscriptions, stream metadata.
/// Two implementations: <see cref="Embedded.EmbeddedEventStore"/> (a directory, the default) and
/// <see cref="Postgres.PostgresEventStore"/>. <see cref="StoreFactory.Open"/> picks one.
/// </summary>
public interface IEventStore : IAsyncDisposable, IDisposable
{
    /// <summary>Where the store lives (directory, or the connection with its password redacted).</summary>
    string Description { get; }

    /// <summary>Appends one batch in one atomic, durable step.</summary>
    /// <exception cref="WrongExpectedVersionException">The stream's state does not match.</exception>
    Task<AppendResult> AppendAsync(StreamName stream, ExpectedRevision expected, EventBatch batch, CancellationToken ct = default);

    /// <summary>
    /// Starts an all-or-nothing append of many batches (a whole capture): nothing is visible to
    /// readers until <see cref="IAppendTransaction.CommitAsync"/>; disposing without committing, or
    /// dying midway, leaves no trace. Other appends wait until the transaction ends.
    /// </summary>
    Task<IAppendTransaction> BeginAppendAsync(StreamName stream, ExpectedRevision expected, CancellationToken ct = default);

    /// <summary>Events of a stream as stored slices, from a revision, in revision order.</summary>
    IAsyncEnumerable<EventSlice> ReadStreamSlicesAsync(StreamName stream, StreamRevision from, CancellationToken ct = default);

    /// <summary>
    /// The trace events of a stream from revision <paramref name="from"/> on, in revision order, decoded straight
    /// into <see cref="Replayer.Core.EventBlock"/>s: no <see cref="Replayer.Core.TraceEvent"/> or field array per
    /// event, only the store's reused blocks and interned strings. Each slice is one stored batch (its tail for
    /// the batch that holds <paramref name="from"/>); row <c>i</c> is revision <c>FirstRevision + i</c>.
    /// <para><b>Validity:</b> a yielded slice and its block stay valid until the next <c>MoveNextAsync</c> (or
    /// <c>DisposeAsync</c>) of the enumerator; the store then reuses the block for a later batch. Copy what must
    /// outlive that (<see cref="Replayer.Core.EventBlock.ToTraceEvent"/>, <see cref="Replayer.Core.EventBlock.Add(Replayer.Core.EventBlock, int)"/>).
    /// Do not modify the block.</para>
    /// <para><b>Typed records</b> (<see cref="EventRecord"/>) are not trace events: their batches are passed over
    /// and counted in the next slice's <see cref="EventBlockSlice.RecordsSkipped"/> (the revisions of the
    /// slices then have a gap there); records after the last trace event are not reported. A missing or
    /// deleted stream reads as empty. Batches are decoded ahead in parallel.</para>
    /// </summary>
    IAsyncEnumerable<EventBlockSlice> ReadStreamBlocksAsync(StreamName stream, StreamRevision from, CancellationToken ct = default);

    /// <summary>Events of a stream one by one. Forward from <paramref name="from"/> (default: start) or
    /// backward from it (default: the last event). A missing or deleted stream reads as empty.</summary>
    IAsyncEnumerable<ResolvedEvent> ReadStreamAsync(StreamName stream, Direction direction = Direction.Forward, StreamRevision? from = null, long maxCount = long.MaxValue, CancellationToken ct = default);

    /// <summary>Every committed event of every live stream in global order, from a position (inclusive).</summary>
    IAsyncEnumerable<EventSlice> ReadAllSlicesAsync(GlobalPosition from, CancellationToken ct = default);

    IAsyncEnumerable<ResolvedEvent> ReadAllAsync(GlobalPosition from, CancellationToken ct = default);

    /// <summary>Catch-up subscription to $all: events after <paramref name="checkpoint"/> (exclusive; null:
    /// from the start), then live appends as they commit, until cancelled.</summary>
    IAsyncEnumerable<ResolvedEvent> SubscribeToAllAsync(GlobalPosition? checkpoint, CancellationToken ct);

    /// <summary>Catch-up subscription to one stream: events after <paramref name="checkpoint"/> (exclusive; null: from the start), then live.</summary>
    IAsyncEnumerable<ResolvedEvent> SubscribeToStreamAsync(StreamName stream, StreamRevision? checkpoint, CancellationToken ct);

    /// <summary>Null when the stream has no events (never written, or deleted).</summary>
    Task<StreamInfo?> GetStreamInfoAsync(StreamName stream, CancellationToken ct = default);

    /// <summary>Every stream with at least one event, by name.</summary>
    IAsyncEnumerable<StreamInfo> ListStreamsAsync(CancellationToken ct = default);

    /// <summary>The stream's metadata (a JSON document), or null.</summary>
    Task<string?> GetStreamMetadataAsync(StreamName stream, CancellationToken ct = default);

    /// <summary>Replaces the stream's metadata (a JSON document; validated).</summary>
    Task SetStreamMetadataAsync(StreamName stream, string json, CancellationToken ct = default);

    /// <summary>Deletes a stream: its events and metadata disappear from reads; appending with
    /// <see cref="ExpectedRevision.NoStream"/> starts it afresh at revision 0.</summary>
    Task DeleteStreamAsync(StreamName stream, ExpectedRevision expected, CancellationToken ct = default);

    /// <summary>Checks every checksum, frame and index entry; names the file and offset of any damage.</summary>
    Task<VerifyReport> VerifyAsync(CancellationToken ct = default);
}

/// <summary>An all-or-nothing append of many batches to one stream.</summary>
public interface IAppendTransaction : IAsyncDisposable
{
    StreamName Stream { get; }
    /// <summary>Events staged so far.</summary>
    long Count { get; }
    Task AppendAsync(EventBatch batch, CancellationToken ct = default);
    /// <summary>Metadata to set with the commit (JSON).</summary>
    void SetMetadata(string json);
    Task<AppendResult> CommitAsync(CancellationToken ct = default);
}
