using System.Globalization;
using Replayer.Core;

namespace Replayer.Store;

/// <summary>Name of a stream (<c>capture-0123456789abcdef</c>, <c>audit-…</c>). 1–200 characters, no control characters.</summary>
public readonly struct StreamName : IEquatable<StreamName>, IComparable<StreamName>
{
    public const int MaxLength = 200;
    readonly string? _value;

    public StreamName(string value)
    {
        ArgumentNullException.ThrowIfNull(value);
        if (value.Length is 0 or > MaxLength)
            throw new ArgumentException($"stream name must be 1..{MaxLength} characters, got {value.Length}", nameof(value));
        foreach (var c in value)
            if (char.IsControl(c) || char.IsSurrogate(c))
                throw new ArgumentException("stream name contains a control or surrogate character", nameof(value));
        _value = value;
    }

    public string Value => _value ?? throw new InvalidOperationException("default StreamName");
    public static implicit operator StreamName(string s) => new(s);
    public override string ToString() => _value ?? "";
    public bool Equals(StreamName other) => string.Equals(_value, other._value, StringComparison.Ordinal);
    public override bool Equals(object? obj) => obj is StreamName s && Equals(s);
    public override int GetHashCode() => _value is null ? 0 : StringComparer.Ordinal.GetHashCode(_value);
    public int CompareTo(StreamName other) => string.CompareOrdinal(_value, other._value);
    public static bool operator ==(StreamName a, StreamName b) => a.Equals(b);
    public static bool operator !=(StreamName a, StreamName b) => !a.Equals(b);
}

/// <summary>0-based index of an event in its stream.</summary>
public readonly record struct StreamRevision(ulong Value) : IComparable<StreamRevision>
{
    public static readonly StreamRevision Start = new(0);
    public static readonly StreamRevision End = new(ulong.MaxValue);
    public int CompareTo(StreamRevision other) => Value.CompareTo(other.Value);
    public static implicit operator StreamRevision(ulong v) => new(v);
    public override string ToString() => Value.ToString(CultureInfo.InvariantCulture);
}

/// <summary>0-based position of an event in the store's global order ($all).</summary>
public readonly record struct GlobalPosition(ulong Value) : IComparable<GlobalPosition>
{
    public static readonly GlobalPosition Start = new(0);
    public static readonly GlobalPosition End = new(ulong.MaxValue);
    public int CompareTo(GlobalPosition other) => Value.CompareTo(other.Value);
    public static implicit operator GlobalPosition(ulong v) => new(v);
    public override string ToString() => Value.ToString(CultureInfo.InvariantCulture);
}

/// <summary>What the appender believes about the stream: optimistic concurrency.</summary>
public readonly struct ExpectedRevision : IEquatable<ExpectedRevision>
{
    enum K : byte { Exact, NoStream, Any, StreamExists }
    readonly K _kind;
    readonly ulong _revision;
    ExpectedRevision(K kind, ulong revision) { _kind = kind; _revision = revision; }

    /// <summary>The stream must not exist (no events).</summary>
    public static readonly ExpectedRevision NoStream = new(K.NoStream, 0);
    /// <summary>No check.</summary>
    public static readonly ExpectedRevision Any = new(K.Any, 0);
    /// <summary>The stream must have at least one event.</summary>
    public static readonly ExpectedRevision StreamExists = new(K.StreamExists, 0);
    /// <summary>The stream's last event must be at this revision.</summary>
    public static ExpectedRevision Exact(ulong lastRevision) => new(K.Exact, lastRevision);
    public static implicit operator ExpectedRevision(StreamRevision r) => Exact(r.Value);

    public bool IsAny => _kind == K.Any;
    public bool IsNoStream => _kind == K.NoStream;
    public bool IsStreamExists => _kind == K.StreamExists;
    public ulong? ExactRevision => _kind == K.Exact ? _revision : null;

    /// <summary>Whether a stream whose last revision is <paramref name="actual"/> (null: no stream) satisfies this.</summary>
    public bool IsSatisfiedBy(ulong? actual) => _kind switch
    {
        K.Any => true,
        K.NoStream => actual is null,
        K.StreamExists => actual is not null,
        _ => actual == _revision,
    };

    public bool Equals(ExpectedRevision other) => _kind == other._kind && _revision == other._revision;
    public override bool Equals(object? obj) => obj is ExpectedRevision e && Equals(e);
    public override int GetHashCode() => HashCode.Combine(_kind, _revision);
    public override string ToString() => _kind switch
    {
        K.Any => "any",
        K.NoStream => "no stream",
        K.StreamExists => "stream exists",
        _ => _revision.ToString(CultureInfo.InvariantCulture),
    };
}

