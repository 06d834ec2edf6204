using System.Buffers.Binary;
using System.Globalization;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Text;
using Replayer.Core;

namespace Replayer.Formats.Binary;

/// <summary>One printf conversion of a print format (<c>%lx</c>, <c>%s</c>, <c>%p</c>).</summary>
public sealed record Conversion(string Spec, char Conv, int LongCount, char Half, string Ext, bool ZeroPad, bool LeftAlign, int Width, int Precision)
{
    /// <summary>Value type of the conversion's output.</summary>
    public FieldType Type => Conv switch
    {
        'd' or 'i' => FieldType.S64,
        'u' or 'x' or 'X' or 'o' => FieldType.U64,
        'p' when Ext.Length == 0 => FieldType.U64,
        _ => FieldType.Str,
    };
}

/// <summary>A print format split into literal text and conversions.</summary>
public sealed class PrintFormatParts
{
    public required string[] Literals { get; init; } // Literals[i] precedes Conversions[i]; last literal trails
    public required Conversion[] Conversions { get; init; }

    public static PrintFormatParts Parse(string fmt)
    {
        var lits = new List<string>();
        var convs = new List<Conversion>();
        var lit = new StringBuilder();
        int i = 0;
        while (i < fmt.Length)
        {
            char c = fmt[i];
            if (c != '%') { lit.Append(c); i++; continue; }
            if (i + 1 < fmt.Length && fmt[i + 1] == '%') { lit.Append('%'); i += 2; continue; }
            int st = i++;
            bool zero = false, left = false;
            while (i < fmt.Length && "-+ #0".Contains(fmt[i])) { if (fmt[i] == '0') zero = true; if (fmt[i] == '-') left = true; i++; }
            int width = 0, prec = -1;
            while (i < fmt.Length && char.IsDigit(fmt[i])) width = Math.Min(width * 10 + (fmt[i++] - '0'), 4096);
            if (i < fmt.Length && fmt[i] == '*') { i++; width = -1; }
            if (i < fmt.Length && fmt[i] == '.')
            {
                i++; prec = 0;
                while (i < fmt.Length && char.IsDigit(fmt[i])) prec = Math.Min(prec * 10 + (fmt[i++] - '0'), 4096);
                if (i < fmt.Length && fmt[i] == '*') { i++; prec = -2; }
            }
            int longs = 0; char half = '\0';
            while (i < fmt.Length && "lLhzjtq".Contains(fmt[i]))
            {
                char m = fmt[i++];
                if (m is 'l' or 'q' or 'j' or 'z' or 't') longs++;
                else if (m == 'L') longs = 2;
                else if (m == 'h') half = half == 'h' ? 'H' : 'h';
            }
            if (i >= fmt.Length) { lit.Append(fmt, st, fmt.Length - st); break; }
            char conv = fmt[i++];
            string ext = "";
            if (conv == 'p')
            {
                int es = i;
                while (i < fmt.Length && char.IsLetterOrDigit(fmt[i]) && "sSfFBRrhbMmIiEUVKNadDgGpx".Contains(fmt[i]) && i - es < 3) i++;
                ext = fmt[es..i];
            }
            lits.Add(lit.ToString());
            lit.Clear();
            convs.Add(new Conversion(fmt[st..i], conv, longs, half, ext, zero, left, width, prec));
        }
        lits.Add(lit.ToString());
        return new PrintFormatParts { Literals = lits.ToArray(), Conversions = convs.ToArray() };
    }
}

/// <summary>
/// Decodes the binary records of one event format into canonical <see cref="TraceEvent"/>s:
/// the printed fields in print order, evaluated from the print format's argument expressions.
/// </summary>
public sealed class EventDecoder
{
    public EventFormat Format { get; }
    public string Name { get; }
    readonly RecordField? _pid, _flags, _preempt;
    readonly Printed[] _printed;
    enum PrintkKind : byte { None, Bprint, Bputs }
    /// <summary><c>ftrace:bprint</c> / <c>ftrace:bputs</c>: the message field comes from the printk formats.</summary>
    readonly PrintkKind _printk;
    readonly RecordField? _printkAddr, _printkBuf;
    readonly PrintFormatParts _parts;
    readonly PrintExpr[] _args;
    readonly PrintExpr? _probeIp, _probeFunc, _probeRet;
    /// <summary>Printed fields that could not be evaluated (unknown helper or kernel variable): name → count.</summary>
    public bool Generic { get; }

    /// <summary>A cached evaluation: the key (raw bytes of the fields read), the byte order it was read with,
    /// whether the field could be evaluated, and the field.</summary>
    struct Memo
    {
        public ulong Key;
        public bool Used, BigEndian, Ok;
        public EventField Field;
    }

    const int MemoSlots = 64;

    sealed class Printed
    {
        public required string Name;
        public required Conversion[] Convs;
        public required PrintExpr[] Args;
        public required string[] Between; // literal text between consecutive conversions of a joined field
        public string? StatName;
        public long Unevaluated;
        public FieldType Type;
        public FieldStyle Style;

