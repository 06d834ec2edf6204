using System.Runtime.CompilerServices;
using Replayer.Core;

namespace Replayer.Formats.Binary;

/// <summary>The ring-buffer page and event header layout, read from the capture's
/// <c>header_page</c> and <c>header_event</c> files rather than assumed.</summary>
public sealed class RingLayout
{
    public int PageSize { get; init; }
    public int TimestampOffset { get; init; }
    public int TimestampSize { get; init; } = 8;
    public int CommitOffset { get; init; } = 8;
    public int CommitSize { get; init; } = 8;
    public int DataOffset { get; init; } = 16;
    public int PaddingType { get; init; } = 29;
    public int TimeExtendType { get; init; } = 30;
    public int TimeStampType { get; init; } = 31;
    public int DataMaxType { get; init; } = 28;
    public bool BigEndian { get; init; }

    public const uint CommitMask = (1u << 27) - 1;
    public const ulong MissedEvents = 1UL << 31;
    public const ulong MissedStored = 1UL << 30;

    public static RingLayout Parse(string headerPage, string headerEvent, int pageSize, int longSize, bool big, string source, long offset)
    {
        int tsOff = 0, tsSize = 8, cOff = 8, cSize = longSize, dOff = -1;
        foreach (var raw in headerPage.Split('\n'))
        {
            var line = raw.Trim();
            if (!line.StartsWith("field:", StringComparison.Ordinal)) continue;
            var f = EventFormat.ParseFieldLine(line, source, offset);
            switch (f.Name)
            {
                case "timestamp": tsOff = f.Offset; tsSize = f.Size; break;
                case "commit": cOff = f.Offset; cSize = f.Size; break;
                case "data": dOff = f.Offset; break;
            }
        }
        if (dOff < 0 || tsSize is not (4 or 8) || cSize is not (4 or 8) || dOff >= pageSize || tsOff + tsSize > dOff || cOff + cSize > dOff)
            TraceInputException.ThrowAtOffset(source, offset, "header_page with timestamp, commit and data fields inside the page",
                headerPage);
        int pad = 29, ext = 30, stamp = 31, max = 28;
        foreach (var raw in headerEvent.Split('\n'))
        {
            var line = raw.Trim();
            int eq = line.IndexOf("==", StringComparison.Ordinal);
            if (eq < 0 || !int.TryParse(line[(eq + 2)..].Trim(), out int v) || v < 0 || v > 31) continue;
            if (line.StartsWith("padding", StringComparison.Ordinal)) pad = v;
            else if (line.StartsWith("time_extend", StringComparison.Ordinal)) ext = v;
            else if (line.StartsWith("time_stamp", StringComparison.Ordinal)) stamp = v;
            else if (line.StartsWith("data max", StringComparison.Ordinal)) max = v;
        }
        return new RingLayout
        {
            PageSize = pageSize, TimestampOffset = tsOff, TimestampSize = tsSize, CommitOffset = cOff, CommitSize = cSize,
            DataOffset = dOff, PaddingType = pad, TimeExtendType = ext, TimeStampType = stamp, DataMaxType = max, BigEndian = big,
        };
    }
}

/// <summary>Supplies the pages of one CPU's ring-buffer data, one page at a time, in place.</summary>
public interface IPageSource
{
    /// <summary>Makes the next page available as <c>buffer[offset .. offset + page size)</c> (a short final
    /// page is zero-filled); the bytes stay valid until the next call. Returns false at the end.
    /// <paramref name="position"/> is the page's byte position for error messages and event sources.</summary>
    bool NextPage(out byte[] buffer, out int offset, out long position);
}

/// <summary>Sequential reads of a file range through a read-ahead window: one read per window instead of
/// one per page or chunk header.</summary>
sealed class ReadAhead(BinarySource src, long start, long end, int window)
{
    byte[] _buf = [];
    long _at = start;
    int _len;

    /// <summary>The buffer holding <c>[pos, pos + count)</c> (which must lie inside the range) and where in it.</summary>
    public byte[] Get(long pos, int count, string what, out int offset)
    {
        if (pos >= _at && pos + count <= _at + _len)
        {
            offset = (int)(pos - _at);
            return _buf;
        }
        int want = (int)Math.Min(Math.Max(window, count), end - pos);
        if (want < count) TraceInputException.ThrowAtOffset(src.Name, pos, $"{what} ({count} bytes) inside the CPU data", $"end of CPU data at {end}");
        if (_buf.Length < want) _buf = new byte[want];
        src.Read(pos, _buf.AsSpan(0, want), what);
        _at = pos;
        _len = want;
        offset = 0;
        return _buf;
    }

