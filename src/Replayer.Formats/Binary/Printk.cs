using System.Globalization;
using System.Text;

namespace Replayer.Formats.Binary;

/// <summary>
/// trace.dat's printk formats (<c>/sys/kernel/tracing/printk_formats</c>: one <c>0xADDR : "format"</c> line per
/// <c>trace_printk()</c> format or <c>trace_puts()</c> string the kernel knows) → address → string.
/// </summary>
public static class PrintkFormats
{
    /// <summary>Parses the section's text. The kernel escapes newline, tab and quote (<c>\n</c>, <c>\t</c>,
    /// <c>\"</c>) and writes a backslash as itself; those are decoded, any other backslash is kept. Lines that are
    /// not <c>ADDR : "…"</c> are counted in <paramref name="bad"/> and skipped; a later line for an address
    /// replaces an earlier one.</summary>
    public static Dictionary<ulong, string> Parse(ReadOnlySpan<byte> data, out int bad)
    {
        bad = 0;
        var map = new Dictionary<ulong, string>();
        var sb = new StringBuilder();
        while (data.Length > 0)
        {
            int nl = data.IndexOf((byte)'\n');
            var line = nl < 0 ? data : data[..nl];
            data = nl < 0 ? default : data[(nl + 1)..];
            line = line.TrimEnd((byte)'\r');
            if (line.Trim((byte)' ').Length == 0) continue;
            int colon = line.IndexOf((byte)':');
            if (colon <= 0) { bad++; continue; }
            var addr = line[..colon].Trim((byte)' ');
            if (addr.Length > 2 && addr[0] == (byte)'0' && (addr[1] | 0x20) == (byte)'x') addr = addr[2..];
            if (addr.Length is 0 or > 16 || !ulong.TryParse(addr, NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out ulong a))
            {
                bad++;
                continue;
            }
            var text = line[(colon + 1)..].Trim((byte)' ');
            if (text.Length < 2 || text[0] != (byte)'"' || text[^1] != (byte)'"') { bad++; continue; }
            map[a] = Unescape(Encoding.UTF8.GetString(text[1..^1]), sb);
        }
        return map;
    }

    static string Unescape(string s, StringBuilder sb)
    {
        if (s.IndexOf('\\') < 0) return s;
        sb.Clear();
        for (int i = 0; i < s.Length; i++)
        {
            char c = s[i];
            if (c != '\\' || i + 1 == s.Length) { sb.Append(c); continue; }
            char n = s[i + 1];
            switch (n)
            {
                case 'n': sb.Append('\n'); i++; break;
                case 't': sb.Append('\t'); i++; break;
                case 'r': sb.Append('\r'); i++; break;
                case '"': sb.Append('"'); i++; break;
                case '\\': sb.Append('\\'); i++; break;
                default: sb.Append(c); break;
            }
        }
        return sb.ToString();
    }
}

