using System.Globalization;
using System.Text;
using Replayer.Core;

namespace Replayer.Formats.Schema;

/// <summary>One fetch argument of a kprobe definition (<c>mapcount=+48(%di):s32</c>).</summary>
public sealed record KprobeArg(string Name, string Fetch, string Type);

/// <summary>
/// A line of <c>kprobe_events</c>: <c>p[:[GRP/]EVENT] SYM[+offs] [NAME=FETCHARG[:TYPE]] …</c> or
/// <c>r[MAXACTIVE][:[GRP/]EVENT] SYM …</c>. Yields the print format the kernel generates for it.
/// </summary>
public sealed class KprobeDefinition
{
    public required string Group { get; init; }
    public required string Event { get; init; }
    public string FullName => Group + ":" + Event;
    public required bool IsReturn { get; init; }
    /// <summary>Probed location as defined (<c>page_add_file_rmap</c>, <c>func+0x10</c>, an address).</summary>
    public required string Location { get; init; }
    public required IReadOnlyList<KprobeArg> Args { get; init; }

    /// <summary>The print format the kernel builds for this probe (<c>(%lx) page=0x%Lx …</c>).</summary>
    public string PrintFmt
    {
        get
        {
            var sb = new StringBuilder(IsReturn ? "(%lx <- %lx)" : "(%lx)");
            foreach (var a in Args) sb.Append(' ').Append(a.Name).Append('=').Append(FormatOf(a.Type));
            return sb.ToString();
        }
    }

    public PrintTemplate Template
    {
        get
        {
            var args = new List<string> { IsReturn ? "REC->__probe_func" : "REC->__probe_ip" };
            if (IsReturn) args.Add("REC->__probe_ret_ip");
            args.AddRange(Args.Select(a => "REC->" + a.Name));
            return PrintTemplate.Parse(PrintFmt, args);
        }
    }

    /// <summary>The kernel's print conversion for a fetch type (kernel/trace/trace_probe.c).</summary>
    public static string FormatOf(string type)
    {
        int br = type.IndexOf('[');
        if (br >= 0) return "{%s}";
        if (type.StartsWith('b') && type.Contains('@')) return "%u";
        return type switch
        {
            "x8" or "x16" or "x32" => "0x%x",
            "x64" => "0x%Lx",
            "s8" or "s16" or "s32" => "%d",
            "s64" => "%Ld",
            "u8" or "u16" or "u32" => "%u",
            "u64" => "%Lu",
            "string" or "ustring" => "\"%s\"",
            "symbol" or "symstr" => "%pS",
            "char" => "'%c'",
            _ => "0x%Lx",
        };
    }

    /// <summary>Parses one definition line; null for blank, comment and removal (<c>-:</c>) lines.</summary>
    public static KprobeDefinition? ParseLine(string line, string source = "kprobe_events", long lineNo = 0)
    {
        var t = line.Trim();
        if (t.Length == 0 || t[0] == '#' || t[0] == '-') return null;
        var tokens = t.Split((char[])[' ', '\t'], StringSplitOptions.RemoveEmptyEntries);
        var head = tokens[0];
        bool ret;
        if (head[0] == 'p') ret = false;
        else if (head[0] == 'r') ret = true;
        else if (head[0] is 'f' or 't' or 'e' or 'u') return null; // fprobe/tprobe/eprobe/uprobe lines: not kprobes
        else { TraceInputException.ThrowAtLine(source, lineNo, "a kprobe definition starting with p or r", t); return null; }
        if (tokens.Length < 2) TraceInputException.ThrowAtLine(source, lineNo, "a probed symbol after " + head, t);
        string location = tokens[1];
        string group = "kprobes", ev;
        int colon = head.IndexOf(':');
        if (colon >= 0)
        {
            var name = head[(colon + 1)..];
            int slash = name.IndexOf('/');
            if (slash >= 0) { group = name[..slash]; ev = name[(slash + 1)..]; }
            else ev = name;
        }
        else
        {
            var sym = location;
            int plus = sym.IndexOf('+');
            if (plus >= 0) sym = sym[..plus];
            ev = (ret ? "r_" : "p_") + sym + "_0";
        }
        var args = new List<KprobeArg>();
        for (int i = 2; i < tokens.Length; i++)
        {
            var a = tokens[i];
            string name;
            int eq = a.IndexOf('=');
            if (eq > 0 && a.IndexOfAny(['(', '%', '@', '+', '$']) is var special && (special < 0 || special > eq))
            {
                name = a[..eq];
                a = a[(eq + 1)..];
            }
            else name = "arg" + (args.Count + 1).ToString(CultureInfo.InvariantCulture);
            string type = "x64";
            int tc = a.LastIndexOf(':');
            if (tc >= 0 && tc < a.Length - 1 && !a[(tc + 1)..].Contains(')'))
            {
                type = a[(tc + 1)..];
                a = a[..tc];
            }
            args.Add(new KprobeArg(name, a, type));
        }
        return new KprobeDefinition { Group = group, Event = ev, IsReturn = ret, Location = location, Args = args };
    }

    public static List<KprobeDefinition> ParseFile(string path)
    {
        var res = new List<KprobeDefinition>();
        long n = 0;
        foreach (var line in File.ReadLines(path))
        {
            n++;
            if (ParseLine(line, path, n) is { } d) res.Add(d);
        }
        return res;
    }
}
