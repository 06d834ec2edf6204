using System.Globalization;
using System.Text;
using Replayer.Core;

namespace Replayer.Formats.Binary;

/// <summary>Options of the binary readers.</summary>
public sealed class BinaryReaderOptions
{
    /// <summary>Values (not addresses) of kernel variables print formats use, e.g. <c>vmemmap_base</c>:
    /// then <c>kmem:mm_page_alloc</c>'s <c>page=</c> is the pointer the kernel would print. Without it,
    /// such fields are left out (never guessed) and counted in the stats.</summary>
    public Dictionary<string, ulong> SymbolValues { get; } = new(StringComparer.Ordinal);
    /// <summary>Events that carry the value of a kernel variable: a kprobe fetch argument
    /// <c>vm=@vmemmap_base</c> gives (<c>rt:file_rmap_add</c>, <c>vm</c>, <c>vmemmap_base</c>). Before the
    /// first event the reader looks ahead for the first such event and takes the value, so that print
    /// arguments using the variable (kmem <c>page=</c>) come out as the kernel prints them.</summary>
    public List<(string Event, string Field, string Symbol)> SymbolSources { get; } = new();
    /// <summary>Resolve kprobe locations through the capture's kallsyms (<c>func+0xoff/0xsize</c>).</summary>
    public bool SymbolicProbes { get; set; } = true;
    /// <summary>Also render each event's print format as libtraceevent prints it (for differential tests
    /// and text output); see <see cref="TraceDatReader.LastRendered"/>.</summary>
    public bool RenderText { get; set; }
    /// <summary>Up to this many CPU streams are merged by a linear scan, more through a heap.</summary>
    public int LinearMergeLimit { get; set; } = 8;
    /// <summary>Merge all ring-buffer instances (default) or only the top one.</summary>
    public bool AllInstances { get; set; } = true;
}

/// <summary>The look-ahead both binary readers do before their first event: a second reader over the same
/// input finds the first events that carry the values of <see cref="BinaryReaderOptions.SymbolSources"/>.</summary>
static class SymbolLookAhead
{
    /// <summary>Reads <paramref name="ahead"/> (at most a million events) until every wanted symbol has a
    /// value; records each in <paramref name="symbols"/> and in the header's properties. Bad input further on
    /// is left for the main pass to report where it is.</summary>
    public static void Learn(Func<ITraceReader> ahead, List<(string Event, string Field, string Symbol)> want,
        Dictionary<string, ulong> symbols, CaptureHeader header)
    {
        try
        {
            using var r = ahead();
            for (long budget = 1_000_000; want.Count > 0 && budget > 0 && r.Read() is { } e; budget--)
                for (int i = want.Count - 1; i >= 0; i--)
                    if (e.Name == want[i].Event && e.U64(want[i].Field) is ulong v)
                    {
                        string sym = want[i].Symbol;
                        symbols[sym] = v;
                        header.Properties["symbol." + sym] = "0x" + v.ToString("x", CultureInfo.InvariantCulture) + " (from " + e.Name + " " + want[i].Field + ")";
                        want.RemoveAll(w => w.Symbol == sym);
                        break;
                    }
        }
        catch (TraceInputException)
        {
        }
    }
}

/// <summary>
/// trace-cmd <c>trace.dat</c> reader, file versions 6 and 7 (with zstd/zlib-compressed sections).
/// Metadata is read up front; ring-buffer pages are read (and decompressed chunk by chunk) lazily
/// as events are merged from the per-CPU streams in timestamp order.
/// </summary>
public sealed class TraceDatReader : IBlockTraceReader
{
    public static ReadOnlySpan<byte> Magic => [0x17, 0x08, 0x44, (byte)'t', (byte)'r', (byte)'a', (byte)'c', (byte)'i', (byte)'n', (byte)'g'];

    readonly BinarySource _src;
    readonly BinaryReaderOptions _opt;
    bool _big;
    int _longSize, _pageSize;
    string _compression = "none";
    string? _headerPage, _headerEvent;
    long _headerInfoOffset = -1;
    readonly Dictionary<int, EventDecoder> _decoders = new();
    readonly Dictionary<int, string> _comms = new();
    Kallsyms? _kallsyms;
    RingLayout? _layout;
    readonly List<CpuStream> _streams = new();
    readonly List<(string Name, long Offset, List<(int Cpu, long Off, long Size)> Cpus, int PageSize)> _buffers = new();
    List<(long Off, long Size)>? _v6Cpus;
    int _cpuCount;
    ulong _tscMult = 0, _tscShift = 0;
    long _tscOffset, _tsOffset;
    bool _tsc2nsec;
    readonly PriorityQueue<CpuStream, (ulong, int)> _heap = new();
    RecordContext _ctx = null!;
    bool _started;

