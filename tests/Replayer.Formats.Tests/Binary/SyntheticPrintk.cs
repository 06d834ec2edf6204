using System.Text;
using Replayer.Formats.Binary;

namespace Replayer.Formats.Tests.Binary;

/// <summary>
/// A synthetic trace.dat (v6) with trace_printk records: the kernel's <c>ftrace:bprint</c> (ip, fmt pointer,
/// vbin_printf arguments in <c>buf</c>) and <c>ftrace:bputs</c> (ip, string pointer) formats, a printk formats
/// section as trace-cmd copies <c>/sys/kernel/tracing/printk_formats</c> (kernel escaping), and one record per
/// case with the message the kernel's <c>bstr_printf</c> would print (worked out by hand, not by the reader).
/// </summary>
public static class SyntheticPrintk
{
    public const int BprintId = 6, BputsId = 10;
    public const ulong Caller = 0xffffffff81001000UL; // page_add_file_rmap in the synthetic kallsyms
    public const ulong MissingFmt = 0xffffffff8200dead;

    public const string BprintFormat = """
        name: bprint
        ID: 6
        format:
        	field:unsigned short common_type;	offset:0;	size:2;	signed:0;
        	field:unsigned char common_flags;	offset:2;	size:1;	signed:0;
        	field:unsigned char common_preempt_count;	offset:3;	size:1;	signed:0;
        	field:int common_pid;	offset:4;	size:4;	signed:1;

        	field:unsigned long ip;	offset:8;	size:8;	signed:0;
        	field:const char * fmt;	offset:16;	size:8;	signed:0;
        	field:u32 buf[];	offset:24;	size:0;	signed:0;

        print fmt: "%ps: %s", (void *)REC->ip, REC->fmt
        """;

    public const string BputsFormat = """
        name: bputs
        ID: 10
        format:
        	field:unsigned short common_type;	offset:0;	size:2;	signed:0;
        	field:unsigned char common_flags;	offset:2;	size:1;	signed:0;
        	field:unsigned char common_preempt_count;	offset:3;	size:1;	signed:0;
        	field:int common_pid;	offset:4;	size:4;	signed:1;

        	field:unsigned long ip;	offset:8;	size:8;	signed:0;
        	field:const char * str;	offset:16;	size:8;	signed:0;

        print fmt: "%ps: %s", (void *)REC->ip, REC->str
        """;

    /// <summary>One trace_printk record: format (or string) address, binary args, the kernel's message, and whether
    /// libtraceevent (trace-cmd 3.1 / libtraceevent 1.7) renders it the same way.</summary>
    public sealed record Case(string Label, ulong Addr, byte[]? Args, string? Message, bool TraceCmdAgrees = true, bool Puts = false)
    {
        /// <summary>The text reader makes the same fields of trace-cmd's line: it renders the message as the kernel does,
        /// or prints "(NO FORMAT FOUND …)", which the text reader also leaves out.</summary>
        public bool FieldsAgree => TraceCmdAgrees || Label == "missing-fmt";
    }

    /// <summary>vbin_printf's layout: each value at its natural alignment (8-byte values at 4), strings inline with their NUL.</summary>
    public sealed class Args
    {
        readonly List<byte> _b = new();
        readonly bool _big;
        public Args(bool big) => _big = big;
        public Args Int(int size, long v)
        {
            int align = size >= 8 ? 4 : size;
            while (_b.Count % align != 0) _b.Add(0);
            TraceDatLayout.Put(_b, unchecked((ulong)v), size, _big);
            return this;
        }
        public Args Str(string s) { _b.AddRange(Encoding.UTF8.GetBytes(s)); _b.Add(0); return this; }
        public byte[] Bytes() => _b.ToArray();
    }

