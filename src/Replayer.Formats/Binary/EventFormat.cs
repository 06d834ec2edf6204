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
    /// <summary>A plain integer field read directly (not an array, string or dynamic location).</summary>
    public bool IsScalar => _scalar ??= !DataLoc && !RelLoc && !IsArray && Size is > 0 and <= 8;
    bool? _scalar;
    public bool IsPointer => _pointer ??= Type.Contains('*');
    bool? _pointer;
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

    /// <summary>The shared schema's view of this format (print template: field names, types, styles).</summary>
    public Schema.EventFormat? Schema { get; init; }

    /// <summary>Parses a format file with the shared schema layer (<see cref="Schema.EventFormat"/>).
    /// <paramref name="system"/> names the event's system. Errors are reported at byte
    /// <paramref name="offset"/> of <paramref name="source"/>.</summary>
    public static EventFormat Parse(string text, string system, string source, long offset)
    {
        global::Replayer.Formats.Schema.EventFormat sf;
        try
        {
            sf = global::Replayer.Formats.Schema.EventFormat.Parse(JoinAdjacentLiterals(text), source, system);
        }
        catch (TraceInputException e)
        {
            throw new TraceInputException(source, 0, offset, e.Expected + $" (format file line {e.Line})", e.Found);
        }
        if (sf.Id < 0) TraceInputException.ThrowAtOffset(source, offset, "event format with an ID: line", "none for " + TraceInputException.Excerpt(sf.Name, 40));
        // __rel_loc offsets are relative to the end of the field; the schema folds them into data_loc.
        var relLoc = new HashSet<string>(StringComparer.Ordinal);
        foreach (var line in text.Split('\n'))
        {
            var t = line.Trim();
            if (t.StartsWith("field:__rel_loc ", StringComparison.Ordinal)) relLoc.Add(ParseField(t, source, offset).Name);
        }
        var fields = sf.CommonFields.Concat(sf.Fields).Select(f => new RecordField
        {
            Name = string.Intern(f.Name), Type = f.TypeName, Offset = f.Offset, Size = f.Size, Signed = f.IsSigned,
            DataLoc = f.IsDataLoc && !relLoc.Contains(f.Name), RelLoc = f.IsDataLoc && relLoc.Contains(f.Name),
            IsArray = f.ArrayLength >= 0 && !f.IsDataLoc, ArrayLength = Math.Max(0, f.ArrayLength),
        }).ToArray();
        return new EventFormat
        {
            System = string.Intern(system), Name = string.Intern(sf.Name), Id = sf.Id, Fields = fields,
            PrintFormat = sf.PrintFmt, PrintArgs = sf.PrintArgs.ToArray(), Schema = sf,
        };
    }

    /// <summary>C concatenates adjacent string literals (<c>"a" "b"</c>); some ftrace formats
    /// (kernel_stack) print that way. Joins them in the <c>print fmt:</c> line.</summary>
    static string JoinAdjacentLiterals(string text)
    {
        int p = text.IndexOf("print fmt: \"", StringComparison.Ordinal);
        if (p < 0) return text;
        var sb = new System.Text.StringBuilder(text.Length);
        int i = p + 11;
        sb.Append(text, 0, i + 1);
        i++;
        while (i < text.Length)
        {
            char c = text[i];
            if (c == '\\' && i + 1 < text.Length) { sb.Append(c).Append(text[i + 1]); i += 2; continue; }
            if (c == '"')
            {
                int j = i + 1;
                while (j < text.Length && text[j] is ' ' or '\t') j++;
                if (j < text.Length && text[j] == '"') { i = j + 1; continue; } // "a" "b" -> "ab"
                sb.Append(text, i, text.Length - i);
                return sb.ToString();
            }
            sb.Append(c);
            i++;
        }
        return sb.ToString();
    }

    /// <summary>One <c>field:</c> line (also used for <c>header_page</c>, which is not a full format file).</summary>
    internal static RecordField ParseFieldLine(string line, string source, long offset) => ParseField(line, source, offset);

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