    public TraceFormat Format => TraceFormat.TraceDat;
    public string SourceName => _src.Name;
    public CaptureHeader Header { get; } = new();
    public ReadStats Stats { get; } = new();
    public Kallsyms? Kallsyms
    {
        get
        {
            if (_kallsymsData != null)
            {
                _kallsyms = Kallsyms.ParseOwned(_kallsymsData, _kallsymsStart, _kallsymsLength, out int bad);
                if (bad > 0) Stats.Add("tracedat.kallsyms_bad_lines", StatSeverity.Info, bad);
                _kallsymsData = null;
            }
            return _kallsyms;
        }
    }
    byte[]? _kallsymsData;
    int _kallsymsStart, _kallsymsLength;
    /// <summary>With <see cref="BinaryReaderOptions.RenderText"/>: the last event's print format output.</summary>
    public string? LastRendered { get; private set; }
    public IReadOnlyDictionary<int, EventDecoder> Decoders => _decoders;

    public TraceDatReader(string path, BinaryReaderOptions? options = null) : this(BinarySource.Open(path), options) { }

    public TraceDatReader(Stream stream, string name, BinaryReaderOptions? options = null) : this(new BinarySource(stream, name), options) { }

    public TraceDatReader(BinarySource src, BinaryReaderOptions? options = null) : this(src, options, ownsSource: true) { }

    readonly bool _ownsSource;
    readonly Dictionary<string, ulong> _symbols;

    TraceDatReader(BinarySource src, BinaryReaderOptions? options, bool ownsSource)
    {
        _src = src;
        _opt = options ?? new BinaryReaderOptions();
        _ownsSource = ownsSource;
        _symbols = new Dictionary<string, ulong>(_opt.SymbolValues, StringComparer.Ordinal);
        try
        {
            ReadMetadata();
        }
        catch
        {
            _zstd?.Dispose();
            if (ownsSource) src.Dispose();
            throw;
        }
    }

    string Name => _src.Name;

    /// <summary>Looks ahead (with a second reader over the same input) for the events that carry the
    /// values of <see cref="BinaryReaderOptions.SymbolSources"/>.</summary>
    void LearnSymbols()
    {
        var want = _opt.SymbolSources.Where(w => !_symbols.ContainsKey(w.Symbol)).ToList();
        if (want.Count == 0 || !_decoders.Values.Any(d => want.Any(w => w.Event == d.Name))) return;
        SymbolLookAhead.Learn(() => new TraceDatReader(_src, new BinaryReaderOptions { SymbolicProbes = false }, ownsSource: false), want, _symbols, Header);
    }

    // ------------------------------------------------------------------ metadata

    void ReadMetadata()
    {
        // Preamble: magic, version string, endianness, long size, page size.
        long len = Math.Min(_src.Length, 64);
        var pre = _src.ReadBytes(0, len, "trace.dat preamble");
        var r = new ByteReader(pre, 0, false, Name);
        var magic = r.Bytes(10, "trace.dat magic");
        if (!magic.SequenceEqual(Magic))
            TraceInputException.ThrowAtOffset(Name, 0, "trace.dat magic \\x17\\x08\\x44tracing", Encoding.Latin1.GetString(magic));
        string version = r.CString("file version");
        if (!int.TryParse(version, NumberStyles.None, CultureInfo.InvariantCulture, out int ver) || ver is < 6 or > 7)
            TraceInputException.ThrowAtOffset(Name, 10, "trace.dat file version 6 or 7", version);
        byte endian = r.U8("endianness");
        if (endian > 1) TraceInputException.ThrowAtOffset(Name, r.Offset - 1, "endianness 0 or 1", endian.ToString());
        _big = endian == 1;
        _longSize = r.U8("long size");
        if (_longSize is not (4 or 8)) TraceInputException.ThrowAtOffset(Name, r.Offset - 1, "long size 4 or 8", _longSize.ToString());
        var r2 = new ByteReader(pre.AsSpan(r.Pos), r.Pos, _big, Name);
        uint page = r2.U32("page size");
        if (page < 64 || page > 1 << 24)
            TraceInputException.ThrowAtOffset(Name, r.Pos, "page size between 64 and 16M", page.ToString());
        _pageSize = (int)page;
        Header.FormatVersion = "trace.dat v" + ver;
        Header.Properties["trace.dat.version"] = version;
        Header.Properties["page_size"] = page.ToString(CultureInfo.InvariantCulture);
        long pos = r2.Offset;
        _ctx = new RecordContext(_big, _longSize, _symbols);
        if (ver == 6) ReadV6(pos);
        else ReadV7(pre, r2.Pos + r.Pos);
        BuildStreams();
        Header.CpuCount ??= _cpuCount;
    }

    /// <summary>Reads a NUL-terminated string at a file offset (bounded).</summary>
    string CStringAt(ref long pos, string what, int max = 4096)
    {
        int n = (int)Math.Min(max, _src.Length - pos);
        if (n <= 0) TraceInputException.ThrowAtOffset(Name, pos, what, "end of input");
        var b = _src.ReadBytes(pos, n, what);
        int z = Array.IndexOf(b, (byte)0);
        if (z < 0) TraceInputException.ThrowAtOffset(Name, pos, "NUL-terminated " + what, "no NUL within " + n + " bytes");
        pos += z + 1;
        return Encoding.UTF8.GetString(b, 0, z);
    }

    ulong UAt(long pos, int size, string what)
    {
        Span<byte> b = stackalloc byte[8];
        _src.Read(pos, b[..size], what);
        return Endian.Read(b, size, _big);
    }