        /// <summary>Set when the argument is a plain scalar <c>REC-&gt;field</c> printed as an integer.</summary>
        public RecordField? Direct;
        // A direct field, precomputed: where it lies in the record, whether the record field is signed, the
        // printf conversion's width as a shift (%d of a long prints its low 32 bits, sign-extended) and the
        // EventField kind byte (type and style).
        public int Offset, Size, FieldShift, ConvShift;
        public bool ConvSigned;
        public byte Kind;

        /// <summary>When the field's value depends only on a few scalar record fields (at most 8 bytes together,
        /// no kernel variables, no symbols printed): those fields, read into a key that a small direct-mapped
        /// cache of evaluated fields is indexed by. Null when not cacheable, or when the cache stopped paying.</summary>
        public RecordField[]? MemoFields;
        public Memo[]? MemoCache;
        public int MemoHits, MemoMisses;

        /// <summary>Scratch text of a field built from several conversions (or padded).</summary>
        public readonly CharBuffer Text = new();
        readonly Dictionary<string, string> _seen = new(StringComparer.Ordinal);
        Dictionary<string, string>.AlternateLookup<ReadOnlySpan<char>> _seenBySpan;
        bool _lookupReady;
        string? _last;

        /// <summary>One string instance per distinct value of the field (without the global intern table's
        /// cost); a value seen before costs no allocation.</summary>
        public string Dedupe(ReadOnlySpan<char> text)
        {
            var last = _last;
            if (last != null && text.SequenceEqual(last)) return last;
            if (!_lookupReady)
            {
                _seenBySpan = _seen.GetAlternateLookup<ReadOnlySpan<char>>();
                _lookupReady = true;
            }
            if (_seenBySpan.TryGetValue(text, out var hit)) return _last = hit;
            var s = new string(text);
            if (_seen.Count < 4096) _seen[s] = s;
            return _last = s;
        }

        /// <summary>The field's value from its raw (zero-extended) record bytes: sign-extended when the record
        /// field is signed (as <see cref="Endian.SignExtend"/>), then cut to the conversion's width.</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public ulong DirectValue(ulong raw)
        {
            raw = unchecked((ulong)((long)(raw << FieldShift) >> FieldShift));
            int sh = ConvShift;
            return ConvSigned ? unchecked((ulong)((long)(raw << sh) >> sh)) : raw << sh >> sh;
        }
    }

