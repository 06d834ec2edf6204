using System.Buffers;
using System.Buffers.Binary;
using System.Numerics;
using System.Runtime.InteropServices;
using MessagePack;
using Replayer.Core;

namespace Replayer.Store;

/// <summary>CRC-32C (Castagnoli), hardware-accelerated through <see cref="BitOperations.Crc32C(uint, ulong)"/>.
/// (System.IO.Hashing 10.0.0 only ships the IEEE <c>Crc32</c>.)</summary>
public static class Crc32C
{
    public static uint Compute(ReadOnlySpan<byte> data) => ~Append(~0u, data);

    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveOptimization)]
    public static uint Append(uint crc, ReadOnlySpan<byte> data)
    {
        var longs = MemoryMarshal.Cast<byte, ulong>(data);
        foreach (var v in longs) crc = BitOperations.Crc32C(crc, v);
        foreach (var b in data[(longs.Length * 8)..]) crc = BitOperations.Crc32C(crc, b);
        return crc;
    }
}

/// <summary>Body kinds of a stored batch.</summary>
public enum BodyKind : byte
{
    /// <summary>Trace events as a self-describing MessagePack <c>TraceEvent[]</c> (the first format; still read).</summary>
    TraceEvents = 1,
    Records = 2,
    /// <summary>Trace events with a per-batch string table and delta timestamps (<see cref="CompactTraceEventEncoder"/>); still read.</summary>
    TraceEventsCompact = 3,
    /// <summary>Trace events as shapes and per-field deltas (<see cref="ShapedTraceEventCodec"/>), decoded straight
    /// into <see cref="EventBlock"/>s; what trace-event batches are written as.</summary>
    TraceEventsShaped = 4,
}

/// <summary>Compression of a stored batch body.</summary>
public enum BodyCodec : byte
{
    None = 0,
    Zstd = 1,
}

/// <summary>What <see cref="BatchCodec.DecodeInto"/> found in a body.</summary>
public readonly record struct DecodedBody(bool IsRecords, int Count);

/// <summary>
/// Encodes a batch as one body (trace events: <see cref="BodyKind.TraceEventsShaped"/>; records: a MessagePack
/// array of <c>[type, bin]</c>), compressed as one block (<see cref="DefaultCodec"/>). Decoding treats bytes
/// as untrusted and reads every kind and codec ever written.
/// </summary>
public static class BatchCodec
{
    /// <summary>Largest decoded body accepted (a guard against hostile lengths).</summary>
    public const int MaxRawLength = 1 << 30;
    public const int ZstdLevel = 1;
    /// <summary>The compression of new batches.</summary>
    public const BodyCodec DefaultCodec = BodyCodec.Zstd;

    public static readonly MessagePackSerializerOptions Options =
        MessagePackSerializerOptions.Standard.WithSecurity(MessagePackSecurity.UntrustedData);

    [ThreadStatic] static MsgPackBuffer? t_records;
    [ThreadStatic] static ZstdSharp.Compressor? t_compressor;
    [ThreadStatic] static byte[]? t_compressed;
    [ThreadStatic] static ZstdSharp.Decompressor? t_decompressor;
    [ThreadStatic] static EventBlock? t_scratch;

    public readonly record struct Encoded(BodyKind Kind, BodyCodec Codec, int RawLength, byte[] Body, int Count);

    /// <summary>Encodes and compresses a batch (a batch made from a block encodes its own copy; see <see cref="EventBatch.Of(EventBlock)"/>).</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveOptimization)]
    public static Encoded Encode(EventBatch batch, BodyCodec codec = DefaultCodec) => batch.Encode(codec);

    /// <summary>Encodes trace events (none null) or records into a raw body; the span is valid until the next encode on this thread.</summary>
    internal static ReadOnlySpan<byte> EncodeRaw(TraceEvent[]? events, EventRecord[]? records, EventBlock? block, out BodyKind kind)
    {
        if (events != null)
        {
            kind = BodyKind.TraceEventsShaped;
            return ShapedTraceEventCodec.Encode(events);
        }
        if (block != null)
        {
            kind = BodyKind.TraceEventsShaped;
            return ShapedTraceEventCodec.Encode(block, 0, block.Count);
        }
        kind = BodyKind.Records;
        var w = t_records ??= new MsgPackBuffer(1 << 12);
        w.Reset();
        w.WriteArrayHeader(records!.Length);
        foreach (var r in records)
        {
            w.WriteArrayHeader(2);
            w.WriteString(r.EventType);
            w.WriteBin(r.Payload.Span);
        }
        return w.WrittenSpan;
    }

