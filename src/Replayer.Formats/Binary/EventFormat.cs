using System.Globalization;
using Replayer.Core;

namespace Replayer.Formats.Binary;

/// <summary>One field of an event's binary record, as a kernel <c>format</c> file declares it.</summary>
public sealed class RecordField
{
    public required string Name { get; init; }
    public required string Type { get; init; }
    public int Offset { get; init; }
    public int Size { get; init; }
    public bool Signed { get; init; }
    /// <summary><c>__data_loc</c>: the field holds (len &lt;&lt; 16 | offset) of dynamic data.</summary>
    public bool DataLoc { get; init; }
    /// <summary><c>__rel_loc</c>: like data_loc, offset relative to the end of the field.</summary>
    public bool RelLoc { get; init; }
    /// <summary>Fixed-size array (<c>char comm[16]</c>); element count, or 0 for a flexible <c>buf[]</c>.</summary>
    public bool IsArray { get; init; }
    public int ArrayLength { get; init; }
    public bool IsString => Type.StartsWith("char", StringComparison.Ordinal) && (IsArray || DataLoc || RelLoc)
        || (DataLoc || RelLoc) && Type.Contains("char", StringComparison.Ordinal);
    public int ElementSize => IsArray && ArrayLength > 0 ? Math.Max(1, Size / ArrayLength) : Size;
}

/// <summary>A kernel event <c>format</c> file: name, id, record layout and print format.</summary>
public sealed class EventFormat
{
    public required string System { get; init; }
    public required string Name { get; init; }
    public int Id { get; init; }
    public required RecordField[] Fields { get; init; }
    public string PrintFormat { get; init; } = "";
    /// <summary>The print format's argument expressions (text, split at top-level commas).</summary>
    public string[] PrintArgs { get; init; } = [];
    public string FullName => System + ":" + Name;

    readonly Dictionary<string, RecordField> _byName = new(StringComparer.Ordinal);

    public RecordField? Field(string name)
    {
        if (_byName.Count == 0 && Fields.Length > 0)
            lock (_byName)
                if (_byName.Count == 0)
                    foreach (var f in Fields) _byName.TryAdd(f.Name, f);
        return _byName.GetValueOrDefault(name);
    }

    /// <summary>Parses a format file. <paramref name="system"/> is used when the text has none.
    /// Errors are reported at <paramref name="offset"/> of <paramref name="source"/>.</summary>
    public static EventFormat Parse(string text, string system, string source, long offset)
    {
        string? name = null;
        int id = -1;
        var fields = new List<RecordField>();
        string printFmt = "";
        string[] printArgs = [];
        foreach (var rawLine in text.Split('\n'))
        {
            var line = rawLine.Trim();
            if (line.StartsWith("name:", StringComparison.Ordinal)) name = line[5..].Trim();
            else if (line.StartsWith("ID:", StringComparison.Ordinal))
            {
                if (!int.TryParse(line[3..].Trim(), NumberStyles.Integer, CultureInfo.InvariantCulture, out id))
                    TraceInputException.ThrowAtOffset(source, offset, "numeric event ID in format of " + name, line);
            }
            else if (line.StartsWith("field:", StringComparison.Ordinal))
                fields.Add(ParseField(line, source, offset));
            else if (line.StartsWith("print fmt:", StringComparison.Ordinal))
                (printFmt, printArgs) = SplitPrint(line[10..].Trim(), source, offset);
        }
        if (name == null || id < 0)
            TraceInputException.ThrowAtOffset(source, offset, "event format with name: and ID:", TraceInputException.Excerpt(text));
        return new EventFormat { System = system, Name = name, Id = id, Fields = fields.ToArray(), PrintFormat = printFmt, PrintArgs = printArgs };
    }