    public EventDecoder(EventFormat format)
    {
        Format = format;
        Name = string.Intern(format.FullName);
        _pid = format.Field("common_pid");
        _flags = format.Field("common_flags");
        _preempt = format.Field("common_preempt_count");
        if (_pid != null) { _pidOffset = _pid.Offset; _pidSize = _pid.Size; }
        if (_flags != null && _preempt != null) { _flagsOffset = _flags.Offset; _preemptOffset = _preempt.Offset; }
        var parts = PrintFormatParts.Parse(format.PrintFormat);
        var args = format.PrintArgs.Select(a => PrintExpr.Parse(a, format)).ToArray();
        _parts = parts;
        _args = args;
        int ci = 0;
        // kprobe / kretprobe location columns: "(%lx)" or "(%lx <- %lx)" at the start.
        if (parts.Conversions.Length >= 1 && parts.Literals[0] == "(" && args.Length >= 1
            && args[0].PlainField?.Name is "__probe_ip" or "__probe_func")
        {
            if (parts.Literals.Length > 1 && parts.Literals[1] == ")" || parts.Literals[1].StartsWith(") ", StringComparison.Ordinal))
            {
                _probeIp = args[0];
                ci = 1;
            }
            else if (parts.Conversions.Length >= 2 && parts.Literals[1] == " <- " && args.Length >= 2)
            {
                _probeFunc = args[0];
                _probeRet = args[1];
                ci = 2;
            }
        }
        // Names, types, styles and grouping of the printed fields come from the shared schema's
        // print template, so binary and text readers agree on them.
        var template = format.Schema?.Template ?? global::Replayer.Formats.Schema.PrintTemplate.Parse(format.PrintFormat, format.PrintArgs);
        var printed = new List<Printed>();
        if (template.Probe == global::Replayer.Formats.Schema.ProbeKind.Kprobe && _probeIp == null && args.Length > 0) { _probeIp = args[0]; ci = 1; }
        if (template.Probe == global::Replayer.Formats.Schema.ProbeKind.Kretprobe && _probeFunc == null && args.Length > 1) { _probeFunc = args[0]; _probeRet = args[1]; ci = 2; }
        foreach (var tf in template.Fields)
        {
            int n = CountConversions(tf.Spec);
            if (n == 0 || ci + n > parts.Conversions.Length) { Mismatch = true; break; }
            var convs = parts.Conversions[ci..(ci + n)];
            var a = new PrintExpr[n];
            var between = new string[n - 1];
            for (int k = 0; k < n; k++)
            {
                a[k] = ci + k < args.Length ? args[ci + k] : new PrintExpr.UnknownExpr("missing argument");
                if (k > 0) between[k - 1] = parts.Literals[ci + k];
            }
            var pr = new Printed { Name = tf.Name, Convs = convs, Args = a, Between = between, Type = n == 1 ? tf.Type : FieldType.Str, Style = tf.Style };
            if (n == 1 && a[0] is PrintExpr.FieldRef { Field.IsScalar: true } fr && pr.Type is FieldType.U64 or FieldType.S64 && convs[0].Conv is 'd' or 'i' or 'u' or 'x' or 'X' or 'p' && convs[0].Ext.Length == 0)
            {
                var c0 = convs[0];
                pr.Direct = fr.Field;
                pr.Offset = fr.Field.Offset;
                pr.Size = fr.Field.Size;
                // Endian.SignExtend widens 1, 2 and 4-byte signed fields; other sizes stay as read.
                pr.FieldShift = fr.Field.Signed && fr.Field.Size is 1 or 2 or 4 ? 64 - 8 * fr.Field.Size : 0;
                pr.ConvSigned = pr.Type == FieldType.S64;
                // The same truncation as ToSigned / ToUnsigned, as a shift pair.
                int bits = c0.LongCount > 0 || !pr.ConvSigned && c0.Conv == 'p' ? 64 : c0.Half == 'h' ? 16 : c0.Half == 'H' ? 8 : 32;
                pr.ConvShift = 64 - bits;
                pr.Kind = pr.ConvSigned ? (byte)FieldType.S64 : (byte)((byte)FieldType.U64 | ((byte)pr.Style << 4));
            }
            if (pr.Direct == null)
            {
                var reads = new List<RecordField>();
                if (a.All(x => PrintExpr.ReadsOnlyScalars(x, reads)) && reads.Count > 0 && reads.Sum(f => f.Size) <= 8
                    && !convs.Any(c => c.Conv == 'p' && c.Ext.Length > 0))
                {
                    pr.MemoFields = reads.ToArray();
                    pr.MemoCache = new Memo[MemoSlots];
                }
            }
            printed.Add(pr);
            ci += n;
        }
        _printed = printed.ToArray();
        // trace_printk records: the message is not in the print format but built from the printk formats.
        if (Name is "ftrace:bprint" or "ftrace:bputs" && _printed.Length == 2 && _printed[0].Convs.Length == 1
            && format.Field("ip") is { IsScalar: true } ipField)
        {
            bool bprint = Name == "ftrace:bprint";
            var addr = format.Field(bprint ? "fmt" : "str");
            var buf = bprint ? format.Field("buf") : null;
            if (addr is { IsScalar: true, Size: 4 or 8 } && (!bprint || buf != null))
            {
                _printk = bprint ? PrintkKind.Bprint : PrintkKind.Bputs;
                _printkAddr = addr;
                _printkBuf = buf;
                _printed[1].Name = bprint ? "buf" : "str";
                _printed[1].Type = FieldType.Str;
                _printed[1].Direct = null;
                _printed[1].MemoCache = null;
                _printed[1].MemoFields = null;
            }
        }
        _allDirect = _printed.Length > 0 && _printed.All(p => p.Direct != null);
        if (_allDirect)
        {
            _slots = _printed.Select(p => new DirectSlot
            {
                Name = p.Name, Offset = p.Offset, Kind = p.Kind, SizeShift = 64 - 8 * p.Size, ConvShift = p.ConvShift,
                FieldArith = p.FieldShift != 0 ? ulong.MaxValue : 0, ConvArith = p.ConvSigned ? ulong.MaxValue : 0,
            }).ToArray();
            _overreadEnd = _printed.Max(p => p.Offset) + 8;
        }
        UsesSymbols = _parts.Conversions.Any(c => c.Conv == 'p' && c.Ext.Length > 0 && c.Ext[0] is 's' or 'S' or 'f' or 'F');
        IsProbe = _probeIp != null || _probeFunc != null;
        _probeIpField = _probeIp is PrintExpr.FieldRef { Field.IsScalar: true } ipRef ? ipRef.Field : null;
        _directEnd = _allDirect ? _printed.Max(p => p.Offset + p.Size) : int.MaxValue;
    }

    /// <summary>Every printed field is a plain integer read (most kprobe and many tracepoint formats), and the
    /// record bytes they need end at <see cref="_directEnd"/>: then one tight loop decodes them.</summary>
    readonly bool _allDirect;
    readonly int _directEnd;
    /// <summary>The all-direct fields compactly, for the loop that reads 8 bytes per field (when the buffer holds
    /// <see cref="_overreadEnd"/> bytes from the record's start) and cuts them to size with shifts.</summary>
    readonly DirectSlot[] _slots = [];
    readonly int _overreadEnd;

    struct DirectSlot
    {
        public string Name;
        public int Offset;
        /// <summary>64 - 8 * size: shifting left and back drops the bytes read past the field.</summary>
        public int SizeShift;
        public int ConvShift;
        /// <summary>All ones where the shift back is arithmetic (sign-extending), else zero.</summary>
        public ulong FieldArith, ConvArith;
        public byte Kind;
    }

    /// <summary>True when the schema's template and this decoder's reading of the print format disagree
    /// (then fewer fields are produced; counted by the readers).</summary>
    public bool Mismatch { get; private set; }

    static int CountConversions(string spec)
    {
        int n = 0;
        for (int i = 0; i < spec.Length; i++)
        {
            if (spec[i] != '%') continue;
            if (i + 1 < spec.Length && spec[i + 1] == '%') { i++; continue; }
            n++;
        }
        return n;
    }

