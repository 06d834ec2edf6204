using Microsoft.Win32.SafeHandles;
using System.Buffers.Binary;
using System.Text;

namespace Replayer.Store.Embedded;

/// <summary>Frame types in a segment file.</summary>
public enum FrameType : byte
{
    /// <summary>A batch of events of one stream (part of a transaction).</summary>
    Batch = 1,
    /// <summary>Ends a transaction: its frames become visible. No body.</summary>
    Commit = 2,
    /// <summary>Stream metadata (UTF-8 JSON body), part of a transaction.</summary>
    Metadata = 3,
    /// <summary>Deletes a stream, part of a transaction. No body.</summary>
    Delete = 4,
}

/// <summary>
/// On-disk layout of the embedded store. All integers little-endian.
/// <para>Segment file (<c>segments/seg-NNNNNN.dat</c>): a 32-byte header (magic <c>RPLSEG01</c>, version,
/// segment number, zero padding, CRC-32C of the first 28 bytes), then frames back to back.</para>
/// <para>Frame: a 64-byte header, the stream name (UTF-8), the body. Header fields: magic <c>RPF1</c>,
/// type, body kind, codec, zero, name length (u16), zero (u16), count (u32), body length (u32),
/// raw (decoded) length (u32), transaction id (u64), first revision (u64), first position (u64),
/// body CRC-32C (u32), 8 zero bytes, header CRC-32C over bytes 0..59 and the name.</para>
/// <para>Every frame belongs to a transaction; a transaction's frames are contiguous and end with a
/// Commit frame. Frames after the last Commit are uncommitted: readers ignore them and the writer
/// truncates them when it opens the store.</para>
/// </summary>
public static class SegmentFormat
{
    public static ReadOnlySpan<byte> SegmentMagic => "RPLSEG01"u8;
    public const int SegmentHeaderSize = 32;
    public const uint Version = 1;
    public const uint FrameMagic = 0x31465052; // "RPF1"
    public const int FrameHeaderSize = 64;
    public const int MaxNameBytes = StreamName.MaxLength * 3;
    /// <summary>Largest body accepted when reading (guards hostile lengths beyond the file size check).</summary>
    public const int MaxBodyLength = 512 << 20;

    public static string SegmentFileName(int n) => $"seg-{n:D6}.dat";

    public static bool TryParseSegmentFileName(string fileName, out int n)
    {
        n = 0;
        return fileName.Length == 14 && fileName.StartsWith("seg-", StringComparison.Ordinal) && fileName.EndsWith(".dat", StringComparison.Ordinal)
            && int.TryParse(fileName.AsSpan(4, 6), System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out n);
    }

    public static byte[] BuildSegmentHeader(int segment)
    {
        var h = new byte[SegmentHeaderSize];
        SegmentMagic.CopyTo(h);
        BinaryPrimitives.WriteUInt32LittleEndian(h.AsSpan(8), Version);
        BinaryPrimitives.WriteInt32LittleEndian(h.AsSpan(12), segment);
        BinaryPrimitives.WriteUInt32LittleEndian(h.AsSpan(28), Crc32C.Compute(h.AsSpan(0, 28)));
        return h;
    }

    /// <summary>Null when valid, otherwise what is wrong.</summary>
    public static string? CheckSegmentHeader(ReadOnlySpan<byte> h, int expectedSegment)
    {
        if (h.Length < SegmentHeaderSize) return "segment header is truncated";
        if (!h[..8].SequenceEqual(SegmentMagic)) return "bad segment magic";
        if (BinaryPrimitives.ReadUInt32LittleEndian(h[28..]) != Crc32C.Compute(h[..28])) return "segment header checksum mismatch";
        if (BinaryPrimitives.ReadUInt32LittleEndian(h[8..]) != Version) return $"unsupported segment version {BinaryPrimitives.ReadUInt32LittleEndian(h[8..])}";
        if (BinaryPrimitives.ReadInt32LittleEndian(h[12..]) != expectedSegment) return $"segment header says segment {BinaryPrimitives.ReadInt32LittleEndian(h[12..])}, file name says {expectedSegment}";
        foreach (var b in h[16..28]) if (b != 0) return "nonzero reserved bytes in segment header";
        return null;
    }
}

