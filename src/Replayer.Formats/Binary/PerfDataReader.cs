using System.Buffers.Binary;
using System.Globalization;
using System.Text;
using Replayer.Core;

namespace Replayer.Formats.Binary;

/// <summary>
/// perf <c>perf.data</c> reader (file and pipe mode, either endianness): attributes and their ids,
/// feature sections (TRACING_DATA with the event formats, EVENT_DESC, hostname, osrelease, nrcpus,
/// COMPRESSED), and records — tracepoint/kprobe SAMPLEs decoded from PERF_SAMPLE_RAW with the
/// event's format, COMM/FORK for thread names, LOST/LOST_SAMPLES as data loss, COMPRESSED (zstd)
/// record batches. Records are re-ordered by time with perf's FINISHED_ROUND rule: at a round
/// mark, everything up to the largest timestamp seen before the previous mark is final.
/// </summary>
public sealed class PerfDataReader : IBlockTraceReader
{
    public const ulong Magic = 0x32454c4946524550UL; // "PERFILE2" read little-endian
    public static ReadOnlySpan<byte> MagicBytes => "PERFILE2"u8;

    const int PERF_TYPE_TRACEPOINT = 2;
    const ulong S_IP = 1, S_TID = 2, S_TIME = 4, S_ADDR = 8, S_READ = 16, S_CALLCHAIN = 32, S_ID = 64, S_CPU = 128,
        S_PERIOD = 256, S_STREAM_ID = 512, S_RAW = 1024, S_IDENTIFIER = 1UL << 16;
    const ulong R_ENABLED = 1, R_RUNNING = 2, R_ID = 4, R_GROUP = 8, R_LOST = 16;
    const int MaxQueued = 1 << 20;

    sealed class Attr
    {
        public uint Type;
        public ulong Config, SampleType, ReadFormat;
        public bool SampleIdAll;
        public ulong[] Ids = [];
        public string? Name;
        /// <summary>Name of its samples when their event has no format.</summary>
        public string UnknownName => _unknown ??= Name ?? "unknown:config_" + Config.ToString(CultureInfo.InvariantCulture);
        string? _unknown;
    }

    Stream _in;
    readonly string _name;
    readonly BinaryReaderOptions _opt;
    bool _big;
    readonly bool _pipe;
    long _pos;          // absolute offset of the next record
    long _dataEnd;      // file mode: end of the data section
    readonly List<Attr> _attrs = new();
    readonly Dictionary<ulong, Attr> _byId = new();
    readonly Dictionary<int, EventDecoder> _decoders = new();
    /// <summary>Decoders of the event formats read so far (the tracing data comes before the first sample).</summary>
    public IReadOnlyDictionary<int, EventDecoder> Decoders => _decoders;
    /// <summary>Kallsyms of the tracing data, when perf stored any.</summary>
    public Kallsyms? Kallsyms => _kallsyms;
    readonly Dictionary<int, string> _comms = new();
    Kallsyms? _kallsyms;
    int _longSize = 8;
    RecordContext _ctx;
    /// <summary>A record waiting for its round: its bytes live in <see cref="_arena"/> (no object per
    /// record, so that records waiting across rounds do not burden the GC).</summary>
    struct Pending
    {
        public int Off, Len;
        public uint Type;
        public long Source;
        public ulong Time;
    }

    readonly PriorityQueue<Pending, (ulong, long)> _queue = new();
    byte[] _arena = new byte[1 << 16];
    int _arenaLen;
    long _liveBytes;
    /// <summary>Records whose time order is final (released by a round mark or the end of input) and not yet
    /// consumed, in order; their bytes stay in <see cref="_arena"/> until consumed. Consuming one applies it
    /// (COMM, FORK, ...) or decodes it as a row into the caller's block: no object per event, no copy.</summary>
    Pending[] _released = new Pending[256];
    int _releasedHead, _releasedCount;
    /// <summary>The one-row block <see cref="Read"/> decodes into before making the event object.</summary>
    readonly EventBlock _one = new(1);
    /// <summary>Decoders holding counts of fields left out, added to <see cref="Stats"/> before Read/ReadBlock return.</summary>
    readonly List<EventDecoder> _pendingStats = new();
    long _seq;
    ulong _nextFlush, _maxTime, _lastFlushed;
    bool _eof;
    string _compression = "zstd";
    long _compressedMmapLen = 1 << 20;
    ZstdStreamDecoder? _zstd;
    byte[] _decomp = [];
    int _dPos, _dLen;
    long _dSource;
    readonly byte[] _hdr = new byte[8];
    byte[] _rec = new byte[1 << 16];

    public TraceFormat Format => TraceFormat.PerfData;
    public string SourceName => _name;
    public CaptureHeader Header { get; } = new();
    public ReadStats Stats { get; } = new();
    public bool PipeMode => _pipe;
    public bool BigEndian => _big;
    /// <summary>With <see cref="BinaryReaderOptions.RenderText"/>: the print output of the last sample decoded
    /// (use <see cref="NextRendered"/> to pair outputs with events).</summary>
    public string? LastRendered { get; private set; }