    static string? NameBefore(string lit)
    {
        if (!lit.EndsWith('=') && !lit.EndsWith("=0x", StringComparison.Ordinal)) return null;
        int end = lit.LastIndexOf('=');
        int st = end;
        while (st > 0 && (char.IsLetterOrDigit(lit[st - 1]) || lit[st - 1] is '_' or '.' or '-' or '[' or ']')) st--;
        return st < end ? lit[st..end] : null;
    }

    static string? NameFromArg(PrintExpr? e) => e?.PlainField?.Name;

    // common_pid / common_flags / common_preempt_count as plain offsets (-1: not in the format), read per event.
    readonly int _pidOffset = -1, _pidSize, _flagsOffset = -1, _preemptOffset = -1;

    public int Pid(ReadOnlySpan<byte> rec, bool big)
    {
        int off = _pidOffset, size = _pidSize;
        if (off < 0 || off + size > rec.Length) return 0;
        if (size == 4 && !big) return BinaryPrimitives.ReadInt32LittleEndian(rec[off..]);
        return (int)Endian.SignExtend(Endian.Read(rec.Slice(off, size), size, big), size);
    }

    /// <summary>The irq-info column raw ftrace prints (<c>d..3.</c>).</summary>
    public string? IrqFlags(ReadOnlySpan<byte> rec)
    {
        int f = _flagsOffset, p = _preemptOffset;
        if (f < 0 || p < 0 || f >= rec.Length || p >= rec.Length) return null;
        return IrqFlagsText(rec[f], rec[p]);
    }

    static readonly string?[] _flagCache = new string?[65536];

    public static string IrqFlagsText(byte flags, byte preempt)
    {
        int key = flags << 8 | preempt;
        var s = _flagCache[key];
        if (s != null) return s;
        bool nmi = (flags & 0x40) != 0, hard = (flags & 0x08) != 0, soft = (flags & 0x10) != 0, bhOff = (flags & 0x80) != 0;
        bool irqOff = (flags & 0x01) != 0;
        char c1 = irqOff && bhOff ? 'D' : irqOff ? 'd' : bhOff ? 'b' : (flags & 0x02) != 0 ? 'X' : '.';
        char c2 = (flags & 0x24) switch { 0x24 => 'N', 0x04 => 'n', 0x20 => 'p', _ => '.' };
        char c3 = nmi && hard ? 'Z' : nmi ? 'z' : hard && soft ? 'H' : hard ? 'h' : soft ? 's' : '.';
        char c4 = (preempt & 0xf) != 0 ? "0123456789abcdef"[preempt & 0xf] : '.';
        char c5 = (preempt & 0xf0) != 0 ? "0123456789abcdef"[preempt >> 4] : '.';
        s = string.Intern(new string([c1, c2, c3, c4, c5]));
        _flagCache[key] = s;
        return s;
    }

    /// <summary>Most fields <see cref="DecodeFields"/> writes for one record (one per printed field).</summary>
    public int FieldCount => _printed.Length;

    /// <summary>Evaluates the printed fields into a new array. Fields whose value cannot be computed (a helper
    /// or kernel variable not known) are left out and counted in <paramref name="stats"/>.</summary>
    public EventField[] Fields(RecordContext ctx, ReadStats stats, Kallsyms? syms)
    {
        if (_printed.Length == 0) return TraceEvent.NoFields;
        var result = new EventField[_printed.Length];
        int n = DecodeFields(ctx, stats, syms, result);
        if (n != result.Length) Array.Resize(ref result, n);
        return result;
    }

    /// <summary><see cref="DecodeFields(RecordContext, Kallsyms?, Span{EventField})"/> with the fields left out
    /// counted in <paramref name="stats"/> at once.</summary>
    public int DecodeFields(RecordContext ctx, ReadStats stats, Kallsyms? syms, Span<EventField> dst)
    {
        int n = DecodeFields(ctx, syms, dst);
        if (n < _printed.Length) FlushStats(stats);
        return n;
    }

    /// <summary>
    /// The one field decoder of both binary readers: evaluates the printed fields of the record in
    /// <paramref name="ctx"/> into <paramref name="dst"/> (at least <see cref="FieldCount"/> long) and returns
    /// how many it wrote. Integer fields read straight from the record allocate nothing; strings come from
    /// caches (symbolic and flag names, per-field dedupe of joined text, <see cref="StringCache"/>), so a value
    /// seen before costs no allocation. Fields whose value cannot be computed (a helper or kernel variable not
    /// known) are left out and counted here until <see cref="FlushStats"/> adds the counts to the reader's
    /// stats (a dictionary update per event would cost more than decoding it).
    /// </summary>
    public int DecodeFields(RecordContext ctx, Kallsyms? syms, Span<EventField> dst)
    {
        var printed = _printed;
        if (dst.Length < printed.Length) throw new ArgumentException($"room for {printed.Length} fields needed", nameof(dst));
        var rec = ctx.Record;
        bool big = ctx.BigEndian;
        if (_allDirect && !big && rec.Length >= _directEnd)
        {
            var following = ctx.RecordAndFollowing;
            return following.Length >= _overreadEnd ? DecodeDirectWide(_slots, following, dst) : DecodeDirectLittleEndian(printed, rec, dst);
        }
        if (_printk != PrintkKind.None) return DecodePrintk(ctx, syms, dst);
        int n = 0;
        for (int i = 0; i < printed.Length; i++)
        {
            var p = printed[i];
            if (p.Direct != null && p.Offset + p.Size <= rec.Length)
            {
                // REC->field printed as an integer: read it straight from the record.
                ulong raw = Endian.Read(rec.Slice(p.Offset, p.Size), p.Size, big);
                dst[n++] = new EventField(p.Name, p.Kind, p.DirectValue(raw), null);
                continue;
            }
            if (p.MemoCache != null ? EvaluateCached(p, ctx, syms, out dst[n]) : Evaluate(p, ctx, syms, out dst[n])) n++;
            else
            {
                p.Unevaluated++;
                HasPendingStats = true;
            }
        }
        return n;
    }