/// <summary>A parsed frame header.</summary>
public readonly struct FrameHeader
{
    public FrameType Type { get; init; }
    public BodyKind Kind { get; init; }
    public BodyCodec Codec { get; init; }
    public int NameLength { get; init; }
    public int Count { get; init; }
    public int BodyLength { get; init; }
    public int RawLength { get; init; }
    public ulong TxId { get; init; }
    public ulong FirstRevision { get; init; }
    public ulong FirstPosition { get; init; }
    public uint BodyCrc { get; init; }
    public string Stream { get; init; }

    public int FrameLength => SegmentFormat.FrameHeaderSize + NameLength + BodyLength;

    /// <summary>Header and name bytes.</summary>
    public byte[] Build()
    {
        var name = Encoding.UTF8.GetBytes(Stream);
        var h = new byte[SegmentFormat.FrameHeaderSize + name.Length];
        var s = h.AsSpan();
        BinaryPrimitives.WriteUInt32LittleEndian(s, SegmentFormat.FrameMagic);
        s[4] = (byte)Type; s[5] = (byte)Kind; s[6] = (byte)Codec;
        BinaryPrimitives.WriteUInt16LittleEndian(s[8..], checked((ushort)name.Length));
        BinaryPrimitives.WriteInt32LittleEndian(s[12..], Count);
        BinaryPrimitives.WriteInt32LittleEndian(s[16..], BodyLength);
        BinaryPrimitives.WriteInt32LittleEndian(s[20..], RawLength);
        BinaryPrimitives.WriteUInt64LittleEndian(s[24..], TxId);
        BinaryPrimitives.WriteUInt64LittleEndian(s[32..], FirstRevision);
        BinaryPrimitives.WriteUInt64LittleEndian(s[40..], FirstPosition);
        BinaryPrimitives.WriteUInt32LittleEndian(s[48..], BodyCrc);
        name.CopyTo(s[64..]);
        BinaryPrimitives.WriteUInt32LittleEndian(s[60..], Crc32C.Append(Crc32C.Append(~0u, s[..60]), name) ^ ~0u);
        return h;
    }

    /// <summary>Checks the fixed part (without the name). Null when plausible, else what is wrong.</summary>
    public static string? ParseFixed(ReadOnlySpan<byte> s, out FrameHeader h)
    {
        h = default;
        if (BinaryPrimitives.ReadUInt32LittleEndian(s) != SegmentFormat.FrameMagic) return "bad frame magic";
        var type = (FrameType)s[4];
        if (type is < FrameType.Batch or > FrameType.Delete) return $"unknown frame type {s[4]}";
        if (s[7] != 0 || s[10] != 0 || s[11] != 0) return "nonzero reserved bytes in frame header";
        for (int i = 52; i < 60; i++) if (s[i] != 0) return "nonzero reserved bytes in frame header";
        int nameLen = BinaryPrimitives.ReadUInt16LittleEndian(s[8..]);
        if (nameLen is 0 or > SegmentFormat.MaxNameBytes) return $"stream name length {nameLen} out of range";
        int count = BinaryPrimitives.ReadInt32LittleEndian(s[12..]);
        int bodyLen = BinaryPrimitives.ReadInt32LittleEndian(s[16..]);
        int rawLen = BinaryPrimitives.ReadInt32LittleEndian(s[20..]);
        if (count < 0 || bodyLen < 0 || rawLen < 0 || bodyLen > SegmentFormat.MaxBodyLength || rawLen > BatchCodec.MaxRawLength)
            return "negative or oversized count/length in frame header";
        h = new FrameHeader
        {
            Type = type, Kind = (BodyKind)s[5], Codec = (BodyCodec)s[6], NameLength = nameLen, Count = count,
            BodyLength = bodyLen, RawLength = rawLen,
            TxId = BinaryPrimitives.ReadUInt64LittleEndian(s[24..]),
            FirstRevision = BinaryPrimitives.ReadUInt64LittleEndian(s[32..]),
            FirstPosition = BinaryPrimitives.ReadUInt64LittleEndian(s[40..]),
            BodyCrc = BinaryPrimitives.ReadUInt32LittleEndian(s[48..]),
            Stream = "",
        };
        return null;
    }

    /// <summary>Checks the header CRC over fixed part + name and decodes the name.</summary>
    public static string? FinishParse(ReadOnlySpan<byte> headerAndName, ref FrameHeader h)
    {
        var fixedPart = headerAndName[..SegmentFormat.FrameHeaderSize];
        var name = headerAndName.Slice(SegmentFormat.FrameHeaderSize, h.NameLength);
        uint crc = Crc32C.Append(Crc32C.Append(~0u, fixedPart[..60]), name) ^ ~0u;
        if (crc != BinaryPrimitives.ReadUInt32LittleEndian(fixedPart[60..])) return "frame header checksum mismatch";
        string stream;
        try { stream = new UTF8Encoding(false, true).GetString(name); }
        catch (DecoderFallbackException) { return "stream name is not UTF-8"; }
        // Semantic checks that a valid CRC should already guarantee (a writer bug would trip them).
        switch (h.Type)
        {
            case FrameType.Batch:
                if (h.Kind is not (BodyKind.TraceEvents or BodyKind.Records or BodyKind.TraceEventsCompact or BodyKind.TraceEventsShaped)) return $"unknown body kind {(byte)h.Kind}";
                if (h.Codec is not (BodyCodec.None or BodyCodec.Zstd)) return $"unknown codec {(byte)h.Codec}";
                if (h.Count == 0) return "empty batch";
                break;
            case FrameType.Metadata:
                if (h.Codec != BodyCodec.None || h.RawLength != h.BodyLength) return "metadata frame must be uncompressed";
                break;
            default:
                if (h.BodyLength != 0) return $"{h.Type} frame has a body";
                break;
        }
        h = h with { Stream = stream };
        return null;
    }
}