    long SizeAt(long pos, int size, string what, long limit)
    {
        ulong v = UAt(pos, size, what);
        if (v > (ulong)limit) TraceInputException.ThrowAtOffset(Name, pos, $"{what} <= {limit}", v.ToString(CultureInfo.InvariantCulture));
        return (long)v;
    }

    void ReadV6(long pos)
    {
        // header_page, header_event
        var hp = ExpectTag(ref pos, "header_page");
        long n = SizeAt(pos, 8, "header_page size", _src.Length - pos - 8); pos += 8;
        _headerPage = Encoding.UTF8.GetString(_src.ReadBytes(pos, n, "header_page")); pos += n;
        ExpectTag(ref pos, "header_event");
        n = SizeAt(pos, 8, "header_event size", _src.Length - pos - 8); pos += 8;
        _headerEvent = Encoding.UTF8.GetString(_src.ReadBytes(pos, n, "header_event")); pos += n;
        _headerInfoOffset = hp;
        pos = ReadFtraceFormats(pos, _src.Length);
        pos = ReadEventFormats(pos, _src.Length);
        n = SizeAt(pos, 4, "kallsyms size", _src.Length - pos - 4); pos += 4;
        var ks = _src.ReadBytes(pos, n, "kallsyms");
        LoadKallsyms(ks, 0, ks.Length); pos += n;
        n = SizeAt(pos, 4, "printk formats size", _src.Length - pos - 4); pos += 4;
        LoadPrintk(_src.ReadBytes(pos, n, "printk formats"));
        pos += n;
        n = SizeAt(pos, 8, "saved cmdlines size", _src.Length - pos - 8); pos += 8;
        LoadCmdlines(_src.ReadBytes(pos, n, "saved cmdlines")); pos += n;
        _cpuCount = (int)SizeAt(pos, 4, "CPU count", 1 << 16); pos += 4;
        while (true)
        {
            long tagAt = pos;
            string tag = Encoding.ASCII.GetString(_src.ReadBytes(pos, 10, "section tag (options/latency/flyrecord)"));
            pos += 10;
            if (tag == "options  \0")
            {
                while (true)
                {
                    ushort id = (ushort)UAt(pos, 2, "option id"); pos += 2;
                    if (id == 0) break;
                    long size = SizeAt(pos, 4, "option size", _src.Length - pos - 4); pos += 4;
                    var data = _src.ReadBytes(pos, size, "option data");
                    Option(id, data, pos, v7: false);
                    pos += size;
                }
            }
            else if (tag == "latency  \0")
            {
                Stats.Add("tracedat.latency_text_not_decoded", StatSeverity.Error);
                Header.Properties["trace.dat.data"] = "latency";
                _v6Cpus = new();
                return;
            }
            else if (tag == "flyrecord\0")
            {
                long need = (long)_cpuCount * 16;
                _src.Check(pos, need, "flyrecord CPU offsets");
                _v6Cpus = new();
                for (int c = 0; c < _cpuCount; c++)
                {
                    long off = SizeAt(pos, 8, "CPU data offset", _src.Length); pos += 8;
                    long size = SizeAt(pos, 8, "CPU data size", _src.Length - off); pos += 8;
                    _v6Cpus.Add((off, size));
                }
                return;
            }
            else TraceInputException.ThrowAtOffset(Name, tagAt, "options, latency or flyrecord tag", tag);
        }
    }

    long ExpectTag(ref long pos, string tag)
    {
        long at = pos;
        var b = _src.ReadBytes(pos, tag.Length + 1, tag + " tag");
        if (Encoding.ASCII.GetString(b) != tag + "\0")
            TraceInputException.ThrowAtOffset(Name, pos, tag + " tag", Encoding.Latin1.GetString(b));
        pos += tag.Length + 1;
        return at;
    }

    long ReadFtraceFormats(long pos, long end)
    {
        long count = SizeAt(pos, 4, "ftrace format count", 1 << 16); pos += 4;
        for (long i = 0; i < count; i++)
        {
            long n = SizeAt(pos, 8, "ftrace format size", end - pos - 8); pos += 8;
            AddFormat(_src.ReadBytes(pos, n, "ftrace event format"), "ftrace", pos);
            pos += n;
        }
        return pos;
    }

    long ReadEventFormats(long pos, long end)
    {
        long systems = SizeAt(pos, 4, "event system count", 1 << 16); pos += 4;
        for (long s = 0; s < systems; s++)
        {
            string sys = CStringAt(ref pos, "event system name", 256);
            long count = SizeAt(pos, 4, "event count of system " + TraceInputException.Excerpt(sys, 40), 1 << 20); pos += 4;
            for (long i = 0; i < count; i++)
            {
                long n = SizeAt(pos, 8, "event format size", end - pos - 8); pos += 8;
                AddFormat(_src.ReadBytes(pos, n, "event format of system " + TraceInputException.Excerpt(sys, 40)), sys, pos);
                pos += n;
            }
        }
        return pos;
    }

