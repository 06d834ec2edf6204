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
    TraceEvents = 1,
    Records = 2,
    /// <summary>Trace events with a per-batch string table and delta timestamps (<see cref="CompactTraceEventEncoder"/>); written since format v2 of the bodies, kind 1 still read.</summary>
    TraceEventsCompact = 3,
}

/// <summary>Compression of a stored batch body.</summary>
public enum BodyCodec : byte
{
    None = 0,
    Zstd = 1,
}

/// <summary>
/// Encodes a batch as one MessagePack array (trace events: <c>TraceEvent[]</c>; records: array of
/// <c>[type, bin]</c>), compressed as one zstd block. Decoding treats bytes as untrusted.
/// </summary>
public static class BatchCodec
{
    /// <summary>Largest decoded body accepted (a guard against hostile lengths).</summary>
    public const int MaxRawLength = 1 << 30;
    public const int ZstdLevel = 1;

    public static readonly MessagePackSerializerOptions Options =
        MessagePackSerializerOptions.Standard.WithSecurity(MessagePackSecurity.UntrustedData);

    [ThreadStatic] static ArrayBufferWriter<byte>? t_raw;
    [ThreadStatic] static ZstdSharp.Compressor? t_compressor;
    [ThreadStatic] static byte[]? t_compressed;
    [ThreadStatic] static ZstdSharp.Decompressor? t_decompressor;

    public readonly record struct Encoded(BodyKind Kind, BodyCodec Codec, int RawLength, byte[] Body, int Count);

    public static Encoded Encode(EventBatch batch, BodyCodec codec = BodyCodec.Zstd)
    {
        var raw = t_raw ??= new ArrayBufferWriter<byte>(1 << 20);
        raw.ResetWrittenCount();
        BodyKind kind;
        if (batch.TraceEvents is { } events)
        {
            kind = BodyKind.TraceEventsCompact;
            CompactTraceEventEncoder.Encode(raw, events);
        }
        else
        {
            kind = BodyKind.Records;
            var w = new MessagePackWriter(raw);
            w.WriteArrayHeader(batch.Records!.Length);
            foreach (var r in batch.Records)
            {
                w.WriteArrayHeader(2);
                w.Write(r.EventType);
                w.Write(r.Payload.Span);
            }
            w.Flush();
        }
        if (raw.WrittenCount > MaxRawLength)
            throw new ArgumentException($"batch encodes to {raw.WrittenCount} bytes; the limit is {MaxRawLength}: append smaller batches");
        byte[] body;
        if (codec == BodyCodec.Zstd)
        {
            var c = t_compressor ??= new ZstdSharp.Compressor(ZstdLevel);
            // A reused output buffer: a fresh compress-bound array per batch would land on the large object
            // heap and trigger full collections.
            int bound = ZstdSharp.Compressor.GetCompressBound(raw.WrittenCount);
            if (t_compressed == null || t_compressed.Length < bound) t_compressed = new byte[Math.Max(bound, 1 << 20)];
            int n = c.Wrap(raw.WrittenSpan, t_compressed);
            body = t_compressed.AsSpan(0, n).ToArray();
        }
        else body = raw.WrittenSpan.ToArray();
        return new Encoded(kind, codec, raw.WrittenCount, body, batch.Count);
    }

    /// <summary>Decodes a body; any inconsistency throws <see cref="StoreCorruptException"/> naming <paramref name="where"/>.</summary>
    public static (TraceEvent[]? Events, EventRecord[]? Records) Decode(BodyKind kind, BodyCodec codec, int rawLength, int count, ReadOnlySpan<byte> body, string where)
    {
        if (rawLength < 0 || rawLength > MaxRawLength)
            throw new StoreCorruptException($"{where}: raw length {rawLength} out of range");
        byte[]? rented = null;
        try
        {
            ReadOnlyMemory<byte> raw;
            if (codec == BodyCodec.Zstd)
            {
                rented = ArrayPool<byte>.Shared.Rent(Math.Max(rawLength, 1));
                int n;
                try
                {
                    var d = t_decompressor ??= new ZstdSharp.Decompressor();
                    n = d.Unwrap(body, rented.AsSpan(0, rawLength));
                }
                catch (Exception e) when (e is not OutOfMemoryException)
                {
                    throw new StoreCorruptException($"{where}: zstd body does not decode ({e.Message})");
                }
                if (n != rawLength) throw new StoreCorruptException($"{where}: body decodes to {n} bytes, header says {rawLength}");
                raw = rented.AsMemory(0, n);
            }
            else if (codec == BodyCodec.None)
            {
                if (body.Length != rawLength) throw new StoreCorruptException($"{where}: body is {body.Length} bytes, header says {rawLength}");
                rented = ArrayPool<byte>.Shared.Rent(Math.Max(rawLength, 1));
                body.CopyTo(rented);
                raw = rented.AsMemory(0, rawLength);
            }
            else throw new StoreCorruptException($"{where}: unknown codec {(byte)codec}");

            try
            {
                if (kind is BodyKind.TraceEvents or BodyKind.TraceEventsCompact)
                {
                    var events = kind == BodyKind.TraceEvents ? TraceEventDecoder.Decode(raw, out int read) : TraceEventDecoder.DecodeCompact(raw, out read);
                    if (read != rawLength) throw new StoreCorruptException($"{where}: {rawLength - read} trailing bytes after the events");
                    if (events is null || events.Length != count) throw new StoreCorruptException($"{where}: body holds {events?.Length ?? 0} events, header says {count}");
                    foreach (var e in events)
                        if (e is null) throw new StoreCorruptException($"{where}: null event in body");
                    return (events, null);
                }
                if (kind == BodyKind.Records)
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
                    return (null, records);
                }
                throw new StoreCorruptException($"{where}: unknown body kind {(byte)kind}");
            }
            catch (MessagePackSerializationException e)
            {
                throw new StoreCorruptException($"{where}: MessagePack body does not decode ({e.InnerException?.Message ?? e.Message})");
            }
            catch (EndOfStreamException e)
            {
                throw new StoreCorruptException($"{where}: MessagePack body is truncated ({e.Message})");
            }
            catch (Exception e) when (e is OverflowException or InvalidOperationException or ArgumentException or FormatException or System.Text.DecoderFallbackException)
            {
                throw new StoreCorruptException($"{where}: MessagePack body does not decode ({e.Message})");
            }
        }
        finally
        {
            if (rented != null) ArrayPool<byte>.Shared.Return(rented);
        }
    }
}