    /// <summary>Window size for a range: about 128 KiB, whole pages, no more than the range.</summary>
    public static int WindowFor(long size, int pageSize) =>
        (int)Math.Max(1, Math.Min(size, (long)pageSize * Math.Max(1, (128 << 10) / pageSize)));
}

/// <summary>Pages stored uncompressed at a file range.</summary>
public sealed class RawPageSource : IPageSource
{
    readonly ReadAhead _data;
    readonly long _offset, _size;
    readonly int _pageSize;
    long _pos;
    byte[]? _tail;

    public RawPageSource(BinarySource src, long offset, long size, int pageSize)
    {
        _offset = offset;
        _size = size;
        _pageSize = pageSize;
        _data = new ReadAhead(src, offset, offset + size, ReadAhead.WindowFor(size, pageSize));
    }

    public bool NextPage(out byte[] buffer, out int offset, out long position)
    {
        position = _offset + _pos;
        if (_pos >= _size)
        {
            buffer = [];
            offset = 0;
            return false;
        }
        int n = (int)Math.Min(_pageSize, _size - _pos);
        var b = _data.Get(_offset + _pos, n, "ring-buffer page", out int at);
        _pos += n;
        if (n == _pageSize)
        {
            buffer = b;
            offset = at;
            return true;
        }
        _tail ??= new byte[_pageSize];
        b.AsSpan(at, n).CopyTo(_tail);
        _tail.AsSpan(n).Clear();
        buffer = _tail;
        offset = 0;
        return true;
    }
}

/// <summary>Pages stored as a trace.dat v7 compressed chunk list: <c>u32 count</c>, then per chunk
/// <c>u32 compressed, u32 uncompressed, data</c>. Decompresses one chunk at a time into a reused buffer
/// (with the reader's reused zstd context) and hands out its pages in place.</summary>
public sealed class ChunkedPageSource : IPageSource
{
    readonly BinarySource _src;
    readonly ReadAhead _data;
    readonly long _end;
    readonly string _algo;
    readonly int _pageSize;
    readonly bool _big;
    readonly ZstdFrameDecoder? _zstd;
    long _next; // file offset of the next chunk header
    uint _chunksLeft;
    byte[] _chunk = [];
    byte[]? _tail;
    int _chunkLen, _chunkPos;
    long _virtualPos; // position in this CPU's uncompressed stream
    readonly long _base;

    public ChunkedPageSource(BinarySource src, long offset, long size, string algo, int pageSize, bool big, ZstdFrameDecoder? zstd = null)
    {
        _src = src;
        _algo = algo;
        _pageSize = pageSize;
        _big = big;
        _zstd = zstd;
        _base = offset;
        _end = offset + size;
        _data = new ReadAhead(src, offset, _end, (int)Math.Min(Math.Max(size, 1), 128 << 10));
        if (size == 0) return;
        Span<byte> b = stackalloc byte[4];
        src.Check(offset, 4, "compressed chunk count");
        if (size < 4) TraceInputException.ThrowAtOffset(src.Name, offset, "compressed CPU data of at least 4 bytes", size + " bytes");
        src.Read(offset, b, "compressed chunk count");
        _chunksLeft = Endian.U32(b, big);
        if (_chunksLeft > (size - 4) / 8)
            TraceInputException.ThrowAtOffset(src.Name, offset, "chunk count that fits the CPU data", _chunksLeft + " chunks in " + size + " bytes");
        _next = offset + 4;
    }

    public bool NextPage(out byte[] buffer, out int offset, out long position)
    {
        while (_chunkPos >= _chunkLen)
        {
            if (_chunksLeft == 0)
            {
                position = _base + _virtualPos;
                buffer = [];
                offset = 0;
                return false;
            }
            LoadChunk();
        }
        position = _base + _virtualPos;
        int n = Math.Min(_pageSize, _chunkLen - _chunkPos);
        if (n == _pageSize)
        {
            buffer = _chunk;
            offset = _chunkPos;
        }
        else
        {
            _tail ??= new byte[_pageSize];
            _chunk.AsSpan(_chunkPos, n).CopyTo(_tail);
            _tail.AsSpan(n).Clear();
            buffer = _tail;
            offset = 0;
        }
        _chunkPos += n;
        _virtualPos += n;
        return true;
    }