    /// <summary>Same as the v6 readers, over a decompressed section held in memory.</summary>
    void ReadFtraceFormats(byte[] sec, long at)
    {
        var r = new ByteReader(sec, at, _big, Name);
        uint count = r.U32("ftrace format count");
        for (uint i = 0; i < count; i++)
        {
            long n = r.Size64("ftrace format size");
            long fat = r.Offset;
            AddFormat(r.Bytes(n, "ftrace event format").ToArray(), "ftrace", fat);
        }
    }

    void ReadEventFormats(byte[] sec, long at)
    {
        var r = new ByteReader(sec, at, _big, Name);
        uint systems = r.U32("event system count");
        for (uint s = 0; s < systems; s++)
        {
            string sys = r.CString("event system name");
            uint count = r.U32("event count of system " + TraceInputException.Excerpt(sys, 40));
            for (uint i = 0; i < count; i++)
            {
                long n = r.Size64("event format size");
                long fat = r.Offset;
                AddFormat(r.Bytes(n, "event format of system " + TraceInputException.Excerpt(sys, 40)).ToArray(), sys, fat);
            }
        }
    }

    void AddFormat(byte[] text, string system, long at)
    {
        // A format the schema cannot read costs that event type only: its records are counted as
        // undecodable, the rest of the capture still reads.
        EventFormat fmt;
        try { fmt = EventFormat.Parse(Encoding.UTF8.GetString(text), string.Intern(system), Name, at); }
        catch (TraceInputException e)
        {
            Stats.Add("binary.unparsable_format", StatSeverity.Error);
            Header.Properties["unparsable_format@" + at.ToString(CultureInfo.InvariantCulture)] = e.Message;
            return;
        }
        var dec = new EventDecoder(fmt);
        _decoders[fmt.Id] = dec;
        // Records carry a 16-bit type: an array indexed by it finds the decoder without hashing.
        if (fmt.Id is >= 0 and <= ushort.MaxValue)
        {
            if (fmt.Id >= _byType.Length) Array.Resize(ref _byType, Math.Max(fmt.Id + 1, _byType.Length * 2));
            _byType[fmt.Id] = dec;
        }
    }

    void LoadKallsyms(byte[] data, int start, int length)
    {
        Header.Properties["kallsyms.bytes"] = length.ToString(CultureInfo.InvariantCulture);
        if (length == 0) return;
        // Parsed on first use: only kprobe locations and %pS need it, and it is megabytes of text.
        _kallsymsData = data;
        _kallsymsStart = start;
        _kallsymsLength = length;
    }

    /// <summary>The printk formats (address → trace_printk format or trace_puts string) that
    /// <c>ftrace:bprint</c>/<c>bputs</c> records point at; lines that do not parse are counted.</summary>
    void LoadPrintk(ReadOnlySpan<byte> data)
    {
        Header.Properties["printk_formats.bytes"] = data.Length.ToString(CultureInfo.InvariantCulture);
        if (data.Length == 0) return;
        var map = PrintkFormats.Parse(data, out int bad);
        if (bad > 0) Stats.Add("tracedat.printk_bad_lines", StatSeverity.Info, bad);
        Header.Properties["printk_formats.count"] = map.Count.ToString(CultureInfo.InvariantCulture);
        _ctx.PrintkFormats = map;
    }

    void LoadCmdlines(byte[] data)
    {
        foreach (var line in Encoding.UTF8.GetString(data).Split('\n'))
        {
            int sp = line.IndexOf(' ');
            if (sp <= 0) continue;
            if (int.TryParse(line.AsSpan(0, sp), NumberStyles.Integer, CultureInfo.InvariantCulture, out int pid))
                _comms[pid] = string.Intern(line[(sp + 1)..].TrimEnd('\r'));
        }
    }

    // ------------------------------------------------------------------ v7