/// <summary>Positioned reads of segment files, shared by the store's recovery scan and the verifier.</summary>
internal static class SegmentReads
{
    /// <summary>Reads and checks the frame header at <paramref name="off"/>; null when it is sound, else what is wrong.</summary>
    public static string? ReadHeader(SafeFileHandle h, long len, long off, byte[] buf, out FrameHeader fh)
    {
        fh = default;
        if (len - off < SegmentFormat.FrameHeaderSize) return $"incomplete frame header ({len - off} of {SegmentFormat.FrameHeaderSize} bytes)";
        ReadExactly(h, buf.AsSpan(0, SegmentFormat.FrameHeaderSize), off);
        var err = FrameHeader.ParseFixed(buf, out fh);
        if (err != null) return err;
        if (off + fh.FrameLength > len) return $"frame of {fh.FrameLength} bytes runs past the end of the file ({len - off} bytes left)";
        ReadExactly(h, buf.AsSpan(SegmentFormat.FrameHeaderSize, fh.NameLength), off + SegmentFormat.FrameHeaderSize);
        return FrameHeader.FinishParse(buf.AsSpan(0, SegmentFormat.FrameHeaderSize + fh.NameLength), ref fh);
    }

    public static void ReadExactly(SafeFileHandle h, Span<byte> buf, long off)
    {
        while (buf.Length > 0)
        {
            int n = RandomAccess.Read(h, buf, off);
            if (n <= 0) throw new EndOfStreamException($"unexpected end of file at byte {off}");
            buf = buf[n..];
            off += n;
        }
    }
}