/// <summary>The stream's actual state did not match the expected revision. Nothing was written.</summary>
public sealed class WrongExpectedVersionException : Exception
{
    public StreamName Stream { get; }
    public ExpectedRevision Expected { get; }
    /// <summary>The stream's last revision, or null when it does not exist.</summary>
    public ulong? Actual { get; }

    public WrongExpectedVersionException(StreamName stream, ExpectedRevision expected, ulong? actual)
        : base($"append to stream '{stream}' failed: expected revision {expected}, actual {(actual is { } a ? a.ToString(CultureInfo.InvariantCulture) : "no stream")}")
    {
        Stream = stream;
        Expected = expected;
        Actual = actual;
    }
}

/// <summary>The store's files or tables are damaged or not what this version writes.</summary>
public sealed class StoreCorruptException(string message) : IOException(message);

/// <summary>Another process holds the store's writer lock.</summary>
public sealed class StoreLockedException(string message) : IOException(message);

/// <summary>An opaque typed record (e.g. an audit result): event type and payload bytes.</summary>
public readonly record struct EventRecord(string EventType, ReadOnlyMemory<byte> Payload);

/// <summary>
/// A batch to append: canonical trace events (from an array or copied from an <see cref="EventBlock"/>) or
/// typed records. Batches are the unit of storage; keep them large (thousands of events) for speed.
/// A batch may be appended more than once (e.g. retried after a <see cref="WrongExpectedVersionException"/>).
/// </summary>
public sealed class EventBatch
{
    readonly object _gate = new();
    EventBlock? _block;
    BatchCodec.Encoded? _encoded;

    EventBatch(TraceEvent[]? events, EventRecord[]? records, EventBlock? block, int count)
    {
        TraceEvents = events;
        Records = records;
        _block = block;
        Count = count;
        IsBlock = block != null;
    }

    /// <summary>The events of a batch made from an array (null for records and for block batches).</summary>
    public TraceEvent[]? TraceEvents { get; }
    public EventRecord[]? Records { get; }
    /// <summary>Whether the batch was made from an <see cref="EventBlock"/> (<see cref="Of(EventBlock)"/>).</summary>
    public bool IsBlock { get; }
    public int Count { get; }

    /// <summary>The events themselves (the array is the batch's: do not change it until the append has completed).</summary>
    /// <exception cref="ArgumentException">An element is null.</exception>
    public static EventBatch Of(IReadOnlyList<TraceEvent> events)
    {
        var a = events as TraceEvent[] ?? [.. events];
        CheckNoNulls(a);
        return new(a, null, null, a.Length);
    }

    public static EventBatch Of(ReadOnlySpan<TraceEvent> events)
    {
        CheckNoNulls(events);
        return new(events.ToArray(), null, null, events.Length);
    }

    /// <summary>
    /// A COPY of the rows of <paramref name="block"/>: the caller may clear and refill the block as soon as this
    /// returns (an ingest loop reuses one block: <c>reader.ReadBlock(block, n)</c> → <c>tx.AppendAsync(EventBatch.Of(block))</c>
    /// → <c>block.Clear()</c>). The copy lives in a pooled block until the batch is first encoded (appended);
    /// the batch then keeps only its encoded body, so copies do not pile up while a transaction runs.
    /// </summary>
    public static EventBatch Of(EventBlock block) => Of(block, 0, block?.Count ?? 0);