    void ReadV7(byte[] pre, int at)
    {
        long pos = at;
        _compression = CStringAt(ref pos, "compression name", 64);
        string compVer = CStringAt(ref pos, "compression version", 64);
        Header.Properties["compression"] = _compression;
        if (_compression != "none") Header.Properties["compression.version"] = compVer;
        if (_compression is not ("none" or "zstd" or "zlib"))
            TraceInputException.ThrowAtOffset(Name, at, "compression none, zstd or zlib", _compression);
        long opts = SizeAt(pos, 8, "first options section offset", _src.Length);
        var seen = new HashSet<long>();
        var sections = new List<(int Id, long Offset)>();
        while (opts != 0)
        {
            if (!seen.Add(opts)) TraceInputException.ThrowAtOffset(Name, opts, "options sections without a cycle", "offset seen before");
            var (id, data, dataAt) = ReadSection(opts, "options");
            if (id != 0) TraceInputException.ThrowAtOffset(Name, opts, "options section (id 0)", "section id " + id);
            opts = 0;
            var r = new ByteReader(data, dataAt, _big, Name);
            while (r.Remaining > 0)
            {
                ushort oid = r.U16("option id");
                uint size = r.U32("option size");
                long oat = r.Offset;
                var od = r.Bytes(size, "option data").ToArray();
                if (oid == 0)
                {
                    if (od.Length < 8) TraceInputException.ThrowAtOffset(Name, oat, "8-byte next-options offset", od.Length + " bytes");
                    ulong next = Endian.U64(od, _big);
                    if (next > (ulong)_src.Length) TraceInputException.ThrowAtOffset(Name, oat, "next options offset inside the file", next.ToString(CultureInfo.InvariantCulture));
                    opts = (long)next;
                    break;
                }
                if (oid is >= 16 and <= 21)
                {
                    if (od.Length < 8) TraceInputException.ThrowAtOffset(Name, oat, "8-byte section offset", od.Length + " bytes");
                    sections.Add((oid, (long)Math.Min(Endian.U64(od, _big), long.MaxValue)));
                }
                else Option(oid, od, oat, v7: true);
            }
        }
        // Metadata sections; the header info first (the ring layout depends on it).
        foreach (var (id, off) in sections.OrderBy(s => s.Id))
        {
            var (sid, data, dataAt) = ReadSection(off, "section " + id);
            if (sid != id) TraceInputException.ThrowAtOffset(Name, off, $"section id {id} as its option says", "id " + sid);
            switch (id)
            {
                case 16:
                {
                    var r = new ByteReader(data, dataAt, _big, Name);
                    ExpectTag(ref r, "header_page");
                    _headerPage = Encoding.UTF8.GetString(r.Bytes(r.Size64("header_page size"), "header_page"));
                    ExpectTag(ref r, "header_event");
                    _headerEvent = Encoding.UTF8.GetString(r.Bytes(r.Size64("header_event size"), "header_event"));
                    _headerInfoOffset = off;
                    break;
                }
                case 17: ReadFtraceFormats(data, dataAt); break;
                case 18: ReadEventFormats(data, dataAt); break;
                case 19:
                {
                    var r = new ByteReader(data, dataAt, _big, Name);
                    uint size = r.U32("kallsyms size");
                    r.Need(size, "kallsyms");
                    LoadKallsyms(data, r.Pos, (int)size); // kept in the section buffer, not copied
                    break;
                }
                case 20:
                {
                    var r = new ByteReader(data, dataAt, _big, Name);
                    uint size = r.U32("printk formats size");
                    LoadPrintk(r.Bytes(size, "printk formats"));
                    break;
                }
                case 21:
                {
                    var r = new ByteReader(data, dataAt, _big, Name);
                    LoadCmdlines(r.Bytes(r.Size64("saved cmdlines size"), "saved cmdlines").ToArray());
                    break;
                }
            }
        }
    }

    void ExpectTag(ref ByteReader r, string tag)
    {
        long at = r.Offset;
        string s = r.CString(tag + " tag");
        if (s != tag) TraceInputException.ThrowAtOffset(Name, at, tag + " tag", s);
    }

    /// <summary>Reads a v7 section header and its (decompressed) contents. Flyrecord sections are not read this way.</summary>
    (int Id, byte[] Data, long DataAt) ReadSection(long off, string what)
    {
        long pos = off;
        ushort id = (ushort)UAt(pos, 2, what + " section id");
        ushort flags = (ushort)UAt(pos + 2, 2, what + " section flags");
        uint strId = (uint)UAt(pos + 4, 4, what + " section string id");
        long size = SizeAt(pos + 8, 8, what + " section size", _src.Length - pos - 16);
        pos += 16;
        _ = strId;
        if ((flags & 1) == 0) return (id, _src.ReadBytes(pos, size, what + " section"), pos);
        if (_compression == "none") TraceInputException.ThrowAtOffset(Name, off, "uncompressed section in a file without compression", "compressed flag");
        if (size < 8) TraceInputException.ThrowAtOffset(Name, pos, "compressed section header (8 bytes)", size + " bytes");
        long csize = SizeAt(pos, 4, "compressed size", size - 8);
        long usize = (long)UAt(pos + 4, 4, "uncompressed size");
        Decompress.CheckDeclared(Name, pos, csize, usize, what + " section");
        var comp = _src.ReadBytes(pos + 8, csize, what + " compressed data");
        var data = new byte[usize];
        Decompress.Into(_compression, comp, data, Name, pos, what + " section", Zstd);
        // Offsets inside decompressed data are reported relative to the section's start.
        return (id, data, pos + 8);
    }

