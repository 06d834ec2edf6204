using System.Buffers.Binary;
using System.Text;

namespace Replayer.Formats.Binary;

/// <summary>One record for a CPU's ring-buffer pages: absolute time, the raw tracepoint record
/// (common fields + payload), and <c>Lost</c> &gt;= 0 to start a new page flagged as having lost that many events.</summary>
public readonly record struct RingRecord(long Time, byte[] Data, long Lost = -1);

/// <summary>
/// The byte layout of a trace.dat file (version 6 and the pieces v7 reuses) in either endianness:
/// preamble, header_page/header_event, event formats, kallsyms, printk, saved cmdlines, options and
/// flyrecord ring-buffer pages. Used by <see cref="TraceDatWriter"/> and by the tests' synthetic captures.
/// </summary>
public static class TraceDatLayout
{
    public const int PageSize = 4096;

    public const string HeaderPage =
        "\tfield: u64 timestamp;\toffset:0;\tsize:8;\tsigned:0;\n\tfield: local_t commit;\toffset:8;\tsize:8;\tsigned:1;\n" +
        "\tfield: int overwrite;\toffset:8;\tsize:1;\tsigned:1;\n\tfield: char data;\toffset:16;\tsize:4080;\tsigned:1;\n";

    public const string HeaderEvent =
        "# compressed entry header\n\ttype_len    :    5 bits\n\ttime_delta  :   27 bits\n\tarray       :   32 bits\n\n" +
        "\tpadding     : type == 29\n\ttime_extend : type == 30\n\ttime_stamp : type == 31\n\tdata max type_len  == 28\n";

    public static void Put(List<byte> b, ulong v, int size, bool big)
    {
        Span<byte> t = stackalloc byte[8];
        if (big) BinaryPrimitives.WriteUInt64BigEndian(t, v); else BinaryPrimitives.WriteUInt64LittleEndian(t, v);
        foreach (var x in big ? t[(8 - size)..] : t[..size]) b.Add(x);
    }

    public static void PutString(List<byte> b, string s, bool nul = true)
    {
        b.AddRange(Encoding.UTF8.GetBytes(s));
        if (nul) b.Add(0);
    }

    public static byte[] Bytes(Action<List<byte>> fill) { var l = new List<byte>(); fill(l); return l.ToArray(); }

    /// <summary>Magic, version string, endianness, long size, page size.</summary>
    public static byte[] Preamble(string version, bool big) => Bytes(b =>
    {
        b.AddRange(new byte[] { 0x17, 0x08, 0x44 }); b.AddRange(Encoding.ASCII.GetBytes("tracing"));
        PutString(b, version);
        b.Add(big ? (byte)1 : (byte)0); b.Add(8);
        Put(b, PageSize, 4, big);
    });

    public static byte[] HeaderInfo(bool big) => Bytes(b =>
    {
        PutString(b, "header_page"); Put(b, (ulong)HeaderPage.Length, 8, big); PutString(b, HeaderPage, false);
        PutString(b, "header_event"); Put(b, (ulong)HeaderEvent.Length, 8, big); PutString(b, HeaderEvent, false);
    });

    /// <summary>Event formats grouped by system (v6: preceded by an empty ftrace-formats count when <paramref name="withFtraceCount"/>).</summary>
    public static byte[] FormatsBlock(bool big, IReadOnlyList<(string System, string Text)> formats, bool withFtraceCount = true) => Bytes(b =>
    {
        void One(string text)
        {
            var f = Encoding.UTF8.GetBytes(text.Replace("\r", "", StringComparison.Ordinal).TrimEnd('\n') + "\n");
            Put(b, (ulong)f.Length, 8, big);
            b.AddRange(f);
        }
        if (withFtraceCount)
        {
            // The ftrace system's own events (print, function, ...) have their own list, without a system name.
            var ftrace = formats.Where(f => f.System == "ftrace").ToArray();
            Put(b, (ulong)ftrace.Length, 4, big);
            foreach (var f in ftrace) One(f.Text);
            formats = formats.Where(f => f.System != "ftrace").ToArray();
        }
        var systems = formats.GroupBy(f => f.System, StringComparer.Ordinal).ToArray();
        Put(b, (ulong)systems.Length, 4, big);
        foreach (var g in systems)
        {
            PutString(b, g.Key);
            Put(b, (ulong)g.Count(), 4, big);
            foreach (var (_, text) in g) One(text);
        }
    });

    /// <summary>The v6 metadata after the preamble up to and including saved cmdlines (also perf's tracing data).</summary>
    public static byte[] V6Metadata(bool big, IReadOnlyList<(string System, string Text)> formats, string kallsyms, string cmdlines, string printk = "") => Bytes(b =>
    {
        b.AddRange(HeaderInfo(big));
        b.AddRange(FormatsBlock(big, formats));
        var ks = Encoding.UTF8.GetBytes(kallsyms);
        Put(b, (ulong)ks.Length, 4, big); b.AddRange(ks);
        var pk = Encoding.UTF8.GetBytes(printk);
        Put(b, (ulong)pk.Length, 4, big); b.AddRange(pk);
        var cl = Encoding.UTF8.GetBytes(cmdlines);
        Put(b, (ulong)cl.Length, 8, big); b.AddRange(cl);
    });