    void LoadChunk()
    {
        if (_next + 8 > _end) TraceInputException.ThrowAtOffset(_src.Name, _next, "compressed chunk header inside the CPU data", "end of CPU data at " + _end);
        var hb = _data.Get(_next, 8, "compressed chunk header", out int ho);
        uint csize = Endian.U32(hb.AsSpan(ho, 4), _big), usize = Endian.U32(hb.AsSpan(ho + 4, 4), _big);
        long dataAt = _next + 8;
        if (csize > _end - dataAt)
            TraceInputException.ThrowAtOffset(_src.Name, _next, "compressed chunk inside the CPU data", $"{csize} bytes, {_end - dataAt} left");
        Decompress.CheckDeclared(_src.Name, _next, csize, usize, "trace data chunk");
        var comp = _data.Get(dataAt, (int)csize, "compressed chunk", out int co);
        if (_chunk.Length < usize) _chunk = new byte[usize];
        Decompress.Into(_algo, comp.AsSpan(co, (int)csize), _chunk.AsSpan(0, (int)usize), _src.Name, _next, "trace data chunk", _zstd);
        _chunkLen = (int)usize;
        _chunkPos = 0;
        _next = dataAt + csize;
        _chunksLeft--;
    }
}

/// <summary>
/// Walks the events of one CPU's ring-buffer pages in order, computing timestamps from the page
/// timestamp and the event deltas (TIME_EXTEND, absolute TIME_STAMP), skipping padding, and
/// reporting pages that say events were missed before them.
/// </summary>
public sealed class CpuStream
{
    readonly IPageSource _pages;
    readonly RingLayout _l;
    readonly string _source;
    readonly bool _big;
    readonly uint _dataMax, _padding, _extend, _stamp;
    /// <summary>The buffer holding the current page, which starts at <see cref="PageBase"/> in it (pages are
    /// read in place from the source's buffers; nothing is allocated for CPUs without data).</summary>
    public byte[] Page = [];
    public int PageBase;
    public readonly int Cpu;
    long _pagePos;
    int _pos, _end; // absolute indices into Page
    ulong _ts;
    bool _havePage;

    /// <summary>Current record: raw timestamp, payload offset (into <see cref="Page"/>) and length, file position.</summary>
    public ulong Timestamp;
    public int RecordOffset, RecordLength;
    public long RecordPosition;
    /// <summary>When the current item is a data-loss marker (a page flagged with missed events): the count (0 = unknown).</summary>
    public bool IsLoss;
    public long Lost;
    /// <summary>Stream order key for the merge.</summary>
    public long Sequence;
    public int InstanceIndex;

    public CpuStream(IPageSource pages, RingLayout layout, int cpu, string source, int instanceIndex = 0)
    {
        _pages = pages;
        _l = layout;
        _big = layout.BigEndian;
        _dataMax = (uint)layout.DataMaxType;
        _padding = (uint)layout.PaddingType;
        _extend = (uint)layout.TimeExtendType;
        _stamp = (uint)layout.TimeStampType;
        Cpu = cpu;
        _source = source;
        InstanceIndex = instanceIndex;
    }

    /// <summary>Diagnostics: reads (and decompresses) every remaining page without walking its events; returns
    /// the bytes of page data. The stream is at its end afterwards.</summary>
    public long DrainPages()
    {
        long bytes = 0;
        while (_pages.NextPage(out _, out _, out _)) bytes += _l.PageSize;
        _havePage = false;
        return bytes;
    }

    /// <summary>Advances to the next record or loss marker. False at the end of the CPU's data.</summary>
    public bool Next()
    {
        IsLoss = false;
        while (true)
        {
            if (!_havePage || _pos >= _end)
            {
                if (!LoadPage()) return false;
                if (IsLoss) return true;
                continue;
            }
            if (NextInPage()) return true;
        }
    }

