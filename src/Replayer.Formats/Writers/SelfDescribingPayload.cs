using System.Text;
using Replayer.Core;
using Replayer.Formats.Schema;

namespace Replayer.Formats.Writers;

/// <summary>
/// Chooses and announces the print format of each event's payload for the text writers: the kernel's own
/// format when the event's fields are the ones a known format prints, else a synthesized <c>name=value</c>
/// format. A format is announced once, before its first use, by a <c># replayer:format SYS:EVENT KIND NAMES
/// FORMAT</c> comment, so the text reads back to equal events without capture metadata.
/// </summary>
internal sealed class SelfDescribingPayload(SchemaRegistry known)
{
    readonly Dictionary<string, PrintTemplate> _current = new(StringComparer.Ordinal);
    readonly Utf8Interner _checkInterner = new(1024);

    public static ProbeKind KindOf(TraceEvent e) => e.Probe == null ? ProbeKind.None : e.Probe.Contains(" <- ", StringComparison.Ordinal) ? ProbeKind.Kretprobe : ProbeKind.Kprobe;

    /// <summary>The template for <paramref name="e"/>; writes its announcement comment to <paramref name="announce"/> when it changes.</summary>
    public PrintTemplate TemplateFor(TraceEvent e, TextWriter announce)
    {
        var kind = KindOf(e);
        if (_current.TryGetValue(e.Name, out var cur) && cur.Probe == kind && cur.Fits(e.Fields)) return cur;
        PrintTemplate? chosen = null;
        if (known.Find(e.Name) is { } schema)
            foreach (var t in schema.Templates)
                if (t.Probe == kind && t.Fits(e.Fields)) { chosen = t; break; }
        chosen ??= Synthesize(e.Fields, kind);
        var names = chosen.Fields.Count == 0 ? "-" : string.Join(",", chosen.Fields.Select(f => f.Name));
        announce.Write(TextTraceReader.SelfFormatPrefix + e.Name + " " + (kind switch { ProbeKind.Kprobe => "kprobe", ProbeKind.Kretprobe => "kretprobe", _ => "-" })
            + " " + names + " " + FormatString(chosen) + "\n");
        _current[e.Name] = chosen;
        return chosen;
    }

    /// <summary>True when the rendered payload text parses back to exactly the event's fields.</summary>
    public bool ReadsBack(PrintTemplate t, string renderedFields, TraceEvent e)
    {
        var back = t.TryMatch(Encoding.UTF8.GetBytes(renderedFields), _checkInterner);
        return back != null && back.AsSpan().SequenceEqual(e.Fields);
    }

    /// <summary>The template's format without the probe prefix, '%' in literals escaped.</summary>
    static string FormatString(PrintTemplate t)
    {
        var sb = new StringBuilder();
        for (int i = 0; i < t.Fields.Count; i++)
            sb.Append(t.Literals[i].Replace("%", "%%")).Append(t.Fields[i].Spec);
        sb.Append(t.Literals[^1].Replace("%", "%%"));
        return sb.ToString();
    }

    static PrintTemplate Synthesize(EventField[] fields, ProbeKind kind)
    {
        var lits = new string[fields.Length + 1];
        var tf = new TemplateField[fields.Length];
        var fmt = new StringBuilder();
        lits[0] = "";
        for (int i = 0; i < fields.Length; i++)
        {
            var f = fields[i];
            lits[i] = (i == 0 ? "" : " ") + f.Name + "=";
            (string spec, ValueSyntax syn) = f.Type switch
            {
                FieldType.Str => ("%s", ValueSyntax.String),
                FieldType.S64 => ("%ld", ValueSyntax.SignedDecimal),
                _ => f.Style switch
                {
                    FieldStyle.Hex => ("0x%lx", ValueSyntax.Hex),
                    FieldStyle.BareHex => ("%lx", ValueSyntax.Hex),
                    FieldStyle.Pointer => ("%p", ValueSyntax.Pointer),
                    _ => ("%lu", ValueSyntax.Decimal),
                },
            };
            tf[i] = new TemplateField { Name = f.Name, Type = f.Type, Style = f.Type == FieldType.S64 ? FieldStyle.Decimal : f.Style, Syntax = syn, Spec = spec };
            lits[i + 1] = "";
            fmt.Append(lits[i]).Append(spec);
        }
        return PrintTemplate.FromParts(fmt.ToString(), kind, lits, tf);
    }

    /// <summary>Escapes CR/LF inside a rendered line (the line structure must hold); true when it had any.</summary>
    public static bool EscapeNewlines(StringBuilder sb)
    {
        for (int i = 0; i < sb.Length; i++)
            if (sb[i] is '\n' or '\r')
            {
                sb.Replace("\r", "\\r").Replace("\n", "\\n");
                return true;
            }
        return false;
    }
}

/// <summary>A text writer of canonical events (ftrace text, perf-script text): a header, then events;
/// what the format cannot carry exactly is counted in <see cref="LossyEvents"/>.</summary>
public interface ITraceTextWriter : IDisposable
{
    long Events { get; }
    long LossyEvents { get; }
    void WriteHeader(Replayer.Core.CaptureHeader header);
    void Write(Replayer.Core.TraceEvent e);
}