    void Option(int id, byte[] data, long at, bool v7)
    {
        string Str() { int z = Array.IndexOf(data, (byte)0); return Encoding.UTF8.GetString(data, 0, z < 0 ? data.Length : z).Trim(); }
        switch (id)
        {
            case 1: Header.Properties["date"] = Str(); break;
            case 2:
                Stats.Add("tracedat.cpustat_options", StatSeverity.Info);
                break;
            case 3:
            {
                var r = new ByteReader(data, at, _big, Name);
                long off = r.Size64("buffer offset");
                string name = r.CString("buffer name");
                var cpus = new List<(int, long, long)>();
                int ps = _pageSize;
                if (v7)
                {
                    string clock = r.CString("buffer clock");
                    ps = (int)r.U32("buffer page size");
                    if (ps < 64 || ps > 1 << 24) throw r.Error("buffer page size between 64 and 16M", ps.ToString(CultureInfo.InvariantCulture));
                    uint n = r.U32("buffer CPU count");
                    if (n > (uint)r.Remaining / 20) throw r.Error("CPU entries that fit the option", n + " CPUs");
                    for (uint i = 0; i < n; i++)
                    {
                        int cpu = (int)r.U32("CPU id");
                        long coff = r.Size64("CPU data offset");
                        long csize = r.Size64("CPU data size");
                        cpus.Add((cpu, coff, csize));
                    }
                    if (name.Length == 0 && clock.Length > 0) Header.TraceClock ??= clock;
                    Header.Properties["instance." + (name.Length == 0 ? "top" : name) + ".clock"] = clock;
                }
                _buffers.Add((name, off, cpus, ps));
                break;
            }
            case 4:
            {
                string clocks = Str();
                int b = clocks.IndexOf('['), e = clocks.IndexOf(']');
                if (b >= 0 && e > b) Header.TraceClock ??= clocks[(b + 1)..e];
                break;
            }
            case 5:
            {
                string u = Str();
                Header.Properties["uname"] = u;
                var parts = u.Split(' ', StringSplitOptions.RemoveEmptyEntries);
                if (parts.Length >= 3) Header.KernelRelease ??= parts[2];
                break;
            }
            case 7:
                if (long.TryParse(Str(), NumberStyles.Integer, CultureInfo.InvariantCulture, out long o)) _tsOffset = o;
                Header.Properties["offset"] = Str();
                break;
            case 8:
                if (data.Length >= 4) { _cpuCount = (int)Math.Min(Endian.U32(data, _big), 1 << 16); Header.CpuCount = _cpuCount; }
                break;
            case 9: Header.Properties["tracecmd.version"] = Str(); break;
            case 11:
                if (data.Length >= 8) Header.Properties["trace_id"] = Endian.U64(data, _big).ToString("x", CultureInfo.InvariantCulture);
                break;
            case 14:
                if (data.Length >= 16)
                {
                    _tscMult = Endian.U32(data, _big);
                    _tscShift = Endian.U32(data.AsSpan(4), _big);
                    _tscOffset = (long)Endian.U64(data.AsSpan(8), _big);
                    _tsc2nsec = _tscMult != 0 && _tscShift < 64;
                    Header.Properties["tsc2nsec"] = $"mult={_tscMult} shift={_tscShift} offset={_tscOffset}";
                }
                break;
            case 12 or 13:
                Stats.Add("tracedat.guest_options_ignored", StatSeverity.Info);
                break;
            case 22:
                Stats.Add("tracedat.latency_text_not_decoded", StatSeverity.Error);
                break;
            default:
                Stats.Add("tracedat.unknown_option." + id, StatSeverity.Info);
                break;
        }
    }

    // ------------------------------------------------------------------ streams

    void BuildStreams()
    {
        if (_headerPage == null || _headerEvent == null)
            TraceInputException.ThrowAtOffset(Name, 0, "header_page and header_event", "none in the file");
        _layout = RingLayout.Parse(_headerPage, _headerEvent, _pageSize, _longSize, _big, Name, _headerInfoOffset);
        if (_v6Cpus != null)
        {
            for (int c = 0; c < _v6Cpus.Count; c++)
            {
                var (off, size) = _v6Cpus[c];
                _src.Check(off, size, $"CPU {c} trace data");
                CheckPageFits(_pageSize, size, false, off, c);
                _streams.Add(new CpuStream(new RawPageSource(_src, off, size, _pageSize), _layout, c, Name));
            }
            var v6names = new List<string> { "top" };
            // v6 instance buffers (BUFFER option: offset and name): at the offset, a "flyrecord\0" tag and an
            // (offset, size) pair per CPU of the header's CPU count, as for the top buffer; same page size.
            int v6inst = 1;
            foreach (var (name, boff, _, _) in _buffers)
            {
                if (name.Length == 0 || !_opt.AllInstances) continue;
                long pos = boff;
                string tag = Encoding.ASCII.GetString(_src.ReadBytes(pos, 10, $"flyrecord tag of instance '{name}'"));
                if (tag != "flyrecord\0") TraceInputException.ThrowAtOffset(Name, pos, $"flyrecord tag of instance '{name}'", tag);
                pos += 10;
                _src.Check(pos, (long)_cpuCount * 16, $"CPU offsets of instance '{name}'");
                for (int c = 0; c < _cpuCount; c++)
                {
                    long off = SizeAt(pos, 8, $"instance '{name}' CPU {c} data offset", _src.Length); pos += 8;
                    long size = SizeAt(pos, 8, $"instance '{name}' CPU {c} data size", _src.Length - off); pos += 8;
                    CheckPageFits(_pageSize, size, false, off, c);
                    _streams.Add(new CpuStream(new RawPageSource(_src, off, size, _pageSize), _layout, c, Name, v6inst));
                }
                v6names.Add(name);
                v6inst++;
            }
            Header.Properties["instances"] = string.Join(",", v6names);
            return;
        }
        int inst = 0;
        var names = new List<string>();
        foreach (var (name, off, cpus, ps) in _buffers)
        {
            if (!_opt.AllInstances && name.Length != 0) continue;
            names.Add(name.Length == 0 ? "top" : name);
            var layout = ps == _pageSize ? _layout : RingLayout.Parse(_headerPage, _headerEvent, ps, _longSize, _big, Name, _headerInfoOffset);
            // The flyrecord section header sits at 'off'; its compressed flag decides the data layout.
            ushort flags = (ushort)UAt(off + 2, 2, "flyrecord section flags");
            bool compressed = (flags & 1) != 0;
            long secEnd = off + 16 + SizeAt(off + 8, 8, "flyrecord section size", _src.Length - off - 16);
            foreach (var (cpu, coff, declaredSize) in cpus)
            {
                // trace-cmd 3.1 records a compressed CPU's size without its 4-byte chunk count:
                // the chunks are bounded by the flyrecord section instead.
                long csize = compressed && coff <= secEnd ? secEnd - coff : declaredSize;
                _src.Check(coff, csize, $"CPU {cpu} trace data");
                CheckPageFits(ps, csize, compressed, coff, cpu);
                IPageSource pages = compressed
                    ? new ChunkedPageSource(_src, coff, csize, _compression, ps, _big, Zstd)
                    : new RawPageSource(_src, coff, csize, ps);
                _streams.Add(new CpuStream(pages, layout, cpu, Name, inst));
            }
            inst++;
        }
        Header.Properties["instances"] = string.Join(",", names);
    }