    bool LoadPage()
    {
        while (true)
        {
            if (!_pages.NextPage(out var buf, out int b, out _pagePos)) { _havePage = false; return false; }
            Page = buf;
            PageBase = b;
            bool big = _big;
            var span = buf.AsSpan(b, _l.PageSize);
            _ts = _l.TimestampSize == 8 ? Endian.U64(span.Slice(_l.TimestampOffset, 8), big) : Endian.U32(span.Slice(_l.TimestampOffset, 4), big);
            ulong commitRaw = _l.CommitSize == 8 ? Endian.U64(span.Slice(_l.CommitOffset, 8), big) : Endian.U32(span.Slice(_l.CommitOffset, 4), big);
            uint commit = (uint)commitRaw & RingLayout.CommitMask;
            int room = _l.PageSize - _l.DataOffset;
            if (commit > room)
                TraceInputException.ThrowAtOffset(_source, _pagePos + _l.CommitOffset, $"ring-buffer page commit <= {room} (CPU {Cpu})", commit.ToString());
            int end = _l.DataOffset + (int)commit; // relative to the page
            _pos = b + _l.DataOffset;
            _end = b + end;
            _havePage = true;
            if ((commitRaw & RingLayout.MissedEvents) != 0)
            {
                Lost = 0;
                int ls = _l.CommitSize;
                if ((commitRaw & RingLayout.MissedStored) != 0 && end + ls <= _l.PageSize)
                {
                    ulong lost = ls == 8 ? Endian.U64(span.Slice(end, 8), big) : Endian.U32(span.Slice(end, 4), big);
                    Lost = lost > long.MaxValue ? long.MaxValue : (long)lost;
                }
                IsLoss = true;
                Timestamp = _ts;
                RecordPosition = _pagePos;
                RecordOffset = RecordLength = 0;
                return true;
            }
            if (commit > 0) return true;
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    bool NextInPage()
    {
        var page = Page;
        bool big = _big;
        int end = _end;
        while (_pos < end)
        {
            int at = _pos;
            if (at + 4 > end) Corrupt(at, "4-byte event header");
            uint hdr = Endian.U32(page.AsSpan(at, 4), big);
            uint typeLen = big ? hdr >> 27 : hdr & 31;
            uint delta = big ? hdr & ((1u << 27) - 1) : hdr >> 5;
            int data = at + 4;
            if (typeLen == 0)
            {
                if (data + 4 > end) Corrupt(at, "event length word");
                uint len = Endian.U32(page.AsSpan(data, 4), big);
                if (len < 4 || len - 4 > (uint)(end - data - 4)) Corrupt(at, $"event length <= {end - data}", len.ToString());
                int plen = (int)len - 4;
                _ts += delta;
                _pos = data + 4 + ((plen + 3) & ~3);
                if (_pos > end) _pos = end;
                Emit(data + 4, plen, at);
                return true;
            }
            if (typeLen <= _dataMax)
            {
                int plen = (int)typeLen * 4;
                if (data + plen > end) Corrupt(at, $"event of {plen} bytes inside the page", (end - data) + " bytes left");
                _ts += delta;
                _pos = data + plen;
                Emit(data, plen, at);
                return true;
            }
            if (typeLen == _padding)
            {
                if (delta == 0) { _pos = end; return false; } // the rest of the page is padding
                if (data + 4 > end) { _pos = end; return false; }
                uint len = Endian.U32(page.AsSpan(data, 4), big);
                if (len > (uint)(end - data)) Corrupt(at, "padding length inside the page", len.ToString());
                _ts += delta;
                _pos = data + (int)len;
                if (_pos < data + 4) _pos = data + 4;
                continue;
            }
            if (typeLen == _extend || typeLen == _stamp)
            {
                if (data + 4 > end) Corrupt(at, "time extend word");
                ulong ext = ((ulong)Endian.U32(page.AsSpan(data, 4), big) << 27) + delta;
                if (typeLen == _extend) _ts += ext;
                else _ts = (_ts & ~((1UL << 59) - 1)) | ext; // absolute: the kernel keeps the page's top bits
                _pos = data + 4;
                continue;
            }
            Corrupt(at, "known event type", "type_len " + typeLen);
        }
        return false;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    void Emit(int off, int len, int headerAt)
    {
        Timestamp = _ts;
        RecordOffset = off;
        RecordLength = len;
        RecordPosition = _pagePos + (headerAt - PageBase);
    }

    void Corrupt(int at, string expected, string found = "end of page data") =>
        TraceInputException.ThrowAtOffset(_source, _pagePos + (at - PageBase), expected + $" (CPU {Cpu} ring buffer)", found);
}
