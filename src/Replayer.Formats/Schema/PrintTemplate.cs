using System.Buffers.Text;
using System.Globalization;
using System.Text;
using Replayer.Core;

namespace Replayer.Formats.Schema;

/// <summary>Kprobe prefix of a print format: <c>(%lx) </c> or <c>(%lx &lt;- %lx) </c>.</summary>
public enum ProbeKind : byte { None = 0, Kprobe = 1, Kretprobe = 2 }

/// <summary>How the text of one conversion is written.</summary>
public enum ValueSyntax : byte
{
    /// <summary><c>%u %lu %llu</c>: unsigned decimal.</summary>
    Decimal,
    /// <summary><c>%d %ld %lld</c>: signed decimal.</summary>
    SignedDecimal,
    /// <summary><c>%x %lx %Lx</c> (the <c>0x</c> of <c>0x%lx</c> belongs to the conversion, style Hex).</summary>
    Hex,
    /// <summary><c>%p</c>: hex, with or without <c>0x</c>.</summary>
    Pointer,
    /// <summary><c>%s</c>, <c>%ps</c>, <c>__print_symbolic</c>...: text.</summary>
    String,
    /// <summary><c>%c</c>: one character.</summary>
    Char,
}

/// <summary>One printed field of a <see cref="PrintTemplate"/>.</summary>
public sealed class TemplateField
{
    public required string Name { get; init; }
    public required FieldType Type { get; init; }
    public required FieldStyle Style { get; init; }
    public required ValueSyntax Syntax { get; init; }
    /// <summary>The conversion(s) as written in the format (<c>0x%lx</c>, <c>%s%s%s</c>).</summary>
    public required string Spec { get; init; }
    /// <summary>The print argument expression, when known.</summary>
    public string? Arg { get; init; }
    public override string ToString() => $"{Name}:{Type}/{Style} '{Spec}'";
}

/// <summary>
/// A kernel print format compiled into literal segments and typed conversions:
/// <c>L0 F0 L1 F1 … Fn-1 Ln</c>. Parses payload text into <see cref="EventField"/>s and renders fields back
/// into the same text. The kprobe prefix (<c>(%lx)</c>) is not part of the segments: see <see cref="Probe"/>.
/// </summary>
public sealed class PrintTemplate
{
    public string Format { get; }
    public ProbeKind Probe { get; }
    public IReadOnlyList<string> Literals => _literals;
    public IReadOnlyList<TemplateField> Fields => _fields;
    /// <summary>How many fields <see cref="TryMatch(ReadOnlySpan{byte}, Utf8Interner, Span{EventField})"/> fills.</summary>
    public int FieldCount => _fields.Length;

    readonly string[] _literals;
    readonly byte[][] _literalBytes;
    readonly TemplateField[] _fields;
    // A %s whose end is only found by the next literal; for the last field: value runs to the end (minus the final literal).

    PrintTemplate(string format, ProbeKind probe, string[] literals, TemplateField[] fields)
    {
        Format = format;
        Probe = probe;
        _literals = literals;
        _fields = fields;
        _literalBytes = literals.Select(l => Encoding.UTF8.GetBytes(l)).ToArray();
    }

    /// <summary>Builds a template from field descriptions (used for self-describing text and synthetic schemas).</summary>
    public static PrintTemplate FromParts(string format, ProbeKind probe, string[] literals, TemplateField[] fields)
    {
        if (literals.Length != fields.Length + 1) throw new ArgumentException("need fields+1 literals");
        return new PrintTemplate(format, probe, literals, fields);
    }