    public PerfDataReader(string path, BinaryReaderOptions? options = null)
        : this(new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16), path, options) { }

    public PerfDataReader(Stream input, string name, BinaryReaderOptions? options = null) : this(input, name, options, ownsStream: true) { }

    bool _ownsStream;
    readonly Dictionary<string, ulong> _symbols;

    PerfDataReader(Stream input, string name, BinaryReaderOptions? options, bool ownsStream)
    {
        _name = name;
        _opt = options ?? new BinaryReaderOptions();
        _in = input;
        _ownsStream = ownsStream;
        _symbols = new Dictionary<string, ulong>(_opt.SymbolValues, StringComparer.Ordinal);
        _ctx = new RecordContext(false, 8, _symbols);
        try
        {
            Span<byte> h = stackalloc byte[16];
            ReadExact(h, 0, "perf.data header");
            ulong magic = BinaryPrimitives.ReadUInt64LittleEndian(h);
            if (magic == Magic) _big = false;
            else if (magic == BinaryPrimitives.ReverseEndianness(Magic)) _big = true;
            else TraceInputException.ThrowAtOffset(name, 0, "perf.data magic PERFILE2", Encoding.Latin1.GetString(h[..8]));
            ulong size = Endian.U64(h[8..], _big);
            _ctx = new RecordContext(_big, 8, _symbols);
            Header.Properties["perf.endian"] = _big ? "big" : "little";
            if (size == 16)
            {
                _pipe = true;
                _pos = 16;
                _dataEnd = long.MaxValue;
                Header.FormatVersion = "perf.data (pipe)";
            }
            else
            {
                if (!input.CanSeek)
                {
                    // File mode needs random access (attrs, features after the data): buffer the input.
                    var ms = new MemoryStream();
                    ms.Write(h);
                    input.CopyTo(ms);
                    if (ownsStream) input.Dispose();
                    ms.Position = 0;
                    _in = input = ms;
                    _ownsStream = true;
                }
                Header.FormatVersion = "perf.data";
                ReadFileHeader(size);
            }
        }
        catch
        {
            if (ownsStream) input.Dispose();
            throw;
        }
    }

    bool _learned;

    /// <summary>File mode: looks ahead (a second reader over the same file) for the events that carry the
    /// values of <see cref="BinaryReaderOptions.SymbolSources"/>. Pipe mode cannot look ahead.</summary>
    void LearnSymbols()
    {
        _learned = true;
        if (_pipe) return;
        var want = _opt.SymbolSources.Where(w => !_symbols.ContainsKey(w.Symbol)).ToList();
        if (want.Count > 0)
            SymbolLookAhead.Learn(() => new PerfDataReader(_in, _name, new BinaryReaderOptions { SymbolicProbes = false }, ownsStream: false), want, _symbols, Header);
        // File mode has read its tracing data already: the context stays, and no symbol is learned later.
        _ctx.SymbolsAreFinal();
    }

    // ------------------------------------------------------------------ file header

    long Length => _in.Length;

    void ReadExact(Span<byte> dst, long offset, string what)
    {
        if (_in.CanSeek)
        {
            if (offset < 0 || offset > _in.Length || dst.Length > _in.Length - offset)
                TraceInputException.ThrowAtOffset(_name, Math.Max(0, Math.Min(offset, _in.Length)), $"{what} ({dst.Length} bytes at offset {offset})", $"end of input at {_in.Length}");
            _in.Position = offset;
        }
        int n = 0;
        while (n < dst.Length)
        {
            int r = _in.Read(dst[n..]);
            if (r == 0) TraceInputException.ThrowAtOffset(_name, offset + n, $"{what} ({dst.Length} bytes)", "end of input");
            n += r;
        }
    }

    byte[] ReadAt(long offset, long count, string what)
    {
        if (count < 0 || count > Array.MaxLength || offset < 0 || offset > Length || count > Length - offset)
            TraceInputException.ThrowAtOffset(_name, Math.Max(0, Math.Min(offset, Length)), $"{what} ({count} bytes at offset {offset})", $"end of input at {Length}");
        var b = new byte[count];
        ReadExact(b, offset, what);
        return b;
    }

    void ReadFileHeader(ulong headerSize)
    {
        if (headerSize < 104 || headerSize > 4096)
            TraceInputException.ThrowAtOffset(_name, 8, "perf.data header size of 104 bytes", headerSize.ToString(CultureInfo.InvariantCulture));
        var h = ReadAt(0, 104, "perf.data header");
        var r = new ByteReader(h, 0, _big, _name) { Pos = 16 };
        long attrSize = r.Size64("attr entry size");
        long attrsOff = r.Size64("attrs offset"), attrsSize = r.Size64("attrs size");
        long dataOff = r.Size64("data offset"), dataSize = r.Size64("data size");
        r.Skip(16, "event_types section");
        // The feature bitmap is an array of u64 words in the file's byte order.
        var feat = new ulong[4];
        for (int w = 0; w < 4; w++) feat[w] = r.U64("feature bitmap");
        if (dataOff > Length || dataSize > Length - dataOff)
            TraceInputException.ThrowAtOffset(_name, 40, "data section inside the file", $"{dataSize} bytes at {dataOff} (file {Length})");
        _pos = dataOff;
        _dataEnd = dataOff + dataSize;
        Header.Properties["perf.data.offset"] = dataOff.ToString(CultureInfo.InvariantCulture);
        Header.Properties["perf.data.size"] = dataSize.ToString(CultureInfo.InvariantCulture);

        // Attributes with their id arrays.
        if (attrSize < 16 + 8 || attrSize > 4096)
            TraceInputException.ThrowAtOffset(_name, 16, "attr entry size between 24 and 4096", attrSize.ToString(CultureInfo.InvariantCulture));
        if (attrsSize % attrSize != 0)
            TraceInputException.ThrowAtOffset(_name, 32, $"attrs size a multiple of {attrSize}", attrsSize.ToString(CultureInfo.InvariantCulture));
        var attrs = ReadAt(attrsOff, attrsSize, "attrs section");
        for (long i = 0; i < attrsSize / attrSize; i++)
        {
            long at = attrsOff + i * attrSize;
            var entry = attrs.AsSpan((int)(i * attrSize), (int)attrSize);
            var a = ParseAttr(entry[..(int)(attrSize - 16)], at);
            var er = new ByteReader(entry, at, _big, _name) { Pos = (int)(attrSize - 16) };
            long idsOff = er.Size64("attr ids offset"), idsSize = er.Size64("attr ids size");
            if (idsSize % 8 != 0) TraceInputException.ThrowAtOffset(_name, er.Offset - 8, "ids size a multiple of 8", idsSize.ToString(CultureInfo.InvariantCulture));
            var ids = ReadAt(idsOff, idsSize, "attr ids");
            a.Ids = new ulong[idsSize / 8];
            for (int k = 0; k < a.Ids.Length; k++) a.Ids[k] = Endian.U64(ids.AsSpan(k * 8), _big);
            AddAttr(a);
        }

        // Feature sections, one perf_file_section per set bit, right after the data.
        long fpos = _dataEnd;
        for (int bit = 0; bit < 256; bit++)
        {
            if ((feat[bit / 64] & (1UL << (bit % 64))) == 0 || bit == 0) continue;
            var sec = ReadAt(fpos, 16, "feature section table");
            fpos += 16;
            var sr = new ByteReader(sec, fpos - 16, _big, _name);
            long off = sr.Size64("feature offset"), size = sr.Size64("feature size");
            if (bit is 1 or 3 or 4 or 5 or 6 or 7 or 12 or 27)
            {
                if (off > Length || size > Length - off)
                    TraceInputException.ThrowAtOffset(_name, fpos - 16, $"feature {bit} section inside the file", $"{size} bytes at {off}");
                Feature(bit, ReadAt(off, size, "feature " + bit), off);
            }
        }
        Header.Properties["perf.attrs"] = _attrs.Count.ToString(CultureInfo.InvariantCulture);
    }

    Attr ParseAttr(ReadOnlySpan<byte> b, long at)
    {
        var r = new ByteReader(b, at, _big, _name);
        var a = new Attr { Type = r.U32("attr type") };
        uint size = r.U32("attr size");
        a.Config = r.U64("attr config");
        r.U64("attr sample period");
        a.SampleType = r.U64("attr sample_type");
        a.ReadFormat = r.U64("attr read_format");
        ulong flags = r.U64("attr flags");
        a.SampleIdAll = (flags & (1UL << 18)) != 0;
        _ = size;
        return a;
    }

    void AddAttr(Attr a)
    {
        _attrs.Add(a);
        foreach (var id in a.Ids) _byId.TryAdd(id, a);
    }

    static string HeaderString(ref ByteReader r, string what)
    {
        uint len = r.U32(what + " length");
        var s = r.Bytes(len, what);
        int z = s.IndexOf((byte)0);
        return Encoding.UTF8.GetString(z >= 0 ? s[..z] : s);
    }

    void Feature(int bit, byte[] data, long at)
    {
        var r = new ByteReader(data, at, _big, _name);
        switch (bit)
        {
            case 1:
            {
                var td = TracingData.Parse(data, at, _name);
                foreach (var f in td.Formats) _decoders[f.Id] = new EventDecoder(f);
                if (td.Unparsable.Count > 0) Stats.Add("binary.unparsable_format", StatSeverity.Error, td.Unparsable.Count);
                _kallsyms ??= td.Kallsyms;
                _longSize = td.LongSize is 4 or 8 ? td.LongSize : 8;
                _ctx = new RecordContext(_big, _longSize, _symbols) { PrintkFormats = td.PrintkFormats };
                if (td.PrintkBadLines > 0) Stats.Add("perf.printk_bad_lines", StatSeverity.Info, td.PrintkBadLines);
                Header.Properties["perf.tracing_data.version"] = td.Version;
                foreach (var kv in td.Cmdlines) _comms.TryAdd(kv.Key, kv.Value);
                break;
            }
            case 3: Header.Properties["hostname"] = HeaderString(ref r, "hostname"); break;
            case 4: Header.KernelRelease = HeaderString(ref r, "osrelease"); break;
            case 5: Header.Properties["perf.version"] = HeaderString(ref r, "perf version"); break;
            case 6: Header.Properties["arch"] = HeaderString(ref r, "arch"); break;
            case 7:
            {
                uint avail = r.U32("nr_cpus_available");
                uint online = r.U32("nr_cpus_online");
                Header.CpuCount = (int)Math.Min(avail, 1 << 20);
                Header.Properties["nrcpus.online"] = online.ToString(CultureInfo.InvariantCulture);
                break;
            }
            case 12:
            {
                uint nr = r.U32("event desc count");
                uint asz = r.U32("event desc attr size");
                if (asz < 48 || asz > 4096) throw r.Error("event desc attr size between 48 and 4096", asz.ToString(CultureInfo.InvariantCulture));
                for (uint i = 0; i < nr; i++)
                {
                    long aat = r.Offset;
                    var a = ParseAttr(r.Bytes(asz, "event desc attr"), aat);
                    uint nids = r.U32("event desc id count");
                    string ename = HeaderString(ref r, "event name");
                    r.Need((long)nids * 8, "event desc ids");
                    var ids = new ulong[nids];
                    for (int k = 0; k < nids; k++) ids[k] = r.U64("event id");
                    foreach (var id in ids)
                        if (_byId.TryGetValue(id, out var known)) known.Name ??= ename;
                }
                break;
            }
            case 27:
            {
                uint version = r.U32("compression version");
                uint type = r.U32("compression type");
                r.U32("compression level");
                r.U32("compression ratio");
                uint mmapLen = r.U32("compression mmap_len");
                _compression = type == 1 ? "zstd" : "type" + type;
                _compressedMmapLen = Math.Clamp(mmapLen, 4096, 1 << 26);
                Header.Properties["compression"] = _compression;
                _ = version;
                break;
            }
        }
    }

    // ------------------------------------------------------------------ records

    public TraceEvent? Read()
    {
        if (!_learned) LearnSymbols();
        try
        {
            var one = _one;
            while (true)
            {
                one.Clear();
                if (NextRow(one))
                {
                    Stats.Events++;
                    return one.ToTraceEvent(0);
                }
                if (!Fill()) return null;
            }
        }
        finally
        {
            if (_pendingStats.Count > 0) FlushStats();
        }
    }

    /// <summary>
    /// Decodes up to <paramref name="max"/> next events (the same events, in the same order, with the same stats
    /// as <see cref="Read"/>) straight into <paramref name="block"/>'s columns: no object per event. Mixing with
    /// <see cref="Read"/> is allowed. With <see cref="BinaryReaderOptions.RenderText"/>, <see cref="NextRendered"/>
    /// pairs outputs with events in order either way.
    /// </summary>
    public int ReadBlock(EventBlock block, int max)
    {
        ArgumentNullException.ThrowIfNull(block);
        if (!_learned) LearnSymbols();
        int n = 0;
        try
        {
            while (n < max)
            {
                if (NextRow(block))
                {
                    n++;
                    Stats.Events++;
                    continue;
                }
                if (!Fill()) break;
            }
        }
        finally
        {
            if (_pendingStats.Count > 0) FlushStats();
        }
        return n;
    }

    void FlushStats()
    {
        foreach (var d in _pendingStats) d.FlushStats(Stats);
        _pendingStats.Clear();
    }

    /// <summary>Processes input until records are released (or the input ends): false at the end.</summary>
    bool Fill()
    {
        while (_releasedHead >= _releasedCount)
        {
            if (_eof)
            {
                if (_queue.Count == 0) return false;
                Flush(ulong.MaxValue);
                continue;
            }
            if (!NextRecord(out var buf, out int len, out long src))
            {
                _eof = true;
                continue;
            }
            Process(buf, len, src);
        }
        return true;
    }

    /// <summary>Consumes released records in order until one gives a row in <paramref name="block"/> (true), or
    /// none is left (false). The one place samples are decoded, for <see cref="Read"/> and <see cref="ReadBlock"/>.</summary>
    bool NextRow(EventBlock block)
    {
        while (_releasedHead < _releasedCount)
        {
            var p = _released[_releasedHead++];
            bool row;
            if (p.Type == 9)
            {
                var a = SampleAttr(_arena.AsSpan(p.Off, p.Len), p.Source);
                row = a != null && DecodeSample(_arena, p.Off, p.Len, p.Source, a, block);
            }
            else row = DeliverOther(p.Type, _arena, p.Off, p.Len, p.Time, p.Source, block);
            if (_releasedHead == _releasedCount)
            {
                _releasedHead = _releasedCount = 0;
                // Every released record is consumed: the arena keeps only the queued ones.
                if (_queue.Count == 0) _arenaLen = 0;
                else if (_arenaLen > 1 << 22 && _liveBytes * 2 < _arenaLen) CompactArena();
            }
            if (row) return true;
        }
        return false;
    }

    /// <summary>Appends a record to the released ones (its bytes already in the arena).</summary>
    void Release(in Pending p)
    {
        if (_releasedCount == _released.Length) Array.Resize(ref _released, _released.Length * 2);
        _released[_releasedCount++] = p;
    }

    /// <summary>A record that needs no time order (no timestamp): copied to the arena and released at once.</summary>
    void ReleaseNow(uint type, byte[] buf, int len, long source)
    {
        int off = ToArena(buf, len);
        Release(new Pending { Off = off, Len = len, Type = type, Source = source, Time = 0 });
    }

    int ToArena(byte[] buf, int len)
    {
        if (_arena.Length - _arenaLen < len)
            Array.Resize(ref _arena, (int)Math.Min(Math.Max(_arena.Length * 2L, _arenaLen + (long)len), Array.MaxLength));
        Buffer.BlockCopy(buf, 0, _arena, _arenaLen, len);
        int off = _arenaLen;
        _arenaLen += len;
        return off;
    }

    /// <summary>The next raw record (header included) from the compressed batch being drained or the input.</summary>
    bool NextRecord(out byte[] buf, out int len, out long source)
    {
        int avail = _dLen - _dPos;
        if (avail >= 8)
        {
            int sz = (int)Endian.Read(_decomp.AsSpan(_dPos + 6, 2), 2, _big);
            if (sz < 8) TraceInputException.ThrowAtOffset(_name, _dSource, "record size >= 8 inside a COMPRESSED batch", sz.ToString(CultureInfo.InvariantCulture));
            if (sz <= avail)
            {
                Buffer.BlockCopy(_decomp, _dPos, _rec, 0, sz);
                buf = _rec;
                len = sz;
                source = _dSource;
                _dPos += sz;
                return true;
            }
        }
        if (avail > 0 && _dPos > 0)
        {
            // A record continues in the next COMPRESSED batch: keep its start.
            Buffer.BlockCopy(_decomp, _dPos, _decomp, 0, avail);
            _dPos = 0;
            _dLen = avail;
        }
        buf = _rec;
        len = 0;
        source = _pos;
        if (_pos >= _dataEnd)
        {
            if (_dLen - _dPos > 0)
                TraceInputException.ThrowAtOffset(_name, _dSource, "whole records in the COMPRESSED batches", (_dLen - _dPos) + " bytes of a cut record at the end");
            return false;
        }
        if (!_pipe && _dataEnd - _pos < 8)
            TraceInputException.ThrowAtOffset(_name, _pos, "8-byte record header", (_dataEnd - _pos) + " bytes left in the data section");
        if (!_pipe) _in.Position = _pos;
        int got = ReadSome(_hdr, 8);
        if (got == 0 && _pipe)
        {
            if (_dLen - _dPos > 0)
                TraceInputException.ThrowAtOffset(_name, _dSource, "whole records in the COMPRESSED batches", (_dLen - _dPos) + " bytes of a cut record at the end");
            return false;
        }
        if (got < 8) TraceInputException.ThrowAtOffset(_name, _pos, "8-byte record header", got + " bytes");
        int size = (int)Endian.Read(_hdr.AsSpan(6, 2), 2, _big);
        if (size < 8) TraceInputException.ThrowAtOffset(_name, _pos, "record size >= 8", size.ToString(CultureInfo.InvariantCulture));
        if (!_pipe && size > _dataEnd - _pos)
            TraceInputException.ThrowAtOffset(_name, _pos, "record inside the data section", $"size {size}, {_dataEnd - _pos} bytes left");
        _hdr.CopyTo(_rec, 0);
        if (ReadSome(_rec.AsSpan(8, size - 8), size - 8) < size - 8)
            TraceInputException.ThrowAtOffset(_name, _pos, $"record of {size} bytes", "end of input");
        len = size;
        _pos += size;
        return true;
    }

    int ReadSome(Span<byte> dst, int count)
    {
        int n = 0;
        while (n < count)
        {
            int r = _in.Read(dst[n..count]);
            if (r == 0) break;
            n += r;
        }
        return n;
    }

    void Process(byte[] buf, int len, long source)
    {
        uint type = Endian.U32(buf, _big);
        switch (type)
        {
            case 9: // SAMPLE: queued raw, decoded when its round is released
            {
                var span = buf.AsSpan(0, len);
                var a = SampleAttr(span, source);
                if (a == null)
                {
                    Stats.UnparsedLines++; // a sample of no known attr: counted (perf.sample_unknown_id), not decodable
                    return;
                }
                if ((a.SampleType & S_TIME) == 0)
                {
                    ReleaseNow(9, buf, len, source);
                    return;
                }
                EnqueueRaw(9, buf, len, source, SampleTime(a, span, source));
                return;
            }
            case 3:  // COMM
            case 7:  // FORK
            case 4:  // EXIT
            case 2:  // LOST
            case 13: // LOST_SAMPLES
            {
                ulong? t = RecordTime(type, buf.AsSpan(0, len), source);
                if (t == null)
                {
                    ReleaseNow(type, buf, len, source);
                    return;
                }
                EnqueueRaw(type, buf, len, source, t.Value);
                return;
            }
            case 68: // FINISHED_ROUND
                Flush(_nextFlush);
                _nextFlush = _maxTime;
                Stats.Add("perf.finished_rounds", StatSeverity.Info);
                return;
            case 81: // COMPRESSED: header, then zstd data to the end of the record
                Decompress(buf, 8, len - 8, source);
                return;
            case 83: // COMPRESSED2 (perf >= 6.15): header, u64 data size, zstd data, padding to 8 bytes
            {
                if (len < 16) TraceInputException.ThrowAtOffset(_name, source, "COMPRESSED2 record with a data size", len + " bytes");
                ulong dsz = Endian.U64(buf.AsSpan(8), _big);
                if (dsz > (ulong)(len - 16)) TraceInputException.ThrowAtOffset(_name, source + 8, $"COMPRESSED2 data size <= {len - 16}", dsz.ToString(CultureInfo.InvariantCulture));
                Decompress(buf, 16, (int)dsz, source);
                return;
            }
            case 64: // HEADER_ATTR (pipe)
            {
                long asz = Endian.U32(buf.AsSpan(12), _big);
                if (len < 16 || asz < 48 || asz > len - 8)
                    TraceInputException.ThrowAtOffset(_name, source, "HEADER_ATTR with an attr inside the record", $"attr size {asz} in {len} bytes");
                var a = ParseAttr(buf.AsSpan(8, (int)asz), source + 8);
                int nids = (int)((len - 8 - asz) / 8);
                a.Ids = new ulong[nids];
                for (int k = 0; k < nids; k++) a.Ids[k] = Endian.U64(buf.AsSpan(8 + (int)asz + k * 8), _big);
                AddAttr(a);
                return;
            }
            case 66: // HEADER_TRACING_DATA (pipe): u32 size, the data follows the record, 8-byte aligned
            {
                if (len < 12) TraceInputException.ThrowAtOffset(_name, source, "HEADER_TRACING_DATA with a size", len + " bytes");
                uint size = Endian.U32(buf.AsSpan(8), _big);
                long padded = (size + 7L) & ~7L;
                if (!_pipe && padded > _dataEnd - _pos)
                    TraceInputException.ThrowAtOffset(_name, source, "tracing data inside the data section", padded + " bytes");
                if (padded > 1L << 30) TraceInputException.ThrowAtOffset(_name, source, "tracing data under 1 GiB", padded + " bytes");
                if (!_pipe) _in.Position = _pos;
                // Read in pieces: a pipe cannot tell in advance whether the declared size is really there.
                var ms = new MemoryStream();
                var piece = new byte[1 << 16];
                while (ms.Length < padded)
                {
                    int want = (int)Math.Min(piece.Length, padded - ms.Length);
                    int got = ReadSome(piece, want);
                    ms.Write(piece, 0, got);
                    if (got < want) TraceInputException.ThrowAtOffset(_name, _pos, $"{padded} bytes of tracing data", ms.Length + " bytes before the end of input");
                }
                var data = ms.GetBuffer();
                long at = _pos;
                _pos += padded;
                Feature(1, data.AsSpan(0, (int)size).ToArray(), at);
                return;
            }
            case 80: // HEADER_FEATURE (pipe): u64 feature id, then the feature's data
            {
                if (len < 16) TraceInputException.ThrowAtOffset(_name, source, "HEADER_FEATURE with an id", len + " bytes");
                ulong feat = Endian.U64(buf.AsSpan(8), _big);
                if (feat is 3 or 4 or 5 or 6 or 7 or 12 or 27)
                    Feature((int)feat, buf.AsSpan(16, len - 16).ToArray(), source + 16);
                return;
            }
            case 78: // EVENT_UPDATE
            case 1 or 10 or 5 or 6 or 8 or 11 or 12 or 14 or 15 or 16 or 17 or 18 or 19 or 20 or 21:
            case 65 or 67 or 69 or 70 or 71 or 72 or 73 or 74 or 75 or 76 or 77 or 79 or 82:
                Stats.Add("perf.record." + RecordName(type), StatSeverity.Info);
                return;
            default:
                Stats.Add("perf.unknown_record_type", StatSeverity.Error);
                Stats.UnparsedLines++;
                return;
        }
    }

    void EnqueueRaw(uint type, byte[] buf, int len, long source, ulong time)
    {
        int off = ToArena(buf, len);
        _queue.Enqueue(new Pending { Off = off, Len = len, Type = type, Source = source, Time = time }, (time, _seq++));
        _liveBytes += len;
        if (time > _maxTime) _maxTime = time;
        if (_queue.Count > MaxQueued)
        {
            // Like perf's memory limit: flush the older half.
            _queue.TryPeek(out _, out var lo);
            Flush(lo.Item1 + (_maxTime - lo.Item1) / 2);
        }
    }

    /// <summary>Moves the records still waiting to the front of the arena: in place (the arena keeps its size, so
    /// the next rounds do not grow it again), or into a fresh, smaller arena when a big one (over 64 MiB) is
    /// mostly empty.</summary>
    void CompactArena()
    {
        var items = _compactItems;
        items.Clear();
        while (_queue.TryDequeue(out var p, out var pri)) items.Add((p, pri));
        // In offset order every record moves toward the front, never over one not yet moved.
        items.Sort(static (a, b) => a.P.Off.CompareTo(b.P.Off));
        long want = Math.Max(1 << 16, _liveBytes * 2);
        var target = _arena.Length > 64 << 20 && _arena.Length > want * 4 ? new byte[want] : _arena;
        int o = 0;
        foreach (var (p, pri) in items)
        {
            Buffer.BlockCopy(_arena, p.Off, target, o, p.Len);
            var moved = p;
            moved.Off = o;
            o += p.Len;
            _queue.Enqueue(moved, pri);
        }
        items.Clear();
        _arena = target;
        _arenaLen = o;
    }

    readonly List<(Pending P, (ulong, long) Pri)> _compactItems = new();

    static string RecordName(uint t) => t switch
    {
        1 => "mmap", 10 => "mmap2", 5 => "throttle", 6 => "unthrottle", 8 => "read", 11 => "aux", 12 => "itrace_start",
        14 => "switch", 15 => "switch_cpu_wide", 16 => "namespaces", 17 => "ksymbol", 18 => "bpf_event", 19 => "cgroup",
        20 => "text_poke", 21 => "aux_output_hw_id", 65 => "header_event_type", 67 => "build_id", 69 => "id_index",
        70 => "auxtrace_info", 71 => "auxtrace", 72 => "auxtrace_error", 73 => "thread_map", 74 => "cpu_map",
        75 => "stat_config", 76 => "stat", 77 => "stat_round", 78 => "event_update", 79 => "time_conv", 82 => "finished_init",
        _ => t.ToString(CultureInfo.InvariantCulture),
    };

    void Decompress(byte[] buf, int at, int count, long source)
    {
        if (_compression != "zstd")
            TraceInputException.ThrowAtOffset(_name, source, "zstd COMPRESSED records", _compression);
        // perf keeps one zstd stream across all COMPRESSED records (each record is flushed, not
        // ended), so decoding must carry the stream state from one record to the next.
        _zstd ??= new ZstdStreamDecoder();
        int keep = _dLen - _dPos;
        if (keep > 0 && _dPos > 0) Buffer.BlockCopy(_decomp, _dPos, _decomp, 0, keep);
        _dPos = 0;
        _dLen = keep;
        long limit = Math.Max(_compressedMmapLen * 4, (long)count * global::Replayer.Formats.Binary.Decompress.MaxRatio);
        _dLen = _zstd.Decode(buf.AsSpan(at, count), ref _decomp, keep, Math.Min(limit, 1L << 30), _name, source);
        _dSource = source;
        Stats.Add("perf.compressed_records", StatSeverity.Info);
    }

    /// <summary>A non-sample record's timestamp (its sample_id trailer), or null when it carries none.</summary>
    ulong? RecordTime(uint type, ReadOnlySpan<byte> rec, long source)
    {
        var at = TrailerAttr(rec);
        if (at == null || !at.SampleIdAll || (at.SampleType & S_TIME) == 0) return null;
        int off = TrailerTimeOffset(at, rec.Length);
        if (off < 8) TraceInputException.ThrowAtOffset(_name, source, "sample_id trailer inside the record", rec.Length + " bytes");
        return Endian.U64(rec[off..], _big);
    }

    /// <summary>Offset of the time in a non-sample record's sample_id trailer.</summary>
    static int TrailerTimeOffset(Attr a, int len)
    {
        ulong st = a.SampleType;
        int after = 0; // bytes after the time field
        if ((st & S_ID) != 0) after += 8;
        if ((st & S_STREAM_ID) != 0) after += 8;
        if ((st & S_CPU) != 0) after += 8;
        if ((st & S_IDENTIFIER) != 0) after += 8;
        return len - after - 8;
    }

    Attr? TrailerAttr(ReadOnlySpan<byte> rec)
    {
        if (_attrs.Count == 0) return null;
        var first = _attrs[0];
        if (_attrs.Count == 1) return first;
        if ((first.SampleType & S_IDENTIFIER) != 0 && rec.Length >= 16)
            return _byId.GetValueOrDefault(Endian.U64(rec[^8..], _big)) ?? first;
        return first;
    }

    Attr? SampleAttr(ReadOnlySpan<byte> rec, long source)
    {
        if (_attrs.Count == 0) TraceInputException.ThrowAtOffset(_name, source, "event attributes before the first sample", "none");
        if (_attrs.Count == 1) return _attrs[0];
        var first = _attrs[0];
        int p = -1;
        ulong st = first.SampleType;
        if ((st & S_IDENTIFIER) != 0) p = 8;
        else if ((st & S_ID) != 0)
        {
            p = 8;
            if ((st & S_IP) != 0) p += 8;
            if ((st & S_TID) != 0) p += 8;
            if ((st & S_TIME) != 0) p += 8;
            if ((st & S_ADDR) != 0) p += 8;
        }
        if (p < 0 || p + 8 > rec.Length) return first;
        ulong id = Endian.U64(rec[p..], _big);
        if (_byId.TryGetValue(id, out var a)) return a;
        Stats.Add("perf.sample_unknown_id", StatSeverity.Error);
        return null;
    }

    void Flush(ulong limit)
    {
        while (_queue.TryPeek(out var p, out var pri) && pri.Item1 <= limit)
        {
            _queue.Dequeue();
            _liveBytes -= p.Len;
            if (p.Time < _lastFlushed) Stats.Add("perf.out_of_order_records", StatSeverity.Info);
            else _lastFlushed = p.Time;
            Release(p);
        }
    }

    /// <summary>Applies a released non-sample record; true when it gave a row (a loss marker) in <paramref name="block"/>.</summary>
    bool DeliverOther(uint type, byte[] buf, int start, int len, ulong time, long source, EventBlock block)
    {
        var rec = buf.AsSpan(start, len);
        switch (type)
        {
            case 3:
            {
                if (len < 17) TraceInputException.ThrowAtOffset(_name, source, "COMM record with pid, tid and name", len + " bytes");
                int tid = (int)Endian.U32(rec[12..], _big);
                var name = rec[16..];
                int z = name.IndexOf((byte)0);
                _comms[tid] = StringCache.Get(z >= 0 ? name[..z] : name);
                Stats.Add("perf.comm_records", StatSeverity.Info);
                return false;
            }
            case 7:
            {
                if (len < 24) TraceInputException.ThrowAtOffset(_name, source, "FORK record", len + " bytes");
                int ptid = (int)Endian.U32(rec[20..], _big), tid = (int)Endian.U32(rec[16..], _big);
                if (_comms.TryGetValue(ptid, out var pc)) _comms[tid] = pc;
                Stats.Add("perf.fork_records", StatSeverity.Info);
                return false;
            }
            case 4:
                Stats.Add("perf.exit_records", StatSeverity.Info);
                return false;
            case 2 or 13:
            {
                int lostAt = type == 2 ? 16 : 8;
                if (len < lostAt + 8) TraceInputException.ThrowAtOffset(_name, source, "LOST record with a count", len + " bytes");
                ulong lost = Endian.U64(rec[lostAt..], _big);
                int cpu = -1;
                var a = TrailerAttr(rec);
                if (a != null && a.SampleIdAll && (a.SampleType & S_CPU) != 0)
                {
                    int off = len - 8 - ((a.SampleType & S_IDENTIFIER) != 0 ? 8 : 0);
                    if (off >= lostAt + 8) cpu = (int)Endian.U32(rec[off..], _big);
                }
                Stats.DataLossMarkers++;
                Stats.LostEvents += (long)Math.Min(lost, long.MaxValue);
                if (_opt.RenderText) _rendered.Enqueue(null);
                block.Append((long)time, cpu, 0, "", SyntheticEvents.DataLoss, null, null, source);
                block.AddFields(1)[0] = EventField.U64("lost", lost);
                return true;
            }
        }
        return false;
    }

    /// <summary>The time of a sample whose attr has PERF_SAMPLE_TIME.</summary>
    ulong SampleTime(Attr a, ReadOnlySpan<byte> rec, long source)
    {
        int p = 8;
        if ((a.SampleType & S_IDENTIFIER) != 0) p += 8;
        if ((a.SampleType & S_IP) != 0) p += 8;
        if ((a.SampleType & S_TID) != 0) p += 8;
        if (p + 8 > rec.Length) TraceInputException.ThrowAtOffset(_name, source, "sample time inside the record", rec.Length + " bytes");
        return Endian.U64(rec[p..], _big);
    }

    /// <summary>Decodes a released sample (at <paramref name="start"/> of <paramref name="buf"/>) as a row of
    /// <paramref name="block"/> (its comm is the thread's name as of now, in time order); false when it is not
    /// a tracepoint sample (counted, no row).</summary>
    bool DecodeSample(byte[] buf, int start, int len, long source, Attr a, EventBlock block)
    {
        var rec = buf.AsSpan(start, len);
        ulong st = a.SampleType;
        var r = new ByteReader(rec, source, _big, _name) { Pos = 8 };
        if ((st & S_IDENTIFIER) != 0) r.U64("sample identifier");
        if ((st & S_IP) != 0) r.U64("sample ip");
        int tid = 0;
        if ((st & S_TID) != 0) { r.U32("sample pid"); tid = (int)r.U32("sample tid"); }
        ulong time = (st & S_TIME) != 0 ? r.U64("sample time") : 0;
        if ((st & S_ADDR) != 0) r.U64("sample addr");
        if ((st & S_ID) != 0) r.U64("sample id");
        if ((st & S_STREAM_ID) != 0) r.U64("sample stream id");
        int cpu = 0;
        if ((st & S_CPU) != 0) { cpu = (int)r.U32("sample cpu"); r.U32("sample cpu reserved"); }
        if ((st & S_PERIOD) != 0) r.U64("sample period");
        if ((st & S_READ) != 0)
        {
            ulong rf = a.ReadFormat;
            int per = 8 + ((rf & R_ID) != 0 ? 8 : 0) + ((rf & R_LOST) != 0 ? 8 : 0);
            if ((rf & R_GROUP) != 0)
            {
                ulong nr = r.U64("read group count");
                if ((rf & R_ENABLED) != 0) r.U64("read time enabled");
                if ((rf & R_RUNNING) != 0) r.U64("read time running");
                if (nr > (ulong)r.Remaining / (ulong)per) throw r.Error("read group values inside the sample", nr + " values");
                r.Skip((long)nr * per, "read group values");
            }
            else
            {
                r.U64("read value");
                if ((rf & R_ENABLED) != 0) r.U64("read time enabled");
                if ((rf & R_RUNNING) != 0) r.U64("read time running");
                if ((rf & R_ID) != 0) r.U64("read id");
                if ((rf & R_LOST) != 0) r.U64("read lost");
            }
        }
        if ((st & S_CALLCHAIN) != 0)
        {
            ulong nr = r.U64("callchain count");
            if (nr > (ulong)r.Remaining / 8) throw r.Error("callchain inside the sample", nr + " entries");
            r.Skip((long)nr * 8, "callchain");
        }
        if ((st & S_RAW) == 0 || a.Type != PERF_TYPE_TRACEPOINT)
        {
            Stats.Add("perf.non_tracepoint_samples", StatSeverity.Info);
            return false;
        }
        uint rawSize = r.U32("raw data size");
        int rawOff = r.Pos;
        r.Skip(rawSize, "raw data");
        var raw = rec.Slice(rawOff, (int)rawSize);
        int id = raw.Length >= 2 ? (int)Endian.Read(raw, 2, _big) : (int)a.Config;
        if (!_decoders.TryGetValue(id, out var dec) && !_decoders.TryGetValue((int)a.Config, out dec))
        {
            Stats.Add("perf.sample_without_format", StatSeverity.Error);
            Stats.UnparsedLines++;
            if (_opt.RenderText) _rendered.Enqueue(LastRendered = null);
            block.Append((long)time, cpu, tid, Comm(tid), a.UnknownName, null, null, source);
            return true;
        }
        _ctx.Set(buf, start + rawOff, (int)rawSize);
        int pid = dec.Pid(raw, _big);
        if ((st & S_TID) == 0) tid = pid;
        string? probe = dec.IsProbe ? dec.Probe(_ctx, _opt.SymbolicProbes ? _kallsyms : null) : null;
        if (_opt.RenderText) _rendered.Enqueue(LastRendered = dec.Render(_ctx, _kallsyms));
        block.Append((long)time, cpu, tid, Comm(tid), dec.Name, probe, dec.IrqFlags(raw), source);
        dec.AppendFields(block, _ctx, _kallsyms, _pendingStats);
        return true;
    }

    readonly Queue<string?> _rendered = new();

    /// <summary>With <see cref="BinaryReaderOptions.RenderText"/>: the print output of events in the order
    /// <see cref="Read"/> returns them (dequeue one per event).</summary>
    public string? NextRendered() => _rendered.Count > 0 ? _rendered.Dequeue() : null;

    string Comm(int tid)
    {
        if (_comms.TryGetValue(tid, out var c)) return c;
        return tid == 0 ? "swapper" : ":" + tid.ToString(CultureInfo.InvariantCulture);
    }

    public void Dispose()
    {
        _zstd?.Dispose();
        if (_ownsStream) _in.Dispose();
    }
}