    static RecordField ParseField(string line, string source, long offset)
    {
        // field:unsigned long pfn;	offset:8;	size:8;	signed:0;
        string decl = "";
        int off = -1, size = -1;
        bool signed = false;
        foreach (var part in line.Split(';'))
        {
            var p = part.Trim();
            if (p.StartsWith("field:", StringComparison.Ordinal)) decl = p[6..].Trim();
            else if (p.StartsWith("offset:", StringComparison.Ordinal)) off = ParseInt(p[7..], line, source, offset);
            else if (p.StartsWith("size:", StringComparison.Ordinal)) size = ParseInt(p[5..], line, source, offset);
            else if (p.StartsWith("signed:", StringComparison.Ordinal)) signed = p[7..].Trim() == "1";
        }
        if (decl.Length == 0 || off < 0 || size < 0)
            TraceInputException.ThrowAtOffset(source, offset, "field declaration with offset and size", line);
        bool dataLoc = decl.StartsWith("__data_loc ", StringComparison.Ordinal);
        bool relLoc = decl.StartsWith("__rel_loc ", StringComparison.Ordinal);
        if (dataLoc) decl = decl[11..].Trim();
        if (relLoc) decl = decl[10..].Trim();
        bool isArray = false;
        int arrLen = 0;
        int br = decl.IndexOf('[');
        if (br >= 0)
        {
            // "char comm[16]" or (data_loc) "char[] name": drop the brackets wherever they are.
            isArray = !dataLoc && !relLoc;
            int close = decl.IndexOf(']', br);
            if (close < 0) close = decl.Length - 1;
            if (close > br + 1) int.TryParse(decl.AsSpan(br + 1, close - br - 1), NumberStyles.Integer, CultureInfo.InvariantCulture, out arrLen);
            decl = (decl[..br] + " " + decl[(close + 1)..]).Trim();
        }
        int sp = decl.LastIndexOfAny([' ', '*']);
        string fname = sp < 0 ? decl : decl[(sp + 1)..];
        string type = sp < 0 ? "" : decl[..(sp + 1)].Trim();
        return new RecordField
        {
            Name = string.Intern(fname), Type = type, Offset = off, Size = size, Signed = signed,
            DataLoc = dataLoc, RelLoc = relLoc, IsArray = isArray, ArrayLength = arrLen,
        };
    }

    static int ParseInt(string s, string line, string source, long offset)
    {
        if (!int.TryParse(s.Trim(), NumberStyles.Integer, CultureInfo.InvariantCulture, out int v) || v < 0 || v > 1 << 20)
            TraceInputException.ThrowAtOffset(source, offset, "small non-negative integer in field declaration", line);
        return v;
    }

    /// <summary>Splits <c>"fmt", arg1, arg2</c> into the unescaped format and the argument texts.</summary>
    public static (string Fmt, string[] Args) SplitPrint(string s, string source, long offset)
    {
        if (s.Length == 0 || s[0] != '"') TraceInputException.ThrowAtOffset(source, offset, "quoted print fmt", s);
        var sb = new System.Text.StringBuilder();
        int i = 1;
        for (; i < s.Length && s[i] != '"'; i++)
        {
            if (s[i] == '\\' && i + 1 < s.Length)
            {
                i++;
                sb.Append(s[i] switch { 'n' => '\n', 't' => '\t', '"' => '"', '\\' => '\\', _ => s[i] });
            }
            else sb.Append(s[i]);
        }
        if (i >= s.Length) TraceInputException.ThrowAtOffset(source, offset, "closing quote of print fmt", s);
        var args = new List<string>();
        int depth = 0, start = -1;
        bool inStr = false;
        for (i++; i < s.Length; i++)
        {
            char c = s[i];
            if (inStr)
            {
                if (c == '\\') i++;
                else if (c == '"') inStr = false;
                continue;
            }
            switch (c)
            {
                case '"': inStr = true; break;
                case '(' or '{' or '[': depth++; break;
                case ')' or '}' or ']': depth--; break;
                case ',' when depth == 0:
                    if (start >= 0) args.Add(s[start..i].Trim());
                    start = i + 1;
                    continue;
            }
        }
        if (start >= 0 && start < s.Length) args.Add(s[start..].Trim());
        return (sb.ToString(), args.ToArray());
    }
}