    /// <summary>Compiles a print format and its argument expressions.</summary>
    public static PrintTemplate Parse(string fmt, IReadOnlyList<string>? args = null)
    {
        args ??= [];
        string original = fmt;
        var probe = ProbeKind.None;
        int argBase = 0;
        if (fmt.StartsWith("(%lx <- %lx)", StringComparison.Ordinal))
        {
            probe = ProbeKind.Kretprobe; fmt = fmt["(%lx <- %lx)".Length..]; argBase = 2;
            if (fmt.StartsWith(' ')) fmt = fmt[1..];
        }
        else if (fmt.StartsWith("(%lx)", StringComparison.Ordinal))
        {
            probe = ProbeKind.Kprobe; fmt = fmt["(%lx)".Length..]; argBase = 1;
            if (fmt.StartsWith(' ')) fmt = fmt[1..];
        }
        // trailing newline of trace_printk-style formats is not part of a line's text
        fmt = fmt.TrimEnd('\n');

        var literals = new List<string>();
        var convs = new List<(string Spec, char Conv, string Length, string Flags, string? Arg)>();
        var lit = new StringBuilder();
        int argIndex = argBase;
        int i = 0;
        while (i < fmt.Length)
        {
            char c = fmt[i];
            if (c != '%') { lit.Append(c); i++; continue; }
            if (i + 1 < fmt.Length && fmt[i + 1] == '%') { lit.Append('%'); i += 2; continue; }
            int start = i++;
            string flags = "";
            while (i < fmt.Length && "-+ #0".IndexOf(fmt[i]) >= 0) flags += fmt[i++];
            while (i < fmt.Length && (char.IsDigit(fmt[i]) || fmt[i] == '*'))
            {
                if (fmt[i] == '*') argIndex++;
                i++;
            }
            if (i < fmt.Length && fmt[i] == '.')
            {
                i++;
                while (i < fmt.Length && (char.IsDigit(fmt[i]) || fmt[i] == '*'))
                {
                    if (fmt[i] == '*') argIndex++;
                    i++;
                }
            }
            string len = "";
            while (i < fmt.Length && "hlLqjzt".IndexOf(fmt[i]) >= 0) len += fmt[i++];
            if (i >= fmt.Length) { lit.Append(fmt, start, i - start); break; }
            char conv = fmt[i++];
            if (conv == 'p' && i < fmt.Length && "sSFfBKGaUMmIiVxhbdDNEeRrOo".IndexOf(fmt[i]) >= 0)
            {
                // %ps %pS %pF %pB %pK %pGp %pad %pI4 ...: the kernel's pointer extensions
                char ext = fmt[i++];
                if (ext is 'G' or 'a' or 'U' or 'M' or 'h' or 'b' or 'E' or 'O' or 'd' or 'D' or 'N')
                { if (i < fmt.Length && char.IsAsciiLetter(fmt[i])) i++; }
                else if (ext is 'I' or 'i')
                { while (i < fmt.Length && char.IsAsciiLetterOrDigit(fmt[i])) i++; }
                else if (ext is 's' or 'S' && i < fmt.Length && fmt[i] is 'R' or 'b') i++;
            }
            string spec = fmt[start..i];
            literals.Add(lit.ToString());
            lit.Clear();
            string? arg = argIndex < args.Count ? args[argIndex] : null;
            argIndex++;
            convs.Add((spec, conv, len, flags, arg));
        }
        literals.Add(lit.ToString());

        // Merge runs of string conversions with nothing between them (%s%s%s...) into one field.
        var mLits = new List<string> { literals[0] };
        var mFields = new List<(string Spec, ValueSyntax Syn, FieldType Type, FieldStyle Style, string? Arg, bool Pfx0x)>();
        for (int k = 0; k < convs.Count; k++)
        {
            var (spec, conv, len, flags, arg) = convs[k];
            var (syn, type, style) = Classify(spec, conv, flags);
            bool had0x = false;
            if (syn == ValueSyntax.Hex)
            {
                var prev = mLits[^1];
                if (prev.EndsWith("0x", StringComparison.Ordinal)) { mLits[^1] = prev[..^2]; style = FieldStyle.Hex; had0x = true; }
                else if (flags.Contains('#')) style = FieldStyle.Hex;
            }
            // "dev %d:%d": a device number printed as MAJOR:MINOR is one string field ("254:0"), named by the word before it
            if (syn is ValueSyntax.SignedDecimal or ValueSyntax.Decimal && mLits[^1] == ":" && mFields.Count > 0
                && mFields[^1].Syn is ValueSyntax.SignedDecimal or ValueSyntax.Decimal
                && NameFromLiteral(mLits[^2], out bool isWord) != null && isWord)
            {
                var p = mFields[^1];
                mFields[^1] = (p.Spec + ":" + spec, ValueSyntax.String, FieldType.Str, FieldStyle.Decimal, p.Arg, false);
                mLits.RemoveAt(mLits.Count - 1);
                mLits.Add(literals[k + 1]);
                continue;
            }
            if (syn == ValueSyntax.String && mFields.Count > 0 && mFields[^1].Syn == ValueSyntax.String && mLits[^1].Length == 0)
            {
                var p = mFields[^1];
                mFields[^1] = (p.Spec + spec, p.Syn, p.Type, p.Style, p.Arg, p.Pfx0x);
                mLits[^1] = literals[k + 1];
                continue;
            }
            mFields.Add(((had0x ? "0x" : "") + spec, syn, type, style, arg, had0x));
            mLits.Add(literals[k + 1]);
        }

        // Names: "name=" before the conversion; "word " before it (dev %d:%d ino %lx); else the argument expression.
        var names = new string?[mFields.Count];
        for (int k = 0; k < mFields.Count; k++)
        {
            string? n = NameFromLiteral(mLits[k], out _);
            n ??= NameFromArg(mFields[k].Arg) ?? "arg" + (k + 1).ToString(CultureInfo.InvariantCulture);
            names[k] = n;
        }
        var seen = new Dictionary<string, int>(StringComparer.Ordinal);
        var fields = new TemplateField[mFields.Count];
        for (int k = 0; k < mFields.Count; k++)
        {
            string n = names[k]!;
            if (seen.TryGetValue(n, out int cnt)) { seen[n] = cnt + 1; n = n + "_" + (cnt + 1).ToString(CultureInfo.InvariantCulture); }
            else seen[n] = 1;
            var f = mFields[k];
            fields[k] = new TemplateField { Name = string.Intern(n), Type = f.Type, Style = f.Style, Syntax = f.Syn, Spec = f.Spec, Arg = f.Arg };
        }
        return new PrintTemplate(original, probe, mLits.ToArray(), fields);
    }

