using System.Globalization;
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
    readonly PrintFormatParts _parts;
    readonly PrintExpr[] _args;
    readonly PrintExpr? _probeIp, _probeFunc, _probeRet;
    /// <summary>Printed fields that could not be evaluated (unknown helper or kernel variable): name → count.</summary>
    public bool Generic { get; }

    sealed class Printed
    {
        public required string Name;
        public required Conversion[] Convs;
        public required PrintExpr[] Args;
        public required string[] Between; // literal text between consecutive conversions of a joined field
        public string? StatName;
        readonly Dictionary<string, string> _seen = new(StringComparer.Ordinal);
        string? _last;

        /// <summary>One string instance per distinct joined value (without the global intern table's cost).</summary>
        public string Dedupe(StringBuilder sb)
        {
            var last = _last;
            if (last != null && sb.Equals(last.AsSpan())) return last;
            var s = sb.ToString();
            if (_seen.TryGetValue(s, out var hit)) return _last = hit;
            if (_seen.Count < 4096) _seen[s] = s;
            return _last = s;
        }

        /// <summary>Set when the argument is a plain scalar <c>REC-&gt;field</c> printed as an integer.</summary>
        public RecordField? Direct;
        public FieldType Type;
        public FieldStyle Style;
    }

    public EventDecoder(EventFormat format)
    {
        Format = format;
        Name = string.Intern(format.FullName);
        _pid = format.Field("common_pid");
        _flags = format.Field("common_flags");
        _preempt = format.Field("common_preempt_count");
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
                pr.Direct = fr.Field;
            printed.Add(pr);
            ci += n;
        }
        _printed = printed.ToArray();
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

    public int Pid(ReadOnlySpan<byte> rec, bool big) =>
        _pid != null && _pid.Offset + _pid.Size <= rec.Length ? (int)Endian.SignExtend(Endian.Read(rec.Slice(_pid.Offset, _pid.Size), _pid.Size, big), _pid.Size) : 0;

    /// <summary>The irq-info column raw ftrace prints (<c>d..3.</c>).</summary>
    public string? IrqFlags(ReadOnlySpan<byte> rec)
    {
        if (_flags == null || _preempt == null || _flags.Offset >= rec.Length || _preempt.Offset >= rec.Length) return null;
        return IrqFlagsText(rec[_flags.Offset], rec[_preempt.Offset]);
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

    /// <summary>Evaluates the printed fields. Fields whose value cannot be computed (a helper or kernel
    /// variable not known) are left out and counted in <paramref name="stats"/>.</summary>
    public EventField[] Fields(RecordContext ctx, ReadStats stats, Kallsyms? syms)
    {
        var printed = _printed;
        if (printed.Length == 0) return TraceEvent.NoFields;
        var result = new EventField[printed.Length];
        int n = 0;
        foreach (var p in printed)
        {
            if (p.Direct is { } df)
            {
                // REC->field printed as an integer: read it straight from the record.
                var rec = ctx.Record;
                if (df.Offset + df.Size <= rec.Length)
                {
                    ulong raw = Endian.Read(rec.Slice(df.Offset, df.Size), df.Size, ctx.BigEndian);
                    if (df.Signed) raw = unchecked((ulong)Endian.SignExtend(raw, df.Size));
                    var c0 = p.Convs[0];
                    result[n++] = p.Type == FieldType.S64 ? EventField.S64(p.Name, ToSigned(raw, c0)) : EventField.U64(p.Name, ToUnsigned(raw, c0), p.Style);
                    continue;
                }
            }
            if (p.Convs.Length == 1)
            {
                var v = p.Args[0].Eval(ctx);
                var c = p.Convs[0];
                if (v.Kind == ValueKind.Unknown) { stats.Add(p.StatName ??= "binary.unevaluated_field." + Name + "." + p.Name, StatSeverity.Info); continue; }
                switch (p.Type)
                {
                    case FieldType.S64 when v.IsInt:
                        result[n++] = EventField.S64(p.Name, ToSigned(v.Bits, c));
                        continue;
                    case FieldType.U64 when v.IsInt:
                        result[n++] = EventField.U64(p.Name, ToUnsigned(v.Bits, c), p.Style);
                        continue;
                }
                result[n++] = EventField.Str(p.Name, FormatOne(v, c, syms));
            }
            else
            {
                var sb = new StringBuilder();
                bool ok = true;
                for (int k = 0; k < p.Convs.Length; k++)
                {
                    if (k > 0) sb.Append(p.Between[k - 1]);
                    var v = p.Args[k].Eval(ctx);
                    if (v.Kind == ValueKind.Unknown) { ok = false; break; }
                    sb.Append(FormatOne(v, p.Convs[k], syms));
                }
                if (!ok) { stats.Add(p.StatName ??= "binary.unevaluated_field." + Name + "." + p.Name, StatSeverity.Info); continue; }
                result[n++] = EventField.Str(p.Name, p.Dedupe(sb));
            }
        }
        if (n != result.Length) Array.Resize(ref result, n);
        return result;
    }

    ulong _lastIp, _lastRet;
    Kallsyms? _lastSyms;
    string? _lastProbe;

    /// <summary>The kprobe location column, resolved through kallsyms when possible.</summary>
    public string? Probe(RecordContext ctx, Kallsyms? syms)
    {
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
        var sb = new StringBuilder();
        for (int i = 0; i < _parts.Conversions.Length; i++)
        {
            sb.Append(_parts.Literals[i]);
            if (i >= _args.Length) return null;
            var v = _args[i].Eval(ctx);
            if (v.Kind == ValueKind.Unknown) { sb.Append(UnknownMark); continue; }
            sb.Append(FormatOne(v, _parts.Conversions[i], syms, libtraceevent: true));
        }
        sb.Append(_parts.Literals[^1]);
        return sb.ToString();
    }

    public const string UnknownMark = "<?>";

    /// <summary>True when a conversion prints a symbol (<c>%ps</c>, <c>%pS</c>): kallsyms is needed.</summary>
    public bool UsesSymbols => _usesSymbols ??= _parts.Conversions.Any(c => c.Conv == 'p' && c.Ext.Length > 0 && c.Ext[0] is 's' or 'S' or 'f' or 'F');
    bool? _usesSymbols;

    public bool IsProbe => _probeIp != null || _probeFunc != null;

    /// <summary>For the trace.dat writer: the printed fields (name, conversions, argument expressions,
    /// literals between joined conversions) and the probe-location expressions.</summary>
    internal IEnumerable<(string Name, Conversion[] Convs, PrintExpr[] Args, string[] Between)> PrintedFields =>
        _printed.Select(p => (p.Name, p.Convs, p.Args, p.Between));
    internal (PrintExpr? Ip, PrintExpr? Func, PrintExpr? Ret) ProbeExprs => (_probeIp, _probeFunc, _probeRet);

    static long ToSigned(ulong v, Conversion c) => c.LongCount > 0 ? (long)v
        : c.Half == 'h' ? (short)v : c.Half == 'H' ? (sbyte)v : (int)v;

    static ulong ToUnsigned(ulong v, Conversion c) => c.LongCount > 0 || c.Conv == 'p' ? v
        : c.Half == 'h' ? (ushort)v : c.Half == 'H' ? (byte)v : (uint)v;

    /// <summary>Formats one value with its conversion, as printf would (for joined fields and %s).</summary>
    static string FormatOne(PrintValue v, Conversion c, Kallsyms? syms, bool libtraceevent = false)
    {
        string body;
        if (v.Kind == ValueKind.Str)
        {
            body = v.Str!;
            if (c.Precision >= 0 && body.Length > c.Precision) body = body[..c.Precision];
        }
        else
        {
            switch (c.Conv)
            {
                case 'd' or 'i': body = ToSigned(v.Bits, c).ToString(CultureInfo.InvariantCulture); break;
                case 'u': body = ToUnsigned(v.Bits, c).ToString(CultureInfo.InvariantCulture); break;
                case 'x': body = ToUnsigned(v.Bits, c).ToString("x", CultureInfo.InvariantCulture); break;
                case 'X': body = ToUnsigned(v.Bits, c).ToString("X", CultureInfo.InvariantCulture); break;
                case 'o': body = Convert.ToString((long)ToUnsigned(v.Bits, c), 8); break;
                case 'c': body = ((char)(byte)v.Bits).ToString(); break;
                case 'p':
                    if (c.Ext.Length > 0 && c.Ext[0] is 's' or 'S' or 'f' or 'F' && syms != null)
                        body = syms.Describe(v.Bits, c.Ext[0] is 'S' or 'F') ?? "0x" + v.Bits.ToString("x", CultureInfo.InvariantCulture);
                    else body = c.Ext.Length > 0 || libtraceevent ? "0x" + v.Bits.ToString("x", CultureInfo.InvariantCulture) : v.Bits.ToString("x16", CultureInfo.InvariantCulture);
                    break;
                default: body = v.Bits.ToString(CultureInfo.InvariantCulture); break;
            }
        }
        if (c.Width > body.Length)
        {
            char pad = c.ZeroPad && v.Kind == ValueKind.Int && !c.LeftAlign ? '0' : ' ';
            body = c.LeftAlign ? body.PadRight(c.Width) : body.PadLeft(c.Width, pad);
        }
        return body;
    }
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

    public void Set(byte[] buf, int off, int len) { _buf = buf; _off = off; _len = len; }

    public ReadOnlySpan<byte> Record => _buf.AsSpan(_off, _len);
    public bool BigEndian { get; }
    public int LongSize { get; }
    public bool TryGetSymbolValue(string name, out ulong value) => _symbols.TryGetValue(name, out value);
}