    /// <summary>Address → format (unescaped) of the printk formats section.</summary>
    public static readonly (ulong Addr, string Text)[] Formats =
    [
        (0xffffffff82000000, "sizes %d %u %ld %lu %lld %llu %zu %zd %x %lx %llx %X\n"),
        (0xffffffff82000100, "short %hd %hu %hhd %hhu %hx end\n"),
        (0xffffffff82000200, "chars [%c%c] [%3c] n=%d\n"),
        (0xffffffff82000300, "flags [%5d] [%05d] [%.3d] [%08lx] [%o] [%10s] [%.2s]\n"),
        (0xffffffff82000310, "signs [%+d] [% d] [%#x] [%#o] [%#X]\n"),
        (0xffffffff82000610, "sym %pS\n"),
        (0xffffffff82000400, "left [%-5d] [%-6s]\n"),
        (0xffffffff82000500, "str '%s' '%s' '%s' n=%d ll=%lld\n"),
        (0xffffffff82000600, "ptr %p %ps\n"),
        (0xffffffff82000700, "pct 100%% done %d\n"),
        (0xffffffff82000800, "tab\there \"quoted\"\n"),
        (0xffffffff82000900, "just a string\n"),
        (0xffffffff82000a00, "px %px\n"),
        (0xffffffff82000b00, "no newline %d"),
    ];

    /// <summary>The section's text as the kernel writes it: newline, tab and quote escaped.</summary>
    public static string PrintkText(IEnumerable<(ulong Addr, string Text)>? formats = null)
    {
        var sb = new StringBuilder();
        foreach (var (a, t) in formats ?? Formats)
            sb.Append("0x").Append(a.ToString("x")).Append(" : \"")
              .Append(t.Replace("\n", "\\n").Replace("\t", "\\t").Replace("\"", "\\\"")).Append("\"\n");
        sb.Append("this line is garbage\n");
        return sb.ToString();
    }

    /// <summary>The cases, those libtraceevent renders like the kernel first: a format it cannot follow marks the event
    /// type failed for the rest of the report ("[FAILED TO PARSE]" on every later bprint).</summary>
    public static List<Case> Cases(bool big)
    {
        Args A() => new(big);
        return
        [
            new("sizes", 0xffffffff82000000,
                A().Int(4, -5).Int(4, 4000000000).Int(8, -6).Int(8, -1).Int(8, long.MinValue).Int(8, 1234567890123).Int(8, 77).Int(8, -77)
                   .Int(4, 0xbeef).Int(8, 0x1234567890).Int(8, 0x7fffffffffffffff).Int(4, 0xabc).Bytes(),
                "sizes -5 4000000000 -6 18446744073709551615 -9223372036854775808 1234567890123 77 -77 beef 1234567890 7fffffffffffffff ABC"),
            new("strings", 0xffffffff82000500,
                A().Str("").Str("odd").Str("abcde").Int(4, 3).Int(8, -1).Bytes(),
                "str '' 'odd' 'abcde' n=3 ll=-1"),
            new("pointers", 0xffffffff82000600,
                A().Int(8, 0x1234).Int(8, unchecked((long)(Caller + 0x10))).Bytes(),
                "ptr 0x1234 page_add_file_rmap"),
            new("percent", 0xffffffff82000700, A().Int(4, 9).Bytes(), "pct 100% done 9"),
            new("escapes", 0xffffffff82000800, A().Bytes(), "tab\there \"quoted\""),
            new("no-newline", 0xffffffff82000b00, A().Int(4, 1).Bytes(), "no newline 1"),
            // libtraceevent reads a big-endian file's string pointer in host order (prints the swapped address)
            new("puts", 0xffffffff82000900, null, "just a string", TraceCmdAgrees: !big, Puts: true),
            new("flags", 0xffffffff82000300,
                A().Int(4, 42).Int(4, -42).Int(4, 5).Int(8, 0xbeef).Int(4, 8).Str("right").Str("truncate").Bytes(),
                "flags [   42] [-0042] [005] [0000beef] [10] [     right] [tr]"),
            new("missing-fmt", MissingFmt, A().Int(4, 1).Bytes(), null, TraceCmdAgrees: false),
            new("missing-puts", MissingFmt, null, null, TraceCmdAgrees: false, Puts: true),
            // buf ends inside the second string: the message cannot be computed
            new("truncated", 0xffffffff82000500, A().Str("").Str("od").Bytes()[..3], null, TraceCmdAgrees: false),
            new("px", 0xffffffff82000a00, A().Int(8, 0x1234).Bytes(), "px 0000000000001234", TraceCmdAgrees: false),
            new("left", 0xffffffff82000400,
                A().Int(4, 42).Str("ab").Bytes(),
                "left [42   ] [ab    ]", TraceCmdAgrees: false),
            new("chars", 0xffffffff82000200,
                A().Int(1, 'o').Int(1, 'k').Int(1, 'z').Int(4, 42).Bytes(),
                "chars [ok] [  z] n=42", TraceCmdAgrees: false),
            new("signs", 0xffffffff82000310,
                A().Int(4, 7).Int(4, 8).Int(4, 255).Int(4, 8).Int(4, 0xab).Bytes(),
                "signs [+7] [ 8] [0xff] [010] [0XAB]", TraceCmdAgrees: false),
            // the kernel prints %pS with the symbol's size; libtraceevent without
            new("sym", 0xffffffff82000610, A().Int(8, unchecked((long)(Caller + 0x10))).Bytes(),
                "sym page_add_file_rmap+0x10/0x2f0", TraceCmdAgrees: false),
            new("short", 0xffffffff82000100,
                A().Int(2, -2).Int(2, 65535).Int(1, -3).Int(1, 250).Int(2, 0xabc).Bytes(),
                "short -2 65535 -3 250 abc end", TraceCmdAgrees: false),
        ];
    }