    /// <summary><c>ftrace:bprint</c> / <c>ftrace:bputs</c>: <c>ip</c> as the print format prints it, then the message
    /// (<c>buf</c> / <c>str</c>) from the printk formats: bputs' string by its address, bprint's format by its address
    /// rendered with the binary arguments in the record's <c>buf</c>. One trailing newline is dropped (libtraceevent
    /// drops it from the format). An unknown address or arguments running past the record leave the message out
    /// (counted as an unevaluated field).</summary>
    int DecodePrintk(RecordContext ctx, Kallsyms? syms, Span<EventField> dst)
    {
        int n = 0;
        var ip = _printed[0];
        if (Evaluate(ip, ctx, syms, out dst[0])) n++;
        else { ip.Unevaluated++; HasPendingStats = true; }
        var msg = _printed[1];
        if (PrintkMessage(ctx, syms, msg.Text)) dst[n++] = EventField.Str(msg.Name, msg.Dedupe(msg.Text.Span));
        else { msg.Unevaluated++; HasPendingStats = true; }
        return n;
    }

    /// <summary>The trace_printk message of the record in <paramref name="ctx"/> into <paramref name="o"/>; false when
    /// it cannot be computed.</summary>
    bool PrintkMessage(RecordContext ctx, Kallsyms? syms, CharBuffer o)
    {
        o.Clear();
        var rec = ctx.Record;
        var a = _printkAddr!;
        if (a.Offset + a.Size > rec.Length || ctx.PrintkFormats is not { } formats) return false;
        ulong addr = Endian.Read(rec.Slice(a.Offset, a.Size), a.Size, ctx.BigEndian);
        if (!formats.TryGetValue(addr, out var text)) return false;
        if (_printk == PrintkKind.Bputs) o.Append(text);
        else
        {
            var b = _printkBuf!;
            if (b.Offset > rec.Length) return false;
            if (!BprintRenderer.Render(text, rec[b.Offset..], ctx.BigEndian, ctx.LongSize, syms, o)) return false;
        }
        if (o.Length > 0 && o.Span[^1] == '\n') o.Truncate(o.Length - 1);
        return true;
    }

    /// <summary>
    /// Decodes the record's fields as the last row's fields of <paramref name="block"/> (the row the reader just
    /// appended): reserves <see cref="FieldCount"/>, decodes in place, gives back what was left out. A decoder
    /// that starts holding uncounted left-out fields is added to <paramref name="pending"/>, which the reader
    /// flushes (<see cref="FlushStats"/>) before it returns to its caller.
    /// </summary>
    internal void AppendFields(EventBlock block, RecordContext ctx, Kallsyms? syms, List<EventDecoder> pending)
    {
        int max = _printed.Length;
        if (max == 0) return;
        var dst = block.AddFields(max);
        bool was = HasPendingStats;
        int got = DecodeFields(ctx, syms, dst);
        if (got == max) return;
        block.TrimLastFields(max - got);
        if (!was && HasPendingStats) pending.Add(this);
    }

    /// <summary>Fields left out since the last <see cref="FlushStats"/> are waiting to be counted.</summary>
    public bool HasPendingStats { get; private set; }

    /// <summary>Adds the fields left out so far (<c>binary.unevaluated_field.system:event.field</c>) to <paramref name="stats"/>.</summary>
    public void FlushStats(ReadStats stats)
    {
        if (!HasPendingStats) return;
        foreach (var p in _printed)
            if (p.Unevaluated > 0)
            {
                stats.Add(p.StatName ??= "binary.unevaluated_field." + Name + "." + p.Name, StatSeverity.Info, p.Unevaluated);
                p.Unevaluated = 0;
            }
        HasPendingStats = false;
    }

    /// <summary>All fields direct, little-endian, and 8 bytes readable at every field's offset (the record's
    /// buffer goes on past it): one 8-byte read per field, cut to the field's size and the conversion's width by
    /// shift pairs, no per-field branches.</summary>
    static int DecodeDirectWide(DirectSlot[] slots, ReadOnlySpan<byte> following, Span<EventField> dst)
    {
        ref byte r = ref MemoryMarshal.GetReference(following);
        for (int i = 0; i < slots.Length; i++)
        {
            ref readonly var s = ref slots[i];
            ulong x = Unsafe.ReadUnaligned<ulong>(ref Unsafe.Add(ref r, s.Offset)) << s.SizeShift;
            ulong l = x >> s.SizeShift, a = unchecked((ulong)((long)x >> s.SizeShift));
            x = (l ^ ((l ^ a) & s.FieldArith)) << s.ConvShift;
            l = x >> s.ConvShift;
            a = unchecked((ulong)((long)x >> s.ConvShift));
            dst[i] = new EventField(s.Name, s.Kind, l ^ ((l ^ a) & s.ConvArith), null);
        }
        return slots.Length;
    }