/// <summary>
/// Renders a <c>trace_printk()</c> message from its format and the binary arguments the kernel's
/// <c>vbin_printf</c> stored in a <c>ftrace:bprint</c> record's <c>buf</c> (lib/vsprintf.c): each argument at
/// its natural alignment within buf (char 1, short 2, int 4; 8-byte values at 4), its size from the conversion's
/// length modifier (<c>hh</c> 1, <c>h</c> 2, none 4, <c>l</c>/<c>z</c>/<c>t</c>/<c>%p</c> a long, <c>ll</c> 8,
/// <c>%c</c> 1, <c>*</c> 4), <c>%s</c> (and <c>%p</c> extensions the kernel renders when recording, e.g.
/// <c>%pM</c>) as NUL-terminated text inline.
/// </summary>
static class BprintRenderer
{
    /// <summary>Appends the message to <paramref name="o"/>; false when buf runs out before an argument does
    /// (or the format has a conversion the kernel rejects). Widths and precisions are capped at 4096 characters
    /// (the kernel's output is bounded by its trace_seq page anyway).</summary>
    public static bool Render(string fmt, ReadOnlySpan<byte> buf, bool big, int longSize, Kallsyms? syms, CharBuffer o)
    {
        int pos = 0;
        int i = 0;
        while (i < fmt.Length)
        {
            char ch = fmt[i];
            if (ch != '%')
            {
                int lit = fmt.IndexOf('%', i);
                if (lit < 0) lit = fmt.Length;
                o.Append(fmt.AsSpan(i, lit - i));
                i = lit;
                continue;
            }
            i++;
            if (i < fmt.Length && fmt[i] == '%') { o.Append('%', 1); i++; continue; }
            bool left = false, plus = false, space = false, alt = false, zero = false;
            for (; i < fmt.Length; i++)
            {
                char f = fmt[i];
                if (f == '-') left = true;
                else if (f == '+') plus = true;
                else if (f == ' ') space = true;
                else if (f == '#') alt = true;
                else if (f == '0') zero = true;
                else break;
            }
            int width = -1, prec = -1;
            if (i < fmt.Length && fmt[i] == '*')
            {
                if (!ReadInt(buf, ref pos, 4, big, out ulong w)) return false;
                width = (int)w;
                if (width < 0) { left = true; width = -width; }
                i++;
            }
            else
            {
                while (i < fmt.Length && char.IsAsciiDigit(fmt[i])) width = Math.Min(Math.Max(width, 0) * 10 + (fmt[i++] - '0'), 4096);
            }
            if (i < fmt.Length && fmt[i] == '.')
            {
                i++;
                prec = 0;
                if (i < fmt.Length && fmt[i] == '*')
                {
                    if (!ReadInt(buf, ref pos, 4, big, out ulong p)) return false;
                    prec = (int)p < 0 ? -1 : (int)p; // a negative precision counts as none, as in printf
                    i++;
                }
                else
                    while (i < fmt.Length && char.IsAsciiDigit(fmt[i])) prec = Math.Min(prec * 10 + (fmt[i++] - '0'), 4096);
            }
            width = Math.Min(width, 4096);
            prec = Math.Min(prec, 4096);
            int size = 4;
            if (i < fmt.Length)
            {
                char q = fmt[i];
                if (q == 'h')
                {
                    size = 2; i++;
                    if (i < fmt.Length && fmt[i] == 'h') { size = 1; i++; }
                }
                else if (q == 'l')
                {
                    size = longSize; i++;
                    if (i < fmt.Length && fmt[i] == 'l') { size = 8; i++; }
                }
                else if (q is 'L' or 'q' or 'j') { size = 8; i++; }
                else if (q is 'z' or 'Z' or 't') { size = longSize; i++; }
            }
            if (i >= fmt.Length) return false;
            char conv = fmt[i++];
            int start = o.Length;
            bool numeric = false;
            switch (conv)
            {
                case 'c':
                {
                    if (!ReadInt(buf, ref pos, 1, big, out ulong c)) return false;
                    o.Append((char)(byte)c, 1);
                    break;
                }
                case 's':
                {
                    if (!ReadString(buf, ref pos, out var s)) return false;
                    if (prec >= 0 && s.Length > prec) s = s[..prec];
                    AppendLatin(o, s);
                    break;
                }
                case 'p':
                {
                    int es = i;
                    while (i < fmt.Length && char.IsAsciiLetterOrDigit(fmt[i])) i++;
                    var ext = fmt.AsSpan(es, i - es);
                    char e0 = ext.Length > 0 ? ext[0] : '\0';
                    if (ext.Length > 0 && e0 is not ('S' or 's' or 'x' or 'K' or 'e' or 'f' or 'F'))
                    {
                        // rendered by the kernel when recorded: the text is in buf
                        if (!ReadString(buf, ref pos, out var r)) return false;
                        AppendLatin(o, r);
                        break;
                    }
                    if (!ReadInt(buf, ref pos, longSize, big, out ulong v)) return false;
                    if (e0 is 'S' or 's' or 'f' or 'F' && syms?.Describe(v, e0 is 'S' or 'F') is { } sym) o.Append(sym);
                    else if (e0 == 'x') { o.AppendFormatted(v, longSize == 4 ? "x8" : "x16"); }
                    else { o.Append("0x"); o.AppendFormatted(v, "x"); }
                    break;
                }
                case 'd' or 'i' or 'u' or 'x' or 'X' or 'o':
                {
                    if (!ReadInt(buf, ref pos, size, big, out ulong raw)) return false;
                    numeric = true;
                    AppendNumber(o, raw, size, conv, plus, space, alt, prec);
                    break;
                }
                default:
                    return false; // the kernel stops at an invalid conversion
            }
            int len = o.Length - start;
            if (width > len)
            {
                if (left) o.Append(' ', width - len);
                else if (zero && numeric && prec < 0)
                {
                    // zeros go after the sign or 0x prefix
                    int at = start;
                    var t = o.Span;
                    if (at < t.Length && t[at] is '-' or '+' or ' ') at++;
                    if (alt && conv is 'x' or 'X' && at + 1 < t.Length && t[at] == '0' && t[at + 1] is 'x' or 'X') at += 2;
                    o.Insert(at, '0', width - len);
                }
                else o.Insert(start, ' ', width - len);
            }
        }
        return true;
    }