    /// <summary>Compresses a raw body.</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveOptimization)]
    internal static Encoded Compress(BodyKind kind, ReadOnlySpan<byte> raw, int count, BodyCodec codec)
    {
        if (raw.Length > MaxRawLength)
            throw new ArgumentException($"batch encodes to {raw.Length} bytes; the limit is {MaxRawLength}: append smaller batches");
        byte[] body;
        switch (codec)
        {
            case BodyCodec.Zstd:
            {
                var c = t_compressor ??= new ZstdSharp.Compressor(ZstdLevel);
                // A reused output buffer: a fresh compress-bound array per batch would land on the large object
                // heap and trigger full collections.
                int bound = ZstdSharp.Compressor.GetCompressBound(raw.Length);
                if (t_compressed == null || t_compressed.Length < bound) t_compressed = new byte[Math.Max(bound, 1 << 20)];
                int n = c.Wrap(raw, t_compressed);
                body = t_compressed.AsSpan(0, n).ToArray();
                break;
            }
            case BodyCodec.None:
                body = raw.ToArray();
                break;
            default:
                throw new ArgumentOutOfRangeException(nameof(codec), codec, "unknown codec");
        }
        return new Encoded(kind, codec, raw.Length, body, count);
    }

    /// <summary>Checks that a body decodes completely (what <c>store verify</c> needs): trace events into a scratch
    /// block (kind 4) or objects (older kinds), records into records. Throws <see cref="StoreCorruptException"/>.</summary>
    public static void Check(BodyKind kind, BodyCodec codec, int rawLength, int count, ReadOnlySpan<byte> body, string where)
    {
        if (kind != BodyKind.TraceEventsShaped)
        {
            Decode(kind, codec, rawLength, count, body, where);
            return;
        }
        var block = t_scratch ??= new EventBlock();
        block.Clear();
        try { DecodeInto(kind, codec, rawLength, count, body, where, block); }
        finally { block.Clear(); }
    }

    /// <summary>The same body under another codec.</summary>
    internal static Encoded Recompress(Encoded e, BodyCodec codec)
    {
        if (e.Codec == codec) return e;
        var rented = Decompress(e.Codec, e.RawLength, e.Body, "batch");
        try { return Compress(e.Kind, rented.AsSpan(0, e.RawLength), e.Count, codec); }
        finally { ArrayPool<byte>.Shared.Return(rented); }
    }