    /// <summary>The record of a case (common fields, ip, address, args).</summary>
    public static byte[] Record(Case c, int pid, bool big) => TraceDatLayout.Bytes(b =>
    {
        TraceDatLayout.Put(b, (ulong)(c.Puts ? BputsId : BprintId), 2, big);
        b.Add(0); b.Add(1);
        TraceDatLayout.Put(b, (ulong)pid, 4, big);
        TraceDatLayout.Put(b, Caller, 8, big);
        TraceDatLayout.Put(b, c.Addr, 8, big);
        if (c.Args != null) b.AddRange(c.Args);
        while (b.Count % 4 != 0) b.Add(0);
    });

    /// <summary>A v6 trace.dat: the synthetic captures' formats plus bprint/bputs, the printk formats, and one
    /// trace_printk record per case on CPU 0 (1 µs apart) among a few ordinary events on CPU 1.</summary>
    public static byte[] TraceDat(bool big, bool withPrintk = true, IReadOnlyList<(ulong Addr, string Text)>? formatsOverride = null,
        IReadOnlyList<Case>? casesOverride = null)
    {
        var formats = new List<(string, string)> { ("ftrace", BprintFormat), ("ftrace", BputsFormat) };
        formats.AddRange(new[] { "kmem", "sched", "rt", "migrate" }.Zip(SyntheticCaptures.Formats, (s, f) => (s, f)));
        var meta = TraceDatLayout.V6Metadata(big, formats, SyntheticCaptures.Kallsyms, SyntheticCaptures.Cmdlines, withPrintk ? PrintkText(formatsOverride) : "");
        var cases = casesOverride ?? Cases(big);
        var cpu0 = cases.Select((c, i) => new RingRecord(2_000_000_000L + i * 1000, Record(c, 100, big), -1));
        var cpu1 = SyntheticCaptures.DefaultEvents().Where(e => e.Lost < 0).OrderBy(e => e.Time).Select(e => new RingRecord(e.Time, SyntheticCaptures.Record(e, big), -1));
        using var ms = new MemoryStream();
        TraceDatLayout.WriteV6(ms, big, meta, "Linux synth 6.1.0-synth x86_64",
            [new MemoryStream(TraceDatLayout.CpuPages(cpu0, big)), new MemoryStream(TraceDatLayout.CpuPages(cpu1, big))]);
        return ms.ToArray();
    }
}
