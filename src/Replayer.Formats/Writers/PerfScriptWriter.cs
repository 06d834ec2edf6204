using System.Globalization;
using System.Text;
using Replayer.Core;
using Replayer.Formats.Schema;

namespace Replayer.Formats.Writers;

/// <summary>
/// Writes events as <c>perf script</c> text (<c>comm pid [cpu] sec.frac: sys:event: payload</c>, kprobe
/// locations in parentheses before the fields, as perf prints them) that <see cref="TextTraceReader"/> reads
/// back to equal events. Like <see cref="FtraceTextWriter"/>, each payload format used is announced by a
/// <c># replayer:format</c> comment (perf's own tools skip <c>#</c> lines); the header is perf's
/// <c>--header</c> block (<c># os release</c>, <c># nrcpus avail</c>). Differences from perf: timestamps keep
/// nanoseconds when they have them, and the irq-info flags of raw ftrace are kept after the cpu column.
/// </summary>
public sealed class PerfScriptWriter : ITraceTextWriter
{
    readonly TextWriter _out;
    readonly SelfDescribingPayload _payload;
    readonly StringBuilder _sb = new(512);
    bool _headerWritten;

    public long Events { get; private set; }
    /// <summary>Events whose text would not read back equal (newlines, a comm perf's columns cannot carry, a
    /// payload ending like perf's <c>ip sym (dso)</c> suffix).</summary>
    public long LossyEvents { get; private set; }

    public PerfScriptWriter(Stream output, SchemaRegistry? known = null, bool leaveOpen = false)
    {
        _out = new StreamWriter(output, new UTF8Encoding(false), 1 << 16, leaveOpen) { NewLine = "\n" };
        _payload = new SelfDescribingPayload(known ?? SchemaRegistry.CreateBuiltIn());
    }

    /// <summary>perf script <c>--header</c> style block; also what makes the text detectable as perf script.</summary>
    public void WriteHeader(CaptureHeader header)
    {
        _out.Write("# ========\n");
        if (header.KernelRelease is { } k && !k.Contains('\n')) _out.Write("# os release : " + k.Trim() + "\n");
        if (header.CpuCount is { } n) _out.Write("# nrcpus avail : " + n.ToString(CultureInfo.InvariantCulture) + "\n");
        _out.Write("# ========\n#\n");
        _headerWritten = true;
    }

    public void Write(TraceEvent e)
    {
        if (!_headerWritten) WriteHeader(new CaptureHeader());
        var t = _payload.TemplateFor(e, _out);
        var sb = _sb;
        sb.Clear();
        var comm = e.Comm;
        if (comm.Length < 16) sb.Append(' ', 16 - comm.Length);
        sb.Append(comm).Append(' ');
        // negative pid/cpu (unknown) are printed as their u32 so the columns stay digits
        var pidText = ((uint)e.Pid).ToString(CultureInfo.InvariantCulture);
        if (pidText.Length < 5) sb.Append(' ', 5 - pidText.Length);
        sb.Append(pidText);
        sb.Append(" [").Append(e.Cpu >= 0 ? e.Cpu.ToString("D3", CultureInfo.InvariantCulture) : ((uint)e.Cpu).ToString(CultureInfo.InvariantCulture)).Append("] ");
        if (e.Flags != null) sb.Append(e.Flags).Append(' ');
        var ts = TraceEvent.FormatTimestamp(e.Timestamp);
        int dot = ts.IndexOf('.');
        if (dot >= 0 && dot < 5) sb.Append(' ', 5 - dot);
        sb.Append(ts).Append(": ");
        if (e.Name.Length < 20) sb.Append(' ', 20 - e.Name.Length);
        sb.Append(e.Name).Append(':');
        if (e.Probe != null || t.Fields.Count > 0 || t.Literals[0].Length > 0) sb.Append(' ');
        int payloadStart = sb.Length;
        if (e.Probe != null) sb.Append('(').Append(e.Probe).Append(") ");
        int fieldsStart = sb.Length;
        t.Render(sb, e.Fields);
        var fields = sb.ToString(fieldsStart, sb.Length - fieldsStart);
        var payload = Encoding.UTF8.GetBytes(sb.ToString(payloadStart, sb.Length - payloadStart));
        if (!_payload.ReadsBack(t, fields, e) || fields.Contains('\n') || fields.Contains('\r')
            || comm.Contains('\n') || comm.Contains('\r') || comm.Contains(" [", StringComparison.Ordinal) || comm.Trim() != comm
            || (e.Probe != null && (e.Probe.Contains(')') || e.Probe.Contains('\n')))
            || TextTraceReader.StripPerfIpSym(payload).Length != payload.Length)
            LossyEvents++;
        SelfDescribingPayload.EscapeNewlines(sb);
        sb.Append('\n');
        _out.Write(sb);
        Events++;
    }

    public void Dispose() => _out.Dispose();
}