    /// <summary>A copy of rows <paramref name="start"/>..start+count of <paramref name="block"/>; see <see cref="Of(EventBlock)"/>.</summary>
    public static EventBatch Of(EventBlock block, int start, int count)
    {
        ArgumentNullException.ThrowIfNull(block);
        ArgumentOutOfRangeException.ThrowIfNegative(start);
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        if (start + count > block.Count) throw new ArgumentOutOfRangeException(nameof(count), $"rows {start}..{start + count} of a block of {block.Count}");
        var copy = BlockPool.Rent(count);
        for (int i = start; i < start + count; i++) copy.Add(block, i);
        return new(null, null, copy, count);
    }

    public static EventBatch Of(IReadOnlyList<EventRecord> records)
    {
        foreach (var r in records)
            if (string.IsNullOrEmpty(r.EventType) || r.EventType == ResolvedEvent.TraceEventType)
                throw new ArgumentException($"record event type must be non-empty and not '{ResolvedEvent.TraceEventType}'");
        var a = records as EventRecord[] ?? [.. records];
        return new(null, a, null, a.Length);
    }

    static void CheckNoNulls(ReadOnlySpan<TraceEvent> events)
    {
        for (int i = 0; i < events.Length; i++)
            if (events[i] is null) throw new ArgumentException($"event {i} of the batch is null", nameof(events));
    }

    /// <summary>The stored form of the batch (see <see cref="BatchCodec.Encode"/>).</summary>
    internal BatchCodec.Encoded Encode(BodyCodec codec)
    {
        if (!IsBlock)
        {
            var raw = BatchCodec.EncodeRaw(TraceEvents, Records, null, out var kind);
            return BatchCodec.Compress(kind, raw, Count, codec);
        }
        lock (_gate)
        {
            if (_encoded is { } done && done.Codec == codec) return done;
            if (_block is { } block)
            {
                var raw = BatchCodec.EncodeRaw(null, null, block, out var kind);
                var enc = BatchCodec.Compress(kind, raw, Count, codec);
                _encoded = enc;
                _block = null;
                BlockPool.Return(block);
                return enc;
            }
            // Encoded before with another codec: the copy is gone; recompress the stored form.
            return BatchCodec.Recompress(_encoded!.Value, codec);
        }
    }
}

/// <summary>Blocks reused by block batches and block reads (bounded: extra blocks are left to the collector).</summary>
internal static class BlockPool
{
    const int MaxPooled = 16;
    static readonly System.Collections.Concurrent.ConcurrentQueue<EventBlock> s_pool = new();

    public static EventBlock Rent(int rows = 4096)
    {
        if (s_pool.TryDequeue(out var b)) return b;
        return new EventBlock(Math.Clamp(rows, 1, 1 << 16));
    }

    public static void Return(EventBlock block)
    {
        // A block grown for a giant batch is not kept.
        if (block.Capacity > 1 << 16 || block.FieldCount > 1 << 20 || s_pool.Count >= MaxPooled) return;
        block.Clear();
        s_pool.Enqueue(block);
    }
}

/// <summary>
/// Consecutive trace events of one stream decoded into an <see cref="EventBlock"/> (one stored batch, or its
/// tail when the read started inside it): row <c>i</c> is the event at revision <c>FirstRevision + i</c> and
/// global position <c>FirstPosition + i</c>. The block belongs to the store: see
/// <see cref="IEventStore.ReadStreamBlocksAsync"/> for how long it stays valid.
/// </summary>
public sealed class EventBlockSlice
{
    public required StreamName Stream { get; init; }
    /// <summary>Revision of row 0.</summary>
    public required StreamRevision FirstRevision { get; init; }
    /// <summary>Global position of row 0.</summary>
    public required GlobalPosition FirstPosition { get; init; }
    public required EventBlock Block { get; init; }
    /// <summary>Rows (events) in the block.</summary>
    public int Count => Block.Count;
    /// <summary>Typed records of the stream that lay between the previous slice (or the start of the read) and
    /// this one and were passed over: they are not trace events (read them with <see cref="IEventStore.ReadStreamAsync"/>).</summary>
    public long RecordsSkipped { get; internal set; }