    /// <summary>A page buffer is only allocated for data that can hold a page: raw CPU data comes in
    /// whole pages; compressed data must be able to expand to one.</summary>
    void CheckPageFits(int pageSize, long dataSize, bool compressed, long at, int cpu)
    {
        if (dataSize == 0) return;
        long room = compressed ? dataSize * Decompress.MaxRatio : dataSize;
        if (pageSize > room)
            TraceInputException.ThrowAtOffset(Name, at, $"CPU {cpu} data of at least one {pageSize}-byte page", dataSize + " bytes");
    }

    long ToNs(ulong raw)
    {
        ulong t = raw;
        if (_tsc2nsec)
        {
            UInt128 p = (UInt128)t * _tscMult;
            t = (ulong)(p >> (int)_tscShift);
            t = unchecked(t + (ulong)_tscOffset);
        }
        return unchecked((long)t + _tsOffset);
    }

    // ------------------------------------------------------------------ events

    void Start()
    {
        _started = true;
        LearnSymbols();
        _ctx.SymbolsAreFinal();
        var live = new List<CpuStream>();
        foreach (var s in _streams)
            if (s.Next()) live.Add(s);
        _live = live.ToArray();
        _liveCount = _live.Length;
        _useHeap = _liveCount > LinearMergeLimit;
        if (_useHeap)
            foreach (var s in _live) _heap.Enqueue(s, (s.Timestamp, s.InstanceIndex << 16 | s.Cpu));
    }

    /// <summary>The stream whose current item comes next in the merge (earliest timestamp; ties: instance,
    /// then CPU), or null at the end. Its item stays current until <see cref="Advance"/>.</summary>
    CpuStream? Peek()
    {
        if (_useHeap) return _heap.TryPeek(out var hs, out _) ? hs : null;
        // Few CPUs (the usual case): a linear scan beats a heap.
        int count = _liveCount;
        if (count == 0) return null;
        var live = _live;
        int best = 0;
        var b = live[0];
        for (int i = 1; i < count; i++)
        {
            var a = live[i];
            if (a.Timestamp < b.Timestamp || a.Timestamp == b.Timestamp && (a.InstanceIndex << 16 | a.Cpu) < (b.InstanceIndex << 16 | b.Cpu))
            {
                best = i;
                b = a;
            }
        }
        _best = best;
        return b;
    }

    /// <summary>Moves the stream <see cref="Peek"/> returned to its next item.</summary>
    void Advance(CpuStream s)
    {
        if (_useHeap)
        {
            if (s.Next()) _heap.EnqueueDequeue(s, (s.Timestamp, s.InstanceIndex << 16 | s.Cpu));
            else _heap.Dequeue();
            return;
        }
        if (!s.Next()) _live[_best] = _live[--_liveCount];
    }

    public TraceEvent? Read()
    {
        if (!_started) Start();
        LastRendered = null;
        var s = Peek();
        if (s == null) return null;
        var one = _one;
        one.Clear();
        try
        {
            var dec = DecodeRow(s, one);
            if (dec != null && _opt.RenderText) LastRendered = dec.Render(_ctx, dec.UsesSymbols ? Kallsyms : null);
        }
        finally
        {
            if (_pendingStats.Count > 0) FlushStats();
        }
        Advance(s);
        return one.ToTraceEvent(0);
    }

    /// <summary>
    /// Decodes up to <paramref name="max"/> next events (the same events, in the same order, with the same
    /// stats as <see cref="Read"/>) straight into <paramref name="block"/>'s columns: no object per event,
    /// integer fields read from the record, strings from the decoders' caches. Rows stay valid until the
    /// caller clears the block. The print output is not rendered here: with
    /// <see cref="BinaryReaderOptions.RenderText"/> use <see cref="Read"/>; <see cref="LastRendered"/> is null
    /// after this call.
    /// </summary>
    public int ReadBlock(EventBlock block, int max)
    {
        ArgumentNullException.ThrowIfNull(block);
        if (!_started) Start();
        LastRendered = null;
        int n = 0;
        try
        {
            while (n < max)
            {
                var s = Peek();
                if (s == null) break;
                DecodeRow(s, block);
                Advance(s);
                n++;
            }
        }
        finally
        {
            if (_pendingStats.Count > 0) FlushStats();
        }
        return n;
    }