    /// <summary>All fields direct, little-endian, the record long enough for every one of them: no per-field
    /// bounds or endianness checks.</summary>
    static int DecodeDirectLittleEndian(Printed[] printed, ReadOnlySpan<byte> rec, Span<EventField> dst)
    {
        ref byte r = ref MemoryMarshal.GetReference(rec);
        for (int i = 0; i < printed.Length; i++)
        {
            var p = printed[i];
            ref byte at = ref Unsafe.Add(ref r, p.Offset);
            ulong raw = p.Size switch
            {
                8 => Unsafe.ReadUnaligned<ulong>(ref at),
                4 => Unsafe.ReadUnaligned<uint>(ref at),
                2 => Unsafe.ReadUnaligned<ushort>(ref at),
                1 => at,
                _ => Endian.Read(rec.Slice(p.Offset, p.Size), p.Size, false),
            };
            dst[i] = new EventField(p.Name, p.Kind, p.DirectValue(raw), null);
        }
        return printed.Length;
    }

    /// <summary><see cref="Evaluate"/> through the field's cache, keyed by the raw bytes of the record fields
    /// the value depends on. A field whose values rarely repeat (a pfn) turns its cache off.</summary>
    bool EvaluateCached(Printed p, RecordContext ctx, Kallsyms? syms, out EventField field)
    {
        var rec = ctx.Record;
        bool big = ctx.BigEndian;
        ulong key = 0;
        foreach (var f in p.MemoFields!)
        {
            if (f.Offset + f.Size > rec.Length) return Evaluate(p, ctx, syms, out field);
            ulong raw = Endian.Read(rec.Slice(f.Offset, f.Size), f.Size, big);
            key = f.Size >= 8 ? raw : key << (8 * f.Size) | raw;
        }
        var cache = p.MemoCache!;
        ref var m = ref cache[(int)(key * 0x9E3779B97F4A7C15UL >> 58)];
        if (m.Used && m.Key == key && m.BigEndian == big)
        {
            p.MemoHits++;
            field = m.Field;
            return m.Ok;
        }
        bool ok = Evaluate(p, ctx, syms, out field);
        m.Key = key;
        m.BigEndian = big;
        m.Ok = ok;
        m.Field = field;
        m.Used = true;
        if (++p.MemoMisses >= 4096 && p.MemoHits < p.MemoMisses)
        {
            p.MemoCache = null; // values mostly new: evaluating is cheaper than caching
            p.MemoFields = null;
        }
        return ok;
    }

    /// <summary>A printed field that is not a plain integer read: expressions, strings, joined conversions.</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    bool Evaluate(Printed p, RecordContext ctx, Kallsyms? syms, out EventField field)
    {
        if (p.Convs.Length == 1)
        {
            var v = p.Args[0].Eval(ctx);
            var c = p.Convs[0];
            if (v.Kind == ValueKind.Unknown) { field = default; return false; }
            switch (p.Type)
            {
                case FieldType.S64 when v.IsInt:
                    field = EventField.S64(p.Name, ToSigned(v.Bits, c));
                    return true;
                case FieldType.U64 when v.IsInt:
                    field = EventField.U64(p.Name, ToUnsigned(v.Bits, c), p.Style);
                    return true;
            }
            // A string as it is (the usual %s) needs no text built.
            if (v.Kind == ValueKind.Str && c.Precision < 0 && c.Width <= v.Str!.Length)
            {
                field = EventField.Str(p.Name, v.Str);
                return true;
            }
            var one = p.Text;
            one.Clear();
            AppendOne(one, v, c, syms);
            field = EventField.Str(p.Name, p.Dedupe(one.Span));
            return true;
        }
        var text = p.Text;
        text.Clear();
        for (int k = 0; k < p.Convs.Length; k++)
        {
            if (k > 0) text.Append(p.Between[k - 1]);
            var v = p.Args[k].Eval(ctx);
            if (v.Kind == ValueKind.Unknown) { field = default; return false; }
            AppendOne(text, v, p.Convs[k], syms);
        }
        field = EventField.Str(p.Name, p.Dedupe(text.Span));
        return true;
    }

    ulong _lastIp, _lastRet;
    Kallsyms? _lastSyms;
    string? _lastProbe;

    /// <summary>A kprobe's <c>__probe_ip</c> as a plain record field (the usual case): read without evaluating.</summary>
    readonly RecordField? _probeIpField;