    static void AppendNumber(CharBuffer o, ulong raw, int size, char conv, bool plus, bool space, bool alt, int prec)
    {
        int bits = size * 8;
        ulong u = bits >= 64 ? raw : raw & ((1UL << bits) - 1);
        bool neg = false;
        if (conv is 'd' or 'i')
        {
            long s = bits >= 64 ? (long)u : (long)(u << (64 - bits)) >> (64 - bits);
            if (s < 0) { neg = true; u = unchecked((ulong)-s); }
            if (neg) o.Append('-', 1);
            else if (plus) o.Append('+', 1);
            else if (space) o.Append(' ', 1);
        }
        else if (alt && u != 0)
        {
            if (conv == 'x') o.Append("0x");
            else if (conv == 'X') o.Append("0X");
            else if (conv == 'o') o.Append('0', 1);
        }
        int digitsAt = o.Length;
        if (prec == 0 && u == 0) return;
        switch (conv)
        {
            case 'x': o.AppendFormatted(u, "x"); break;
            case 'X': o.AppendFormatted(u, "X"); break;
            case 'o': o.Append(Convert.ToString(unchecked((long)u), 8)); break;
            default: o.AppendFormatted(u, default); break;
        }
        int nd = o.Length - digitsAt;
        if (prec > nd) o.Insert(digitsAt, '0', prec - nd);
    }

    static void AppendLatin(CharBuffer o, ReadOnlySpan<byte> s)
    {
        if (s.Length > 512) { o.Append(Encoding.UTF8.GetString(s)); return; }
        Span<char> tmp = stackalloc char[512];
        int chars = Encoding.UTF8.GetChars(s, tmp);
        o.Append(tmp[..chars]);
    }

    static bool ReadInt(ReadOnlySpan<byte> buf, ref int pos, int size, bool big, out ulong v)
    {
        int align = size >= 8 ? 4 : size;
        int at = (pos + align - 1) & ~(align - 1);
        if (at + size > buf.Length) { v = 0; return false; }
        if (size == 8)
        {
            // stored as two u32 halves in the kernel's order (the u64's own byte order)
            v = Endian.Read(buf.Slice(at, 8), 8, big);
        }
        else v = Endian.Read(buf.Slice(at, size), size, big);
        pos = at + size;
        return true;
    }

    static bool ReadString(ReadOnlySpan<byte> buf, ref int pos, out ReadOnlySpan<byte> s)
    {
        s = default;
        if (pos > buf.Length) return false;
        int z = buf[pos..].IndexOf((byte)0);
        if (z < 0) return false;
        s = buf.Slice(pos, z);
        pos += z + 1;
        return true;
    }
}