    static (ValueSyntax, FieldType, FieldStyle) Classify(string spec, char conv, string flags)
    {
        switch (conv)
        {
            case 'd': case 'i': return (ValueSyntax.SignedDecimal, FieldType.S64, FieldStyle.Decimal);
            case 'u': return (ValueSyntax.Decimal, FieldType.U64, FieldStyle.Decimal);
            case 'x': case 'X': return (ValueSyntax.Hex, FieldType.U64, flags.Contains('#') ? FieldStyle.Hex : FieldStyle.BareHex);
            case 'o': return (ValueSyntax.String, FieldType.Str, FieldStyle.Decimal);
            case 'c': return (ValueSyntax.Char, FieldType.Str, FieldStyle.Decimal);
            case 's': return (ValueSyntax.String, FieldType.Str, FieldStyle.Decimal);
            case 'p':
                if (spec.EndsWith('p') || spec.EndsWith("pK", StringComparison.Ordinal) || spec.EndsWith("px", StringComparison.Ordinal))
                    return (ValueSyntax.Pointer, FieldType.U64, FieldStyle.Pointer);
                return (ValueSyntax.String, FieldType.Str, FieldStyle.Decimal); // %ps %pS %pGp %pU ...
            default: return (ValueSyntax.String, FieldType.Str, FieldStyle.Decimal);
        }
    }

    static bool IsIdent(char c) => char.IsAsciiLetterOrDigit(c) || c == '_';

    static string? NameFromLiteral(string lit, out bool word)
    {
        word = false;
        if (lit.EndsWith('='))
        {
            int e = lit.Length - 1, s = e;
            while (s > 0 && (IsIdent(lit[s - 1]) || lit[s - 1] == '.' || lit[s - 1] == '-' && s - 1 > 0 && IsIdent(lit[s - 2]))) s--;
            while (s < e && !IsIdent(lit[s])) s++;
            return s < e ? lit[s..e] : null;
        }
        if (lit.EndsWith(": ", StringComparison.Ordinal) || lit.EndsWith(':'))
        {
            // "name: %d" style
            var t = lit.TrimEnd(' ').TrimEnd(':');
            int e = t.Length, s = e;
            while (s > 0 && IsIdent(t[s - 1])) s--;
            if (s < e && (s == 0 || t[s - 1] == ' ' || t[s - 1] == ',')) { word = true; return t[s..e]; }
            return null;
        }
        if (lit.EndsWith(' '))
        {
            var t = lit.TrimEnd(' ');
            int e = t.Length, s = e;
            while (s > 0 && IsIdent(t[s - 1])) s--;
            if (s < e && (s == 0 || t[s - 1] == ' ' || t[s - 1] == ',') && !char.IsDigit(t[s])) { word = true; return t[s..e]; }
        }
        return null;
    }

