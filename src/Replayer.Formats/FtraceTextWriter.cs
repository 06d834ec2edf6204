using System.Globalization;
using System.Text;
using Replayer.Core;
using Replayer.Formats.Schema;
using Replayer.Formats.Writers;

namespace Replayer.Formats;

/// <summary>
/// Writes events as <c>trace-cmd report</c>-style text (<c>comm-pid [cpu] flags ts: sys:event: payload</c>) that
/// <see cref="TextTraceReader"/> reads back to equal events. Payloads are printed with the kernel's print format
/// when the event's fields are the ones a known format prints, otherwise with a synthesized <c>name=value</c>
/// format. Each format used is announced once, before its first event, by a
/// <c># replayer:format SYS:EVENT KIND NAMES FORMAT</c> comment, so the text describes itself.
/// The full <c>sys:event</c> name is printed (not the short name trace-cmd prints) so no lookup is needed.
/// </summary>
public sealed class FtraceTextWriter : Writers.ITraceTextWriter
{
    readonly TextWriter _out;
    readonly SelfDescribingPayload _payload;
    readonly StringBuilder _sb = new(512);

    public long Events { get; private set; }
    /// <summary>Events whose text would not read back equal (a string holding a newline or its own delimiter).</summary>
    public long LossyEvents { get; private set; }
    /// <summary>Check each rendered payload by parsing it back (slower; counts <see cref="LossyEvents"/>).</summary>
    public bool Verify { get; init; } = true;

    public FtraceTextWriter(Stream output, SchemaRegistry? known = null, bool leaveOpen = false)
    {
        _out = new StreamWriter(output, new UTF8Encoding(false), 1 << 16, leaveOpen) { NewLine = "\n" };
        _payload = new SelfDescribingPayload(known ?? SchemaRegistry.CreateBuiltIn());
    }

    public void WriteHeader(CaptureHeader header)
    {
        if (header.CpuCount is { } n) _out.Write("cpus=" + n.ToString(CultureInfo.InvariantCulture) + "\n");
    }

    public void Write(TraceEvent e)
    {
        var t = _payload.TemplateFor(e, _out);
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
        if (e.Probe != null || t.Fields.Count > 0 || t.Literals[0].Length > 0) sb.Append(' ');
        if (e.Probe != null) sb.Append('(').Append(e.Probe).Append(") ");
        int fieldsStart = sb.Length;
        t.Render(sb, e.Fields);
        if (Verify)
        {
            var text = sb.ToString(fieldsStart, sb.Length - fieldsStart);
            if (!_payload.ReadsBack(t, text, e) || text.Contains('\n') || text.Contains('\r') || comm.Contains('\n')
                || (e.Probe != null && (e.Probe.Contains(')') || e.Probe.Contains('\n'))))
                LossyEvents++;
        }
        // a newline inside a value would break the line structure: escape it (the event is counted as lossy)
        SelfDescribingPayload.EscapeNewlines(sb);
        sb.Append('\n');
        _out.Write(sb);
        Events++;
    }

    public void Dispose() => _out.Dispose();
}