    /// <summary>Decodes a body into objects; any inconsistency throws <see cref="StoreCorruptException"/> naming <paramref name="where"/>.</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveOptimization)]
    public static (TraceEvent[]? Events, EventRecord[]? Records) Decode(BodyKind kind, BodyCodec codec, int rawLength, int count, ReadOnlySpan<byte> body, string where)
    {
        byte[] rented = Decompress(codec, rawLength, body, where);
        try
        {
            var raw = rented.AsMemory(0, rawLength);
            try
            {
                switch (kind)
                {
                    case BodyKind.TraceEvents or BodyKind.TraceEventsCompact:
                    {
                        var events = kind == BodyKind.TraceEvents ? TraceEventDecoder.Decode(raw, out int read) : TraceEventDecoder.DecodeCompact(raw, out read);
                        if (read != rawLength) throw new StoreCorruptException($"{where}: {rawLength - read} trailing bytes after the events");
                        if (events is null || events.Length != count) throw new StoreCorruptException($"{where}: body holds {events?.Length ?? 0} events, header says {count}");
                        foreach (var e in events)
                            if (e is null) throw new StoreCorruptException($"{where}: null event in body");
                        return (events, null);
                    }
                    case BodyKind.TraceEventsShaped:
                    {
                        var block = t_scratch ??= new EventBlock();
                        block.Clear();
                        DecodeShaped(raw.Span, count, block, 0, where);
                        var events = block.ToTraceEvents();
                        block.Clear();
                        return (events, null);
                    }
                    case BodyKind.Records:
                        return (null, DecodeRecords(raw, count, where));
                }
                throw new StoreCorruptException($"{where}: unknown body kind {(byte)kind}");
            }
            catch (Exception e) when (Malformed(e))
            {
                throw Corrupt(where, e);
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(rented);
        }
    }

    /// <summary>
    /// Decodes a trace-event body onto the end of <paramref name="block"/>, leaving out its first
    /// <paramref name="skip"/> events; a records body is not decoded (its count is returned with
    /// <see cref="DecodedBody.IsRecords"/>). Any inconsistency throws <see cref="StoreCorruptException"/> naming
    /// <paramref name="where"/>, and then the block holds what it held before.
    /// </summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveOptimization)]
    public static DecodedBody DecodeInto(BodyKind kind, BodyCodec codec, int rawLength, int count, ReadOnlySpan<byte> body, string where, EventBlock block, int skip = 0)
    {
        ArgumentNullException.ThrowIfNull(block);
        if (kind == BodyKind.Records) return new DecodedBody(true, count);
        if (kind is BodyKind.TraceEvents or BodyKind.TraceEventsCompact)
        {
            var events = Decode(kind, codec, rawLength, count, body, where).Events!;
            for (int i = Math.Max(0, skip); i < events.Length; i++) block.Add(events[i]);
            return new DecodedBody(false, events.Length);
        }
        if (kind != BodyKind.TraceEventsShaped) throw new StoreCorruptException($"{where}: unknown body kind {(byte)kind}");
        byte[] rented = Decompress(codec, rawLength, body, where);
        try
        {
            DecodeShaped(rented.AsSpan(0, rawLength), count, block, skip, where);
            return new DecodedBody(false, count);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(rented);
        }
    }

    static void DecodeShaped(ReadOnlySpan<byte> raw, int count, EventBlock block, int skip, string where)
    {
        int rows = block.Count;
        try
        {
            int n = ShapedTraceEventCodec.Decode(raw, block, skip, out int read);
            if (n != count) throw new StoreCorruptException($"{where}: body holds {n} events, header says {count}");
            if (read != raw.Length) throw new StoreCorruptException($"{where}: {raw.Length - read} trailing bytes after the events");
        }
        catch (Exception e)
        {
            while (block.Count > rows) block.RemoveLast();
            if (Malformed(e)) throw Corrupt(where, e);
            throw;
        }
    }

    static EventRecord[] DecodeRecords(ReadOnlyMemory<byte> raw, int count, string where)
    {
        var r = new MessagePackReader(raw);
        int n = r.ReadArrayHeader();
        if (n != count) throw new StoreCorruptException($"{where}: body holds {n} records, header says {count}");
        var records = new EventRecord[n];
        for (int i = 0; i < n; i++)
        {
            if (r.ReadArrayHeader() != 2) throw new StoreCorruptException($"{where}: record {i} is not [type, payload]");
            var type = r.ReadString() ?? throw new StoreCorruptException($"{where}: record {i} has no type");
            var seq = r.ReadBytes() ?? throw new StoreCorruptException($"{where}: record {i} has no payload");
            records[i] = new EventRecord(type, seq.ToArray());
        }
        if (!r.End) throw new StoreCorruptException($"{where}: trailing bytes after the records");
        return records;
    }

    /// <summary>The raw body in a rented array (return it to <see cref="ArrayPool{T}.Shared"/>).</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveOptimization)]
    static byte[] Decompress(BodyCodec codec, int rawLength, ReadOnlySpan<byte> body, string where)
    {
        if (rawLength < 0 || rawLength > MaxRawLength)
            throw new StoreCorruptException($"{where}: raw length {rawLength} out of range");
        if (codec is not (BodyCodec.None or BodyCodec.Zstd))
            throw new StoreCorruptException($"{where}: unknown codec {(byte)codec}");
        if (codec == BodyCodec.None && body.Length != rawLength)
            throw new StoreCorruptException($"{where}: body is {body.Length} bytes, header says {rawLength}");
        var rented = ArrayPool<byte>.Shared.Rent(Math.Max(rawLength, 1));
        try
        {
            int n;
            switch (codec)
            {
                case BodyCodec.Zstd:
                    try
                    {
                        var d = t_decompressor ??= new ZstdSharp.Decompressor();
                        n = d.Unwrap(body, rented.AsSpan(0, rawLength));
                    }
                    catch (Exception e) when (e is not OutOfMemoryException)
                    {
                        throw new StoreCorruptException($"{where}: zstd body does not decode ({e.Message})");
                    }
                    break;
                default:
                    body.CopyTo(rented);
                    n = rawLength;
                    break;
            }
            if (n != rawLength) throw new StoreCorruptException($"{where}: body decodes to {n} bytes, header says {rawLength}");
            return rented;
        }
        catch
        {
            ArrayPool<byte>.Shared.Return(rented);
            throw;
        }
    }

    static bool Malformed(Exception e) =>
        e is MessagePackSerializationException or EndOfStreamException or OverflowException or InvalidOperationException
            or ArgumentException or FormatException or System.Text.DecoderFallbackException;

    static StoreCorruptException Corrupt(string where, Exception e) => e switch
    {
        EndOfStreamException => new StoreCorruptException($"{where}: MessagePack body is truncated ({e.Message})"),
        MessagePackSerializationException => new StoreCorruptException($"{where}: MessagePack body does not decode ({e.InnerException?.Message ?? e.Message})"),
        _ => new StoreCorruptException($"{where}: MessagePack body does not decode ({e.Message})"),
    };
}