    static string? NameFromArg(string? arg)
    {
        if (arg == null) return null;
        int p = arg.LastIndexOf("REC->", StringComparison.Ordinal);
        if (p < 0)
        {
            // bare identifier
            var t = arg.Trim();
            return t.Length > 0 && t.All(IsIdent) && !char.IsDigit(t[0]) ? t : null;
        }
        // the first REC-> field named in the expression is the most telling (REC->pfn != -1UL ? ... : 0)
        p = arg.IndexOf("REC->", StringComparison.Ordinal);
        int s = p + 5, e = s;
        while (e < arg.Length && IsIdent(arg[e])) e++;
        return e > s ? arg[s..e] : null;
    }

    /// <summary>True if the fields (names and integer/string kinds, in order) are the ones this template prints.</summary>
    public bool Fits(ReadOnlySpan<EventField> fields)
    {
        if (fields.Length != _fields.Length) return false;
        for (int i = 0; i < fields.Length; i++)
        {
            var t = _fields[i];
            if (fields[i].Name != t.Name) return false;
            if ((fields[i].Type == FieldType.Str) != (t.Type == FieldType.Str)) return false;
            if (t.Syntax == ValueSyntax.Char && (fields[i].Text?.Length ?? 0) != 1) return false;
            if (t.Type != FieldType.S64 && t.Syntax != ValueSyntax.String && t.Syntax != ValueSyntax.Char
                && fields[i].Type == FieldType.S64 && fields[i].AsS64 < 0 && t.Syntax != ValueSyntax.Decimal) return false;
        }
        return true;
    }

    /// <summary>
    /// Parses <paramref name="text"/> (the payload after the probe prefix) against this template.
    /// Returns null when the text does not have this shape. Trailing blanks after the last literal are allowed.
    /// </summary>
    public EventField[]? TryMatch(ReadOnlySpan<byte> text, Utf8Interner interner)
    {
        var res = _fields.Length == 0 ? TraceEvent.NoFields : new EventField[_fields.Length];
        return TryMatch(text, interner, res) ? res : null;
    }

    /// <summary>
    /// <see cref="TryMatch(ReadOnlySpan{byte}, Utf8Interner)"/> into <paramref name="res"/>, which holds exactly
    /// <see cref="Fields"/>.Count fields (e.g. a block's reserved fields): no allocation. On false the contents of
    /// <paramref name="res"/> are unspecified.
    /// </summary>
    public bool TryMatch(ReadOnlySpan<byte> text, Utf8Interner interner, Span<EventField> res)
    {
        if (res.Length != _fields.Length) throw new ArgumentException($"need {_fields.Length} fields, got {res.Length}", nameof(res));
        int pos = 0;
        var lits = _literalBytes;
        if (!text.StartsWith(lits[0])) return false;
        pos = lits[0].Length;
        int n = _fields.Length;
        for (int k = 0; k < n; k++)
        {
            var f = _fields[k];
            var next = lits[k + 1];
            bool last = k == n - 1;
            var rest = text[pos..];
            int consumed;
            switch (f.Syntax)
            {
                case ValueSyntax.String:
                {
                    int end;
                    if (last)
                    {
                        if (next.Length == 0) end = rest.Length;
                        else
                        {
                            var trimmed = rest.TrimEnd((byte)' ');
                            if (!trimmed.EndsWith(next)) { int j = rest.LastIndexOf(next); if (j < 0) return false; end = j; }
                            else end = trimmed.Length - next.Length;
                        }
                    }
                    else if (next.Length == 0)
                    {
                        end = rest.IndexOf((byte)' ');
                        if (end < 0) end = rest.Length;
                    }
                    else
                    {
                        end = rest.IndexOf(next);
                        if (end < 0) return false;
                    }
                    res[k] = EventField.Str(f.Name, interner.Get(rest[..end]));
                    consumed = end;
                    break;
                }
                case ValueSyntax.Char:
                {
                    if (rest.Length == 0) return false;
                    int len = Utf8CharLength(rest[0]);
                    if (len > rest.Length) return false;
                    res[k] = EventField.Str(f.Name, interner.Get(rest[..len]));
                    consumed = len;
                    break;
                }
                default:
                    if (!TryParseInt(rest, f, out res[k], out consumed)) return false;
                    break;
            }
            pos += consumed;
            if (!text[pos..].StartsWith(next)) return false;
            pos += next.Length;
        }
        for (; pos < text.Length; pos++)
            if (text[pos] != (byte)' ' && text[pos] != (byte)'\t') return false;
        return true;
    }