    /// <summary>The kprobe location column, resolved through kallsyms when possible.</summary>
    public string? Probe(RecordContext ctx, Kallsyms? syms)
    {
        if (_probeIpField is { } pf)
        {
            var rec = ctx.Record;
            if (pf.Offset + pf.Size > rec.Length) return null;
            ulong ip = Endian.Read(rec.Slice(pf.Offset, pf.Size), pf.Size, ctx.BigEndian);
            if (pf.Signed) ip = unchecked((ulong)Endian.SignExtend(ip, pf.Size));
            if (ip == _lastIp && ReferenceEquals(syms, _lastSyms) && _lastProbe != null) return _lastProbe;
            _lastIp = ip;
            _lastSyms = syms;
            return _lastProbe = ProbeText(ip, syms, true);
        }
        if (_probeIp != null)
        {
            var v = _probeIp.Eval(ctx);
            if (!v.IsInt) return null;
            // A kprobe event nearly always has the same address: remember the last one.
            if (v.Bits == _lastIp && ReferenceEquals(syms, _lastSyms) && _lastProbe != null) return _lastProbe;
            _lastIp = v.Bits;
            _lastSyms = syms;
            return _lastProbe = ProbeText(v.Bits, syms, true);
        }
        if (_probeFunc != null && _probeRet != null)
        {
            var f = _probeFunc.Eval(ctx);
            var r = _probeRet.Eval(ctx);
            if (!f.IsInt || !r.IsInt) return null;
            if (f.Bits == _lastIp && r.Bits == _lastRet && ReferenceEquals(syms, _lastSyms) && _lastProbe != null) return _lastProbe;
            _lastIp = f.Bits;
            _lastRet = r.Bits;
            _lastSyms = syms;
            return _lastProbe = RetProbeText(f, r, syms);
        }
        return null;
    }

    string RetProbeText(PrintValue f, PrintValue r, Kallsyms? syms)
    {
        {
            // The kernel prints a kretprobe as "(return site+off/size <- probed function)";
            // without symbols we keep the print format's own order (function, return address).
            if (syms != null && syms.Describe(r.Bits, true) is { } ret && syms.Describe(f.Bits, false) is { } fn)
                return string.Intern(ret + " <- " + fn);
            return string.Intern(ProbeText(f.Bits, null, true) + " <- " + ProbeText(r.Bits, null, false));
        }
    }

    static string ProbeText(ulong addr, Kallsyms? syms, bool withSize)
    {
        if (syms != null)
        {
            var s = syms.Describe(addr, withSize);
            if (s != null) return s;
        }
        return StringCache.Hex(addr)[2..];
    }

    /// <summary>The whole print format rendered the way libtraceevent (<c>trace-cmd report</c>) prints it,
    /// with kprobe addresses in hex; an argument that cannot be evaluated prints as <see cref="UnknownMark"/>.</summary>
    public string? Render(RecordContext ctx, Kallsyms? syms)
    {
        var b = _render;
        b.Clear();
        if (_printk != PrintkKind.None)
        {
            var v = _printed[0].Args[0].Eval(ctx);
            if (v.Kind == ValueKind.Unknown) b.Append(UnknownMark);
            else AppendOne(b, v, _printed[0].Convs[0], syms, libtraceevent: true);
            b.Append(": ");
            var m = _printed[1].Text;
            b.Append(PrintkMessage(ctx, syms, m) ? m.Span : UnknownMark);
            return b.ToString();
        }
        for (int i = 0; i < _parts.Conversions.Length; i++)
        {
            b.Append(_parts.Literals[i]);
            if (i >= _args.Length) return null;
            var v = _args[i].Eval(ctx);
            if (v.Kind == ValueKind.Unknown) { b.Append(UnknownMark); continue; }
            AppendOne(b, v, _parts.Conversions[i], syms, libtraceevent: true);
        }
        b.Append(_parts.Literals[^1]);
        return b.ToString();
    }

    readonly CharBuffer _render = new();

    public const string UnknownMark = "<?>";

    /// <summary>True when a conversion prints a symbol (<c>%ps</c>, <c>%pS</c>): kallsyms is needed.</summary>
    public bool UsesSymbols { get; }

    public bool IsProbe { get; }

    /// <summary>For the trace.dat writer: the printed fields (name, conversions, argument expressions,
    /// literals between joined conversions) and the probe-location expressions.</summary>
    internal IEnumerable<(string Name, Conversion[] Convs, PrintExpr[] Args, string[] Between)> PrintedFields =>
        _printed.Select(p => (p.Name, p.Convs, p.Args, p.Between));
    internal (PrintExpr? Ip, PrintExpr? Func, PrintExpr? Ret) ProbeExprs => (_probeIp, _probeFunc, _probeRet);

    static long ToSigned(ulong v, Conversion c) => c.LongCount > 0 ? (long)v
        : c.Half == 'h' ? (short)v : c.Half == 'H' ? (sbyte)v : (int)v;

    static ulong ToUnsigned(ulong v, Conversion c) => c.LongCount > 0 || c.Conv == 'p' ? v
        : c.Half == 'h' ? (ushort)v : c.Half == 'H' ? (byte)v : (uint)v;