    /// <summary>
    /// Ring-buffer pages (<see cref="PageSize"/> bytes each) holding <paramref name="records"/> in order
    /// (see <see cref="RingPageWriter"/>).
    /// </summary>
    public static void CpuPages(IEnumerable<RingRecord> records, bool big, Stream output)
    {
        var w = new RingPageWriter(output, big);
        foreach (var r in records) w.Add(r.Time, r.Data, r.Lost);
        w.Flush();
    }

    public static byte[] CpuPages(IEnumerable<RingRecord> records, bool big)
    {
        using var ms = new MemoryStream();
        CpuPages(records, big, ms);
        return ms.ToArray();
    }

    /// <summary>
    /// A whole version-6 file: preamble, <paramref name="metadata"/> (<see cref="V6Metadata"/>), the CPU count,
    /// an options section (uname), then flyrecord with each CPU's pages at a page-aligned offset.
    /// </summary>
    public static void WriteV6(Stream output, bool big, byte[] metadata, string uname, IReadOnlyList<Stream> cpuPages)
    {
        var f = new List<byte>();
        f.AddRange(Preamble("6", big));
        f.AddRange(metadata);
        Put(f, (ulong)cpuPages.Count, 4, big);
        PutString(f, "options  ");
        var un = Encoding.UTF8.GetBytes(uname + "\0");
        Put(f, 5, 2, big); Put(f, (ulong)un.Length, 4, big); f.AddRange(un); // TRACECMD_OPTION_UNAME
        Put(f, 0, 2, big);
        PutString(f, "flyrecord");
        long table = f.Count;
        long pos = table + 16L * cpuPages.Count;
        var offs = new long[cpuPages.Count];
        for (int c = 0; c < cpuPages.Count; c++)
        {
            pos = (pos + PageSize - 1) / PageSize * PageSize;
            offs[c] = pos;
            pos += cpuPages[c].Length;
        }
        for (int c = 0; c < cpuPages.Count; c++) { Put(f, (ulong)offs[c], 8, big); Put(f, (ulong)cpuPages[c].Length, 8, big); }
        output.Write(f.ToArray());
        long at = f.Count;
        var zeros = new byte[PageSize];
        for (int c = 0; c < cpuPages.Count; c++)
        {
            output.Write(zeros, 0, (int)(offs[c] - at));
            cpuPages[c].Position = 0;
            cpuPages[c].CopyTo(output);
            at = offs[c] + cpuPages[c].Length;
        }
    }
}

/// <summary>
/// Appends records to one CPU's ring-buffer pages, writing each page to the output when it is full:
/// a record whose time is before the previous one's starts a new page (pages carry absolute times),
/// gaps of 2^27 ns or more get a TIME_EXTEND, records over 112 bytes a length word, and a record
/// with <c>lost</c> &gt;= 0 starts a page flagged as having lost that many events.
/// </summary>
public sealed class RingPageWriter(Stream output, bool big)
{
    const int Capacity = TraceDatLayout.PageSize - 16 - 8; // room for a lost-events count
    readonly byte[] _page = new byte[TraceDatLayout.PageSize];
    readonly List<byte> _scratch = new(16);
    int _len = -1; // bytes of data in the current page; -1: no page open
    ulong _pageTs, _last;
    long _lost = -1;

    public long Pages { get; private set; }

    void PutWord(ulong v, int size)
    {
        _scratch.Clear();
        TraceDatLayout.Put(_scratch, v, size, big);
        _scratch.CopyTo(_page.AsSpan(16 + _len));
        _len += size;
    }

    /// <summary>Writes the open page, if any.</summary>
    public void Flush()
    {
        if (_len < 0) return;
        _scratch.Clear();
        TraceDatLayout.Put(_scratch, _pageTs, 8, big);
        ulong commit = (ulong)_len;
        if (_lost >= 0) commit |= 1UL << 31 | 1UL << 30;
        TraceDatLayout.Put(_scratch, commit, 8, big);
        _scratch.CopyTo(_page);
        if (_lost >= 0)
        {
            _scratch.Clear();
            TraceDatLayout.Put(_scratch, (ulong)_lost, 8, big);
            _scratch.CopyTo(_page.AsSpan(16 + _len));
        }
        output.Write(_page);
        Pages++;
        _len = -1;
    }

    public void Add(long time, ReadOnlySpan<byte> data, long lost = -1)
    {
        int recLen = (data.Length + 3) & ~3;
        if (recLen + 16 > Capacity) throw new ArgumentException($"record of {data.Length} bytes does not fit a {TraceDatLayout.PageSize}-byte ring-buffer page");
        ulong t = (ulong)time;
        if (_len < 0 || lost >= 0 || t < _last || _len + recLen + 16 > Capacity)
        {
            Flush();
            Array.Clear(_page);
            _len = 0;
            _pageTs = t;
            _last = t;
            _lost = lost;
        }
        ulong delta = t - _last;
        _last = t;
        if (delta >= 1UL << 27)
        {
            PutWord(Header(30, delta & ((1UL << 27) - 1)), 4);
            PutWord(delta >> 27, 4);
            delta = 0;
        }
        if (recLen <= 112) PutWord(Header((uint)(recLen / 4), delta), 4);
        else
        {
            PutWord(Header(0, delta), 4);
            PutWord((ulong)recLen + 4, 4);
        }
        data.CopyTo(_page.AsSpan(16 + _len));
        _len += recLen; // padding bytes are already zero
    }

    uint Header(uint typeLen, ulong delta) => big ? typeLen << 27 | (uint)delta : typeLen | (uint)delta << 5;
}
