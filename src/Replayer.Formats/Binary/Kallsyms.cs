using System.Globalization;

namespace Replayer.Formats.Binary;

/// <summary>
/// <c>/proc/kallsyms</c> as stored in a capture: resolves an address to <c>func+0xoff/0xsize</c>
/// the way the kernel's <c>%pS</c> prints it (size = distance to the next symbol).
/// </summary>
public sealed class Kallsyms
{
    readonly ulong[] _addr;
    readonly string[] _name;
    readonly Dictionary<string, ulong> _byName;
    readonly Dictionary<ulong, string> _cacheSized = new(), _cacheBare = new();

    public int Count => _addr.Length;

    Kallsyms(ulong[] addr, string[] name, Dictionary<string, ulong> byName)
    {
        _addr = addr;
        _name = name;
        _byName = byName;
    }

    /// <summary>Parses kallsyms text (<c>addr type name [module]</c> per line). Malformed lines are skipped
    /// and counted in <paramref name="badLines"/>; returns null when no symbol has a non-zero address
    /// (kptr_restrict hides them all).</summary>
    public static Kallsyms? Parse(ReadOnlySpan<byte> text, out int badLines)
    {
        badLines = 0;
        var list = new List<(ulong Addr, string Name)>();
        var byName = new Dictionary<string, ulong>(StringComparer.Ordinal);
        while (text.Length > 0)
        {
            int nl = text.IndexOf((byte)'\n');
            var line = nl < 0 ? text : text[..nl];
            text = nl < 0 ? default : text[(nl + 1)..];
            if (line.Length == 0) continue;
            int sp1 = line.IndexOf((byte)' ');
            if (sp1 <= 0 || !ulong.TryParse(System.Text.Encoding.ASCII.GetString(line[..sp1]), NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out ulong addr))
            { badLines++; continue; }
            var rest = line[(sp1 + 1)..];
            if (rest.Length < 3 || rest[1] != (byte)' ') { badLines++; continue; }
            char type = (char)rest[0];
            var nameSpan = rest[2..];
            int end = nameSpan.IndexOfAny((byte)'\t', (byte)' ');
            if (end >= 0) nameSpan = nameSpan[..end];
            if (nameSpan.Length == 0) { badLines++; continue; }
            string name = System.Text.Encoding.UTF8.GetString(nameSpan);
            byName.TryAdd(name, addr);
            if (addr == 0) continue;
            // Sizes come from the next symbol of any kind, as the kernel's own lookup does for text.
            if (type is 't' or 'T' or 'w' or 'W' or 'd' or 'D' or 'b' or 'B' or 'r' or 'R' or 'a' or 'A' or 'v' or 'V')
                list.Add((addr, name));
        }
        if (list.Count == 0) return null;
        list.Sort((a, b) => a.Addr.CompareTo(b.Addr));
        return new Kallsyms(list.Select(x => x.Addr).ToArray(), list.Select(x => x.Name).ToArray(), byName);
    }

    /// <summary>Address of a symbol (not its value).</summary>
    public bool TryGetAddress(string name, out ulong addr) => _byName.TryGetValue(name, out addr);

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
            ? string.Intern($"{_name[i]}+0x{off:x}/0x{size:x}")
            : string.Intern(_name[i]);
        lock (cache)
            if (cache.Count < 1 << 16) cache[addr] = s;
        return s;
    }
}