    public StreamRevision RevisionOf(int row) => new(FirstRevision.Value + (ulong)row);
    public GlobalPosition PositionOf(int row) => new(FirstPosition.Value + (ulong)row);
}

/// <summary>One stored event.</summary>
public readonly struct ResolvedEvent
{
    /// <summary>Event type of canonical trace events.</summary>
    public const string TraceEventType = "TraceEvent";

    public ResolvedEvent(StreamName stream, StreamRevision revision, GlobalPosition position, TraceEvent? trace, EventRecord record)
    {
        Stream = stream; Revision = revision; Position = position; Trace = trace; _record = record;
    }

    readonly EventRecord _record;
    public StreamName Stream { get; }
    public StreamRevision Revision { get; }
    public GlobalPosition Position { get; }
    /// <summary>The trace event, when <see cref="EventType"/> is <see cref="TraceEventType"/>.</summary>
    public TraceEvent? Trace { get; }
    public string EventType => Trace != null ? TraceEventType : _record.EventType;
    /// <summary>Payload of a typed record (empty for trace events).</summary>
    public ReadOnlyMemory<byte> Payload => _record.Payload;
    public override string ToString() => $"{Stream}@{Revision} #{Position} {EventType}";
}

/// <summary>A run of consecutive events of one stream, as stored (one batch or part of one).</summary>
public sealed class EventSlice
{
    public required StreamName Stream { get; init; }
    /// <summary>Revision of <c>Events[Offset]</c> / <c>Records[Offset]</c>.</summary>
    public required StreamRevision FirstRevision { get; init; }
    public required GlobalPosition FirstPosition { get; init; }
    public TraceEvent[]? TraceEvents { get; init; }
    public EventRecord[]? Records { get; init; }
    public required int Offset { get; init; }
    public required int Count { get; init; }

    public ResolvedEvent this[int i]
    {
        get
        {
            if ((uint)i >= (uint)Count) throw new ArgumentOutOfRangeException(nameof(i));
            var k = Offset + i;
            return TraceEvents != null
                ? new ResolvedEvent(Stream, FirstRevision.Value + (ulong)i, FirstPosition.Value + (ulong)i, TraceEvents[k], default)
                : new ResolvedEvent(Stream, FirstRevision.Value + (ulong)i, FirstPosition.Value + (ulong)i, null, Records![k]);
        }
    }
}

public enum Direction { Forward, Backward }

/// <summary>Result of an append: the stream's last revision afterwards (null: the stream has no events)
/// and the global position of the last event written (null: nothing written).</summary>
public readonly record struct AppendResult(ulong? LastRevision, ulong? LastPosition)
{
    /// <summary>The expected revision for the next append to this stream.</summary>
    public ExpectedRevision NextExpected => LastRevision is { } r ? ExpectedRevision.Exact(r) : ExpectedRevision.NoStream;
}

/// <summary>What the store knows about a stream.</summary>
public sealed record StreamInfo(StreamName Name, ulong EventCount, StreamRevision LastRevision, GlobalPosition LastPosition, string? Metadata);

/// <summary>One problem <see cref="IEventStore.VerifyAsync"/> found: which file (or table) and where.</summary>
public sealed record VerifyProblem(string File, long Offset, string What)
{
    public override string ToString() => Offset >= 0 ? $"{File} at byte {Offset}: {What}" : $"{File}: {What}";
}

public sealed class VerifyReport
{
    public List<VerifyProblem> Problems { get; } = [];
    /// <summary>Facts that are not damage (e.g. an uncommitted tail while a writer runs).</summary>
    public List<string> Notes { get; } = [];
    public long Batches { get; set; }
    public long Events { get; set; }
    public long Streams { get; set; }
    public long Bytes { get; set; }
    public bool Ok => Problems.Count == 0;
}