    int LinearMergeLimit => _opt.LinearMergeLimit;
    CpuStream[] _live = [];
    int _liveCount, _best;
    bool _useHeap;
    /// <summary>Decoders holding counts of fields left out, added to <see cref="Stats"/> before Read/ReadBlock return.</summary>
    readonly List<EventDecoder> _pendingStats = new();

    void FlushStats()
    {
        foreach (var d in _pendingStats) d.FlushStats(Stats);
        _pendingStats.Clear();
    }

    /// <summary>The one-row block <see cref="Read"/> decodes into before making the event object.</summary>
    readonly EventBlock _one = new(1);
    EventDecoder?[] _byType = [];
    string?[] _unknownNames = [];
    int _lastPid = -1;
    string _lastComm = "";

    /// <summary>Appends the stream's current item to <paramref name="block"/> as a row: the one decode routine
    /// of <see cref="Read"/> and <see cref="ReadBlock"/>. Returns the event's decoder (null for a loss marker
    /// or an unknown type).</summary>
    EventDecoder? DecodeRow(CpuStream s, EventBlock block)
    {
        long ts = ToNs(s.Timestamp);
        if (s.IsLoss)
        {
            Stats.DataLossMarkers++;
            Stats.LostEvents += s.Lost;
            Stats.Events++;
            block.Append(ts, s.Cpu, 0, "", SyntheticEvents.DataLoss, null, null, s.RecordPosition);
            block.AddFields(1)[0] = EventField.U64("lost", (ulong)s.Lost);
            return null;
        }
        var page = s.Page;
        var rec = page.AsSpan(s.RecordOffset, s.RecordLength);
        if (rec.Length < 2)
            TraceInputException.ThrowAtOffset(Name, s.RecordPosition, "event record with a 2-byte type", rec.Length + " bytes");
        int type = (int)Endian.Read(rec, 2, _big);
        var byType = _byType;
        var dec = (uint)type < (uint)byType.Length ? byType[type] : null;
        if (dec == null)
        {
            Stats.Add("tracedat.unknown_event_type", StatSeverity.Error);
            Stats.UnparsedLines++;
            Stats.Events++;
            block.Append(ts, s.Cpu, 0, "", UnknownName(type), null, null, s.RecordPosition);
            return null;
        }
        _ctx.Set(page, s.RecordOffset, s.RecordLength);
        int pid = dec.Pid(rec, _big);
        Stats.Events++;
        var syms = dec.UsesSymbols ? Kallsyms : null;
        string? probe = dec.IsProbe ? dec.Probe(_ctx, ProbeSymbols) : null;
        block.Append(ts, s.Cpu, pid, Comm(pid), dec.Name, probe, dec.IrqFlags(rec), s.RecordPosition);
        dec.AppendFields(block, _ctx, syms, _pendingStats);
        return dec;
    }

    /// <summary>Kallsyms for probe locations (null with <see cref="BinaryReaderOptions.SymbolicProbes"/> off), parsed on first use.</summary>
    Kallsyms? ProbeSymbols
    {
        get
        {
            if (!_probeSymbolsReady)
            {
                _probeSymbols = _opt.SymbolicProbes ? Kallsyms : null;
                _probeSymbolsReady = true;
            }
            return _probeSymbols;
        }
    }
    Kallsyms? _probeSymbols;
    bool _probeSymbolsReady;

    string UnknownName(int type)
    {
        if ((uint)type >= (uint)_unknownNames.Length) Array.Resize(ref _unknownNames, Math.Max(type + 1, 16));
        return _unknownNames[type] ??= "unknown:type_" + type.ToString(CultureInfo.InvariantCulture);
    }

    string Comm(int pid)
    {
        if (pid == _lastPid) return _lastComm;
        string c = pid == 0 ? "<idle>" : _comms.TryGetValue(pid, out var k) ? k : "<...>";
        _lastPid = pid;
        _lastComm = c;
        return c;
    }

    /// <summary>Diagnostics for benchmarks: reads (and decompresses) every ring-buffer page of every CPU without
    /// decoding events, to tell the cost of I/O and decompression from the cost of decoding; returns the bytes
    /// of page data. Use on a fresh reader; it is at its end afterwards.</summary>
    public long ReadPagesOnly()
    {
        if (_started) throw new InvalidOperationException("ReadPagesOnly on a reader that has started reading events");
        _started = true;
        long bytes = 0;
        foreach (var s in _streams) bytes += s.DrainPages();
        _live = [];
        _liveCount = 0;
        return bytes;
    }

    /// <summary>One zstd context for all of the reader's sections and chunks (null unless the file is zstd-compressed).</summary>
    ZstdFrameDecoder? Zstd => _compression == "zstd" ? _zstd ??= new ZstdFrameDecoder() : null;
    ZstdFrameDecoder? _zstd;

    public void Dispose()
    {
        _zstd?.Dispose();
        _zstd = null;
        if (_ownsSource) _src.Dispose();
    }

}
