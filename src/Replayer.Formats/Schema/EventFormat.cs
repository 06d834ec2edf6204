using System.Globalization;
using System.Text;
using Replayer.Core;

namespace Replayer.Formats.Schema;

/// <summary>One <c>field:</c> line of a kernel <c>format</c> file.</summary>
public sealed record FormatField(
    string TypeName,
    string Name,
    int Offset,
    int Size,
    bool IsSigned,
    /// <summary>-1: not an array; 0: dynamic (<c>char buf[]</c>); N: fixed length.</summary>
    int ArrayLength,
    bool IsDataLoc,
    bool IsCommon);

/// <summary>
/// A parsed kernel tracepoint/kprobe <c>format</c> file (<c>/sys/kernel/tracing/events/SYS/EVENT/format</c>):
/// name, ID, fields, and the print format with its argument expressions.
/// </summary>
public sealed class EventFormat
{
    public string System { get; }
    public string Name { get; }
    public string FullName => System + ":" + Name;
    public int Id { get; }
    public IReadOnlyList<FormatField> CommonFields { get; }
    public IReadOnlyList<FormatField> Fields { get; }
    /// <summary>The print format string, C escapes decoded.</summary>
    public string PrintFmt { get; }
    /// <summary>The print arguments, split at top-level commas, trimmed.</summary>
    public IReadOnlyList<string> PrintArgs { get; }

    PrintTemplate? _template;
    /// <summary>The print format compiled into a <see cref="PrintTemplate"/>.</summary>
    public PrintTemplate Template => _template ??= PrintTemplate.Parse(PrintFmt, PrintArgs);

    public EventFormat(string system, string name, int id, IReadOnlyList<FormatField> common, IReadOnlyList<FormatField> fields, string printFmt, IReadOnlyList<string> printArgs)
    {
        System = system;
        Name = name;
        Id = id;
        CommonFields = common;
        Fields = fields;
        PrintFmt = printFmt;
        PrintArgs = printArgs;
    }

    public static EventFormat Load(string path, string? system = null) =>
        Parse(File.ReadAllText(path), path, system);

    /// <summary>Parses the text of a <c>format</c> file. <paramref name="system"/> defaults to <c>ftrace</c>
    /// for the <c>print</c> event's format and to <c>unknown</c> otherwise (a format file does not name its system;
    /// the directory it lives in does).</summary>
    public static EventFormat Parse(string text, string sourceName, string? system = null)
    {
        string? name = null;
        int id = -1;
        var common = new List<FormatField>();
        var fields = new List<FormatField>();
        string? fmt = null;
        List<string>? args = null;
        var lines = text.Split('\n');
        for (int i = 0; i < lines.Length; i++)
        {
            long lineNo = i + 1;
            var line = lines[i].TrimEnd('\r');
            var t = line.Trim();
            if (t.Length == 0) continue;
            if (t.StartsWith("name:", StringComparison.Ordinal))
                name = t[5..].Trim();
            else if (t.StartsWith("ID:", StringComparison.Ordinal))
            {
                if (!int.TryParse(t[3..].Trim(), NumberStyles.Integer, CultureInfo.InvariantCulture, out id))
                    TraceInputException.ThrowAtLine(sourceName, lineNo, "an integer event ID", t);
            }
            else if (t == "format:")
                continue;
            else if (t.StartsWith("field:", StringComparison.Ordinal))
            {
                var f = ParseField(t, sourceName, lineNo);
                (f.IsCommon ? common : fields).Add(f);
            }
            else if (t.StartsWith("print fmt:", StringComparison.Ordinal))
            {
                (fmt, args) = ParsePrintFmt(t["print fmt:".Length..].Trim(), sourceName, lineNo);
            }
            else
                TraceInputException.ThrowAtLine(sourceName, lineNo, "'name:', 'ID:', 'format:', 'field:' or 'print fmt:'", t);
        }
        if (name == null) TraceInputException.ThrowAtLine(sourceName, 1, "a 'name:' line", "none");
        if (fmt == null) TraceInputException.ThrowAtLine(sourceName, lines.Length, "a 'print fmt:' line", "none");
        system ??= name == "print" ? "ftrace" : "unknown";
        return new EventFormat(system, name, id, common, fields, fmt, args!);
    }

