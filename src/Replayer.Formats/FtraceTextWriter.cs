using System.Globalization;
using System.Text;
using Replayer.Core;
using Replayer.Formats.Schema;

namespace Replayer.Formats;

/// <summary>
/// Writes events as <c>trace-cmd report</c>-style text (<c>comm-pid [cpu] flags ts: sys:event: payload</c>) that
/// <see cref="TextTraceReader"/> reads back to equal events. Payloads are printed with the kernel's print format
/// when the event's fields are the ones a known format prints, otherwise with a synthesized <c>name=value</c>
/// format. Each format used is announced once, before its first event, by a
/// <c># replayer:format SYS:EVENT KIND NAMES FORMAT</c> comment, so the text describes itself.
/// The full <c>sys:event</c> name is printed (not the short name trace-cmd prints) so no lookup is needed.
/// </summary>
public sealed class FtraceTextWriter : IDisposable
{
    readonly TextWriter _out;
    readonly SchemaRegistry _known;
    readonly Dictionary<string, PrintTemplate> _current = new(StringComparer.Ordinal);
    readonly StringBuilder _sb = new(512);
    readonly Utf8Interner _checkInterner = new(1024);

    public long Events { get; private set; }
    /// <summary>Events whose text would not read back equal (a string holding a newline or its own delimiter).</summary>
    public long LossyEvents { get; private set; }
    /// <summary>Check each rendered payload by parsing it back (slower; counts <see cref="LossyEvents"/>).</summary>
    public bool Verify { get; init; } = true;

    public FtraceTextWriter(Stream output, SchemaRegistry? known = null, bool leaveOpen = false)
    {
        _out = new StreamWriter(output, new UTF8Encoding(false), 1 << 16, leaveOpen) { NewLine = "\n" };
        _known = known ?? SchemaRegistry.CreateBuiltIn();
    }

    public void WriteHeader(CaptureHeader header)
    {
        if (header.CpuCount is { } n) _out.Write("cpus=" + n.ToString(CultureInfo.InvariantCulture) + "\n");
    }

    static ProbeKind KindOf(TraceEvent e) => e.Probe == null ? ProbeKind.None : e.Probe.Contains(" <- ", StringComparison.Ordinal) ? ProbeKind.Kretprobe : ProbeKind.Kprobe;

    PrintTemplate TemplateFor(TraceEvent e)
    {
        var kind = KindOf(e);
        if (_current.TryGetValue(e.Name, out var cur) && cur.Probe == kind && cur.Fits(e.Fields)) return cur;
        PrintTemplate? chosen = null;
        if (_known.Find(e.Name) is { } schema)
            foreach (var t in schema.Templates)
                if (t.Probe == kind && t.Fits(e.Fields)) { chosen = t; break; }
        chosen ??= Synthesize(e.Fields, kind);
        var names = chosen.Fields.Count == 0 ? "-" : string.Join(",", chosen.Fields.Select(f => f.Name));
        _out.Write(TextTraceReader.SelfFormatPrefix + e.Name + " " + (kind switch { ProbeKind.Kprobe => "kprobe", ProbeKind.Kretprobe => "kretprobe", _ => "-" })
            + " " + names + " " + FormatString(chosen) + "\n");
        _current[e.Name] = chosen;
        return chosen;
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
            lits[i] = (i == 0 ? "" : lits[i]) + f.Name + "=";
            if (i > 0) lits[i] = " " + f.Name + "=";
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

    public void Write(TraceEvent e)
    {
        var t = TemplateFor(e);
        var sb = _sb;
        sb.Clear();
        var comm = e.Comm;
        if (comm.Length < 16) sb.Append(' ', 16 - comm.Length);
        // negative pid/cpu (unknown) are printed as their u32 so the columns stay digits
        var pidText = ((uint)e.Pid).ToString(CultureInfo.InvariantCulture);
        sb.Append(comm).Append('-').Append(pidText);
        if (pidText.Length < 7) sb.Append(' ', 7 - pidText.Length);
        sb.Append(" [").Append(e.Cpu >= 0 ? e.Cpu.ToString("D3", CultureInfo.InvariantCulture) : ((uint)e.Cpu).ToString(CultureInfo.InvariantCulture)).Append("] ");
        if (e.Flags != null) sb.Append(e.Flags).Append(' ');
        sb.Append(TraceEvent.FormatTimestamp(e.Timestamp)).Append(": ").Append(e.Name).Append(':');
        int payloadStart = sb.Length + 1;
        if (e.Probe != null || t.Fields.Count > 0 || t.Literals[0].Length > 0) sb.Append(' ');
        if (e.Probe != null) sb.Append('(').Append(e.Probe).Append(") ");
        int fieldsStart = sb.Length;
        t.Render(sb, e.Fields);
        if (Verify)
        {
            var text = sb.ToString(fieldsStart, sb.Length - fieldsStart);
            var back = t.TryMatch(Encoding.UTF8.GetBytes(text), _checkInterner);
            if (back == null || !back.AsSpan().SequenceEqual(e.Fields) || text.Contains('\n') || text.Contains('\r') || comm.Contains('\n')
                || (e.Probe != null && (e.Probe.Contains(')') || e.Probe.Contains('\n'))))
                LossyEvents++;
        }
        _ = payloadStart;
        // a newline inside a value would break the line structure: escape it (the event is counted as lossy)
        for (int i = 0; i < sb.Length; i++)
            if (sb[i] is '\n' or '\r')
            {
                sb.Replace("\r", "\\r").Replace("\n", "\\n");
                break;
            }
        sb.Append('\n');
        _out.Write(sb);
        Events++;
    }

    public void Dispose() => _out.Dispose();
}