    static int Utf8CharLength(byte b) => b < 0x80 ? 1 : b >= 0xF0 ? 4 : b >= 0xE0 ? 3 : b >= 0xC0 ? 2 : 1;

    static bool TryParseInt(ReadOnlySpan<byte> s, TemplateField f, out EventField field, out int consumed)
    {
        field = default;
        consumed = 0;
        int i = 0;
        bool neg = false;
        if (s.Length > 0 && s[0] == (byte)'-') { neg = true; i = 1; }
        bool hexPrefix = s.Length >= i + 2 && s[i] == (byte)'0' && (s[i + 1] | 0x20) == (byte)'x';
        bool hex = f.Syntax is ValueSyntax.Hex or ValueSyntax.Pointer || hexPrefix;
        if (hexPrefix) i += 2;
        int startDigits = i;
        ulong v = 0;
        if (hex)
        {
            while (i < s.Length)
            {
                int d = HexVal(s[i]);
                if (d < 0) break;
                if (i - startDigits >= 16) return false;
                v = (v << 4) | (uint)d;
                i++;
            }
        }
        else
        {
            while (i < s.Length && (uint)(s[i] - '0') <= 9)
            {
                ulong nv = v * 10 + (uint)(s[i] - '0');
                if (v > ulong.MaxValue / 10 || nv < v * 10) return false;
                v = nv;
                i++;
            }
        }
        if (i == startDigits) return false;
        // "0x%lx": the 0x is part of the value's syntax; a decimal number here is another kernel's format
        if (f.Syntax == ValueSyntax.Hex && f.Style == FieldStyle.Hex && f.Spec.StartsWith("0x", StringComparison.Ordinal) && !hexPrefix) return false;
        consumed = i;
        if (neg)
        {
            if (v > (ulong)long.MaxValue + 1) return false;
            field = EventField.S64(f.Name, unchecked(-(long)v));
            return true;
        }
        if (f.Type == FieldType.S64 && !hexPrefix && v <= long.MaxValue)
            field = EventField.S64(f.Name, (long)v);
        else
        {
            var style = f.Style;
            if (hexPrefix && f.Syntax is ValueSyntax.Decimal or ValueSyntax.SignedDecimal) style = FieldStyle.Hex;
            field = EventField.U64(f.Name, v, style);
        }
        return true;
    }

    static int HexVal(byte b)
    {
        uint d = (uint)(b - '0');
        if (d <= 9) return (int)d;
        uint l = (uint)((b | 0x20) - 'a');
        return l <= 5 ? (int)l + 10 : -1;
    }

    /// <summary>Writes the fields the way this template prints them (without the probe prefix).</summary>
    public void Render(StringBuilder sb, ReadOnlySpan<EventField> fields)
    {
        sb.Append(_literals[0]);
        for (int k = 0; k < _fields.Length; k++)
        {
            var t = _fields[k];
            var f = fields[k];
            switch (t.Syntax)
            {
                case ValueSyntax.String:
                case ValueSyntax.Char:
                    sb.Append(f.Type == FieldType.Str ? f.Text : f.FormatValue());
                    break;
                case ValueSyntax.Hex:
                    if (t.Style == FieldStyle.Hex) sb.Append("0x");
                    if (f.Type == FieldType.S64 && f.AsS64 < 0) { sb.Append(f.AsS64.ToString(CultureInfo.InvariantCulture)); break; }
                    sb.Append(f.Bits.ToString("x", CultureInfo.InvariantCulture));
                    break;
                case ValueSyntax.Pointer:
                    if (f.Type == FieldType.S64 && f.AsS64 < 0) { sb.Append(f.AsS64.ToString(CultureInfo.InvariantCulture)); break; }
                    sb.Append(f.Bits.ToString("x16", CultureInfo.InvariantCulture));
                    break;
                default:
                    if (f.Type == FieldType.S64) sb.Append(f.AsS64.ToString(CultureInfo.InvariantCulture));
                    else if (f.Style == FieldStyle.Hex) sb.Append("0x").Append(f.Bits.ToString("x", CultureInfo.InvariantCulture));
                    else sb.Append(f.Bits.ToString(CultureInfo.InvariantCulture));
                    break;
            }
            sb.Append(_literals[k + 1]);
        }
    }

    public override string ToString() => Format;
}