    /// <summary>Appends one value formatted with its conversion, as printf would (for joined fields, padded
    /// strings, symbols and the rendered print output).</summary>
    static void AppendOne(CharBuffer b, PrintValue v, Conversion c, Kallsyms? syms, bool libtraceevent = false)
    {
        int start = b.Length;
        if (v.Kind == ValueKind.Str)
        {
            var body = v.Str.AsSpan();
            if (c.Precision >= 0 && body.Length > c.Precision) body = body[..c.Precision];
            b.Append(body);
        }
        else
        {
            switch (c.Conv)
            {
                case 'd' or 'i': b.AppendFormatted(ToSigned(v.Bits, c), default); break;
                case 'u': b.AppendFormatted(ToUnsigned(v.Bits, c), default); break;
                case 'x': b.AppendFormatted(ToUnsigned(v.Bits, c), "x"); break;
                case 'X': b.AppendFormatted(ToUnsigned(v.Bits, c), "X"); break;
                case 'o': b.Append(Convert.ToString((long)ToUnsigned(v.Bits, c), 8)); break;
                case 'c': b.Append((char)(byte)v.Bits, 1); break;
                case 'p':
                    if (c.Ext.Length > 0 && c.Ext[0] is 's' or 'S' or 'f' or 'F' && syms != null
                        && syms.Describe(v.Bits, c.Ext[0] is 'S' or 'F') is { } sym)
                        b.Append(sym);
                    else if (c.Ext.Length > 0 || libtraceevent) { b.Append("0x"); b.AppendFormatted(v.Bits, "x"); }
                    else b.AppendFormatted(v.Bits, "x16");
                    break;
                default: b.AppendFormatted(v.Bits, default); break;
            }
        }
        int len = b.Length - start;
        if (c.Width > len)
        {
            char pad = c.ZeroPad && v.Kind == ValueKind.Int && !c.LeftAlign ? '0' : ' ';
            if (c.LeftAlign) b.Append(' ', c.Width - len);
            else b.Insert(start, pad, c.Width - len);
        }
    }
}

/// <summary>A growable char buffer formatting without allocation (the decoder's scratch text).</summary>
internal sealed class CharBuffer
{
    char[] _a = new char[128];

    public int Length { get; private set; }
    public ReadOnlySpan<char> Span => _a.AsSpan(0, Length);
    public void Clear() => Length = 0;
    public void Truncate(int length) => Length = Math.Clamp(length, 0, Length);

    void Ensure(int more)
    {
        if (Length + more > _a.Length) Array.Resize(ref _a, Math.Max(_a.Length * 2, Length + more));
    }

    public void Append(ReadOnlySpan<char> s)
    {
        Ensure(s.Length);
        s.CopyTo(_a.AsSpan(Length));
        Length += s.Length;
    }

    public void Append(char c, int count)
    {
        Ensure(count);
        _a.AsSpan(Length, count).Fill(c);
        Length += count;
    }

    public void AppendFormatted<T>(T value, ReadOnlySpan<char> format) where T : ISpanFormattable
    {
        int written;
        while (!value.TryFormat(_a.AsSpan(Length), out written, format, CultureInfo.InvariantCulture)) Ensure(_a.Length);
        Length += written;
    }

    /// <summary>Inserts <paramref name="count"/> copies of <paramref name="c"/> at <paramref name="at"/>.</summary>
    public void Insert(int at, char c, int count)
    {
        Ensure(count);
        Array.Copy(_a, at, _a, at + count, Length - at);
        _a.AsSpan(at, count).Fill(c);
        Length += count;
    }

    public override string ToString() => new(Span);
}

/// <summary>The record an expression is evaluated against, reusable across records.</summary>
public sealed class RecordContext : IRecordContext
{
    byte[] _buf = [];
    int _off, _len;
    readonly IReadOnlyDictionary<string, ulong> _symbols;

    public RecordContext(bool bigEndian, int longSize, IReadOnlyDictionary<string, ulong>? symbols)
    {
        BigEndian = bigEndian;
        LongSize = longSize;
        _symbols = symbols ?? new Dictionary<string, ulong>();
    }

    public void Set(byte[] buf, int off, int len)
    {
        if (!ReferenceEquals(_buf, buf)) _buf = buf; // pages mostly come from the same buffer: skip the write barrier
        _off = off;
        _len = len;
    }

    public ReadOnlySpan<byte> Record => _buf.AsSpan(_off, _len);
    /// <summary>The record and whatever follows it in its buffer (for reads that may run past the record's end
    /// and cut the excess off).</summary>
    internal ReadOnlySpan<byte> RecordAndFollowing => _buf.AsSpan(_off);
    public bool BigEndian { get; }
    public int LongSize { get; }
    /// <summary>The capture's printk formats (address → format or string) for <c>ftrace:bprint</c>/<c>bputs</c>.</summary>
    public IReadOnlyDictionary<ulong, string>? PrintkFormats { get; set; }
    public bool TryGetSymbolValue(string name, out ulong value)
    {
        if (_symbolsFinal && ReferenceEquals(name, _lastSymbol))
        {
            value = _lastSymbolValue;
            return _lastSymbolFound;
        }
        bool found = _symbols.TryGetValue(name, out value);
        if (_symbolsFinal)
        {
            _lastSymbol = name;
            _lastSymbolFound = found;
            _lastSymbolValue = value;
        }
        return found;
    }

    /// <summary>Says the symbol values will not change any more (the reader has learned what it could before its
    /// first event): then the last lookup is remembered, which saves a dictionary lookup per record for print
    /// arguments such as <c>vmemmap_base</c>.</summary>
    public void SymbolsAreFinal() => _symbolsFinal = true;

    bool _symbolsFinal, _lastSymbolFound;
    string? _lastSymbol;
    ulong _lastSymbolValue;
}