    static FormatField ParseField(string t, string source, long lineNo)
    {
        // field:unsigned long pfn;	offset:8;	size:8;	signed:0;
        var parts = t.Split(';');
        string decl = parts[0]["field:".Length..].Trim();
        int offset = -1, size = -1;
        bool signed = false;
        for (int p = 1; p < parts.Length; p++)
        {
            var kv = parts[p].Trim();
            if (kv.Length == 0) continue;
            int c = kv.IndexOf(':');
            if (c < 0) TraceInputException.ThrowAtLine(source, lineNo, "'key:value;' after the field declaration", kv);
            var key = kv[..c];
            if (!int.TryParse(kv[(c + 1)..], NumberStyles.Integer, CultureInfo.InvariantCulture, out int v))
                TraceInputException.ThrowAtLine(source, lineNo, "an integer after " + key + ":", kv);
            switch (key)
            {
                case "offset": offset = v; break;
                case "size": size = v; break;
                case "signed": signed = v != 0; break;
            }
        }
        if (offset < 0 || size < 0)
            TraceInputException.ThrowAtLine(source, lineNo, "offset: and size:", t);
        bool dataLoc = false;
        if (decl.StartsWith("__data_loc ", StringComparison.Ordinal)) { dataLoc = true; decl = decl[11..].Trim(); }
        else if (decl.StartsWith("__rel_loc ", StringComparison.Ordinal)) { dataLoc = true; decl = decl[10..].Trim(); }
        int arrayLen = -1;
        // "char buf[]", "u8 arr[16]", or "__data_loc char[] name"
        int lb = decl.LastIndexOf('[');
        string typeAndName = decl;
        if (lb >= 0 && decl.EndsWith(']'))
        {
            var inner = decl[(lb + 1)..^1].Trim();
            arrayLen = inner.Length == 0 ? 0 : int.TryParse(inner, NumberStyles.Integer, CultureInfo.InvariantCulture, out var n) ? n : 0;
            typeAndName = decl[..lb].TrimEnd();
        }
        int e = typeAndName.Length;
        int s = e;
        while (s > 0 && (char.IsLetterOrDigit(typeAndName[s - 1]) || typeAndName[s - 1] == '_')) s--;
        if (s == e) TraceInputException.ThrowAtLine(source, lineNo, "a field name", decl);
        string name = typeAndName[s..e];
        string type = typeAndName[..s].Trim();
        if (dataLoc && arrayLen < 0)
        {
            // __data_loc char[] name: the brackets belong to the type
            int tb = type.IndexOf('[');
            if (tb >= 0) { arrayLen = 0; type = type[..tb].Trim(); }
        }
        if (type.Length == 0) TraceInputException.ThrowAtLine(source, lineNo, "a field type before " + name, decl);
        return new FormatField(type, name, offset, size, signed, arrayLen, dataLoc, name.StartsWith("common_", StringComparison.Ordinal));
    }

    /// <summary>Parses <c>"fmt", arg1, arg2</c>: the C string literal and the arguments split at top-level commas.</summary>
    public static (string Fmt, List<string> Args) ParsePrintFmt(string s, string source, long lineNo)
    {
        if (s.Length == 0 || s[0] != '"')
            TraceInputException.ThrowAtLine(source, lineNo, "a quoted print format", s);
        var sb = new StringBuilder();
        int i = 1;
        bool closed = false;
        while (i < s.Length)
        {
            char c = s[i++];
            if (c == '"') { closed = true; break; }
            if (c != '\\' || i >= s.Length) { sb.Append(c); continue; }
            char e = s[i++];
            switch (e)
            {
                case 'n': sb.Append('\n'); break;
                case 't': sb.Append('\t'); break;
                case 'r': sb.Append('\r'); break;
                case '\\': sb.Append('\\'); break;
                case '"': sb.Append('"'); break;
                case '\'': sb.Append('\''); break;
                default: sb.Append('\\').Append(e); break;
            }
        }
        if (!closed) TraceInputException.ThrowAtLine(source, lineNo, "a closing '\"' of the print format", s);
        var rest = s[i..].Trim();
        var args = new List<string>();
        if (rest.Length > 0)
        {
            if (rest[0] != ',') TraceInputException.ThrowAtLine(source, lineNo, "',' after the print format", rest);
            args = SplitTopLevel(rest[1..]);
        }
        return (sb.ToString(), args);
    }

    /// <summary>Splits C expressions at commas outside parentheses, brackets, braces and string/char literals.</summary>
    public static List<string> SplitTopLevel(string s)
    {
        var res = new List<string>();
        int depth = 0, start = 0;
        for (int i = 0; i < s.Length; i++)
        {
            char c = s[i];
            if (c == '"' || c == '\'')
            {
                char q = c;
                for (i++; i < s.Length && s[i] != q; i++)
                    if (s[i] == '\\') i++;
                continue;
            }
            if (c is '(' or '[' or '{') depth++;
            else if (c is ')' or ']' or '}') depth--;
            else if (c == ',' && depth == 0)
            {
                res.Add(s[start..i].Trim());
                start = i + 1;
            }
        }
        var last = s[start..].Trim();
        if (last.Length > 0 || res.Count > 0) res.Add(last);
        return res;
    }
}
