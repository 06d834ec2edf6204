using System.Globalization;
using System.Text;
using Replayer.Core;

namespace Replayer.Formats.Binary;

/// <summary>
/// The "tracing data" block perf stores in its TRACING_DATA feature (and pipe-mode
/// HEADER_TRACING_DATA record): the trace.dat v6 metadata layout — magic, version, endianness,
/// long size, page size, header_page, header_event, ftrace and event formats, kallsyms,
/// printk formats and (version ≥ 0.6) saved cmdlines.
/// </summary>
public sealed class TracingData
{
    public List<EventFormat> Formats { get; } = new();
    public bool BigEndian { get; private set; }
    public int LongSize { get; private set; }
    public int PageSize { get; private set; }
    public string Version { get; private set; } = "";
    public Kallsyms? Kallsyms { get; private set; }
    public Dictionary<int, string> Cmdlines { get; } = new();
    /// <summary>Address → trace_printk format / trace_puts string (for <c>ftrace:bprint</c>/<c>bputs</c>); null when none.</summary>
    public Dictionary<ulong, string>? PrintkFormats { get; private set; }
    /// <summary>Lines of the printk formats that did not parse.</summary>
    public int PrintkBadLines { get; private set; }

    public static TracingData Parse(ReadOnlySpan<byte> data, long baseOffset, string source)
    {
        var td = new TracingData();
        var r = new ByteReader(data, baseOffset, false, source);
        var magic = r.Bytes(10, "tracing data magic");
        if (!magic.SequenceEqual(TraceDatReader.Magic))
            throw r.Error("tracing data magic \\x17\\x08\\x44tracing", Encoding.Latin1.GetString(magic));
        td.Version = r.CString("tracing data version");
        byte endian = r.U8("endianness");
        if (endian > 1) throw r.Error("endianness 0 or 1", endian.ToString(CultureInfo.InvariantCulture));
        td.BigEndian = endian == 1;
        td.LongSize = r.U8("long size");
        r = new ByteReader(data, baseOffset, td.BigEndian, source) { Pos = r.Pos };
        td.PageSize = (int)r.U32("page size");
        Tag(ref r, "header_page");
        r.Skip(r.Size64("header_page size"), "header_page");
        Tag(ref r, "header_event");
        r.Skip(r.Size64("header_event size"), "header_event");
        uint nf = r.U32("ftrace format count");
        for (uint i = 0; i < nf; i++)
        {
            long n = r.Size64("ftrace format size");
            long at = r.Offset;
            td.TryAdd(Encoding.UTF8.GetString(r.Bytes(n, "ftrace format")), "ftrace", source, at);
        }
        uint ns = r.U32("event system count");
        for (uint s = 0; s < ns; s++)
        {
            string sys = string.Intern(r.CString("event system name"));
            uint ne = r.U32("event count of system " + TraceInputException.Excerpt(sys, 40));
            for (uint i = 0; i < ne; i++)
            {
                long n = r.Size64("event format size");
                long at = r.Offset;
                td.TryAdd(Encoding.UTF8.GetString(r.Bytes(n, "event format")), sys, source, at);
            }
        }
        if (r.Remaining == 0) return td;
        uint ks = r.U32("kallsyms size");
        var kall = r.Bytes(ks, "kallsyms");
        if (kall.Length > 0) td.Kallsyms = Kallsyms.Parse(kall, out _);
        if (r.Remaining == 0) return td;
        uint ps = r.U32("printk formats size");
        var printk = r.Bytes(ps, "printk formats");
        if (printk.Length > 0)
        {
            td.PrintkFormats = Binary.PrintkFormats.Parse(printk, out int bad);
            td.PrintkBadLines = bad;
        }
        if (r.Remaining >= 8)
        {
            long cs = r.Size64("saved cmdlines size");
            foreach (var line in Encoding.UTF8.GetString(r.Bytes(cs, "saved cmdlines")).Split('\n'))
            {
                int sp = line.IndexOf(' ');
                if (sp > 0 && int.TryParse(line.AsSpan(0, sp), NumberStyles.Integer, CultureInfo.InvariantCulture, out int pid))
                    td.Cmdlines[pid] = string.Intern(line[(sp + 1)..]);
            }
        }
        return td;
    }

    /// <summary>Formats that could not be parsed (the message of each); their events are undecodable.</summary>
    public List<string> Unparsable { get; } = new();

    void TryAdd(string text, string system, string source, long at)
    {
        try { Formats.Add(EventFormat.Parse(text, system, source, at)); }
        catch (TraceInputException e) { Unparsable.Add(e.Message); }
    }

    static void Tag(ref ByteReader r, string tag)
    {
        long at = r.Offset;
        string s = r.CString(tag + " tag");
        if (s != tag) throw new TraceInputException(r.Error("", "").SourceName, 0, at, tag + " tag", s);
    }
}
