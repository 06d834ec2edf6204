using System.Globalization;

namespace Replayer.Formats.Binary;

/// <summary>
/// <c>/proc/kallsyms</c> as stored in a capture: resolves an address to <c>func+0xoff/0xsize</c>
/// the way the kernel's <c>%pS</c> prints it (size = distance to the next symbol).
/// </summary>
public sealed class Kallsyms
{
    readonly ulong[] _addr;
    readonly int[] _nameOff;
    readonly byte[] _text;
    readonly Dictionary<ulong, string> _cacheSized = new(), _cacheBare = new();

    public int Count => _addr.Length;

    /// <summary>The kallsyms text this was parsed from (the trace.dat writer embeds it again).</summary>
    public string Text => System.Text.Encoding.UTF8.GetString(_text);

    Kallsyms(ulong[] addr, int[] nameOff, byte[] text)
    {
        _addr = addr;
        _nameOff = nameOff;
        _text = text;
    }

    /// <summary>Parses kallsyms text (<c>addr type name [module]</c> per line). Malformed lines are skipped
    /// and counted in <paramref name="badLines"/>; returns null when no symbol has a non-zero address
    /// (kptr_restrict hides them all). Names are kept as offsets into the text until asked for.</summary>
    public static Kallsyms? Parse(ReadOnlySpan<byte> text, out int badLines)
    {
        badLines = 0;
        var copy = text.ToArray();
        var addrs = new List<ulong>(copy.Length / 40);
        var offs = new List<int>(copy.Length / 40);
        int pos = 0;
        while (pos < copy.Length)
        {
            int nl = Array.IndexOf(copy, (byte)'\n', pos);
            int end = nl < 0 ? copy.Length : nl;
            var line = copy.AsSpan(pos, end - pos);
            int lineStart = pos;
            pos = end + 1;
            if (line.Length == 0) continue;
            if (!System.Buffers.Text.Utf8Parser.TryParse(line, out ulong addr, out int used, 'x') || used >= line.Length - 3
                || line[used] != (byte)' ' || line[used + 2] != (byte)' ')
            { badLines++; continue; }
            char type = (char)line[used + 1];
            int nameAt = used + 3;
            if (nameAt >= line.Length || line[nameAt] is (byte)' ' or (byte)'\t') { badLines++; continue; }
            if (addr == 0) continue;
            if (type is 't' or 'T' or 'w' or 'W' or 'd' or 'D' or 'b' or 'B' or 'r' or 'R' or 'a' or 'A' or 'v' or 'V')
            {
                addrs.Add(addr);
                offs.Add(lineStart + nameAt);
            }
        }
        if (addrs.Count == 0) return null;
        var a = addrs.ToArray();
        var o = offs.ToArray();
        Array.Sort(a, o);
        return new Kallsyms(a, o, copy);
    }

    string NameAt(int i)
    {
        int st = _nameOff[i], e = st;
        while (e < _text.Length && _text[e] is not ((byte)'\n' or (byte)' ' or (byte)'\t')) e++;
        return System.Text.Encoding.UTF8.GetString(_text, st, e - st);
    }

    /// <summary><c>func+0xoff/0xsize</c> (or <c>func</c> when <paramref name="withOffset"/> is false), or null.</summary>
    public string? Describe(ulong addr, bool withOffset)
    {
        var cache = withOffset ? _cacheSized : _cacheBare;
        lock (cache)
            if (cache.TryGetValue(addr, out var hit)) return hit;
        int i = Array.BinarySearch(_addr, addr);
        if (i < 0) i = ~i - 1;
        if (i < 0) return null;
        // Several names may share an address: take the first in sorted order (stable by input).
        while (i > 0 && _addr[i - 1] == _addr[i]) i--;
        int next = i + 1;
        while (next < _addr.Length && _addr[next] == _addr[i]) next++;
        if (next >= _addr.Length) return null; // past the last symbol: size unknown
        ulong off = addr - _addr[i], size = _addr[next] - _addr[i];
        string s = withOffset
            ? string.Intern($"{NameAt(i)}+0x{off:x}/0x{size:x}")
            : string.Intern(NameAt(i));
        lock (cache)
            if (cache.Count < 1 << 16) cache[addr] = s;
        return s;
    }
}
