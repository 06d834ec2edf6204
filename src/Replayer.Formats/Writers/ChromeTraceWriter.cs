using System.Globalization;
using System.Text.Encodings.Web;
using System.Text.Json;
using Replayer.Core;

namespace Replayer.Formats.Writers;

/// <summary>
/// Streams Chrome Trace Event JSON (<c>{"traceEvents":[…],"displayTimeUnit":"ns"}</c>), the format the Perfetto UI
/// and chrome://tracing open. Timestamps are given in nanoseconds and written in microseconds with three decimals
/// (exact). Trace events go to one track per CPU (<see cref="CpuProcess"/>, thread id = cpu) as instant events with
/// their fields as args.
/// </summary>
public sealed class ChromeTraceWriter : IDisposable
{
    /// <summary>Process id of the per-CPU tracks.</summary>
    public const int CpuProcess = 1;
    /// <summary>Thread id of the track of events whose cpu is unknown.</summary>
    public const int UnknownCpuTid = 99_999;

    readonly Utf8JsonWriter _w;
    readonly Stream _stream;
    readonly bool _leaveOpen;
    readonly HashSet<int> _cpus = [];
    bool _done;

    public long Events { get; private set; }

    public ChromeTraceWriter(Stream output, bool leaveOpen = false)
    {
        _stream = output;
        _leaveOpen = leaveOpen;
        _w = new Utf8JsonWriter(output, new JsonWriterOptions { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping, SkipValidation = false });
        _w.WriteStartObject();
        _w.WriteString("displayTimeUnit", "ns");
        _w.WriteStartArray("traceEvents");
        ProcessName(CpuProcess, "CPUs", 0);
    }

    /// <summary>Nanoseconds → microseconds with 3 decimals, exactly.</summary>
    public static string Micros(long ns)
    {
        long us = ns / 1000, frac = Math.Abs(ns % 1000);
        var sign = ns < 0 && us == 0 ? "-" : "";
        return sign + us.ToString(CultureInfo.InvariantCulture) + "." + frac.ToString("D3", CultureInfo.InvariantCulture);
    }

    void Head(string name, string? cat, string ph, long tsNs, int pid, int tid)
    {
        if (_w.BytesPending > (1 << 16)) _w.Flush();
        _w.WriteStartObject();
        _w.WriteString("name", name);
        if (cat != null) _w.WriteString("cat", cat);
        _w.WriteString("ph", ph);
        _w.WritePropertyName("ts");
        _w.WriteRawValue(Micros(tsNs), skipInputValidation: true);
        _w.WriteNumber("pid", pid);
        _w.WriteNumber("tid", tid);
        Events++;
    }

    void Metadata(string name, int pid, int? tid, string argName, Action<Utf8JsonWriter> value)
    {
        _w.WriteStartObject();
        _w.WriteString("name", name);
        _w.WriteString("ph", "M");
        _w.WriteNumber("pid", pid);
        if (tid is { } t) _w.WriteNumber("tid", t);
        _w.WriteStartObject("args");
        _w.WritePropertyName(argName);
        value(_w);
        _w.WriteEndObject();
        _w.WriteEndObject();
    }

    public void ProcessName(int pid, string name, int sortIndex)
    {
        Metadata("process_name", pid, null, "name", w => w.WriteStringValue(name));
        Metadata("process_sort_index", pid, null, "sort_index", w => w.WriteNumberValue(sortIndex));
    }

    public void ThreadName(int pid, int tid, string name, int sortIndex)
    {
        Metadata("thread_name", pid, tid, "name", w => w.WriteStringValue(name));
        Metadata("thread_sort_index", pid, tid, "sort_index", w => w.WriteNumberValue(sortIndex));
    }

    /// <summary>The track (thread id) of a cpu, named on first use.</summary>
    public int CpuTrack(int cpu)
    {
        int tid = cpu >= 0 ? cpu : UnknownCpuTid;
        if (_cpus.Add(tid)) ThreadName(CpuProcess, tid, cpu >= 0 ? "CPU " + cpu.ToString(CultureInfo.InvariantCulture) : "CPU ?", cpu >= 0 ? cpu : int.MaxValue);
        return tid;
    }

    /// <summary>An instant event; scope <c>t</c> (thread), <c>p</c> (process) or <c>g</c> (global).</summary>
    public void Instant(string name, string? cat, long tsNs, int pid, int tid, char scope = 't', Action<Utf8JsonWriter>? args = null)
    {
        Head(name, cat, "i", tsNs, pid, tid);
        _w.WriteString("s", scope.ToString());
        Args(args);
        _w.WriteEndObject();
    }

    /// <summary>Begin / end of an async slice (may overlap others; matched by cat, name and id).</summary>
    public void AsyncBegin(string name, string cat, long id, long tsNs, int pid, int tid, Action<Utf8JsonWriter>? args = null) => Async("b", name, cat, id, tsNs, pid, tid, args);
    public void AsyncEnd(string name, string cat, long id, long tsNs, int pid, int tid, Action<Utf8JsonWriter>? args = null) => Async("e", name, cat, id, tsNs, pid, tid, args);

    void Async(string ph, string name, string cat, long id, long tsNs, int pid, int tid, Action<Utf8JsonWriter>? args)
    {
        Head(name, cat, ph, tsNs, pid, tid);
        _w.WriteNumber("id", id);
        Args(args);
        _w.WriteEndObject();
    }

    /// <summary>A complete slice (must nest with the other slices of its track).</summary>
    public void Complete(string name, string? cat, long tsNs, long durNs, int pid, int tid, Action<Utf8JsonWriter>? args = null)
    {
        Head(name, cat, "X", tsNs, pid, tid);
        _w.WritePropertyName("dur");
        _w.WriteRawValue(Micros(Math.Max(0, durNs)), skipInputValidation: true);
        Args(args);
        _w.WriteEndObject();
    }

    /// <summary>A counter sample: one track per (pid, name), one series per value.</summary>
    public void Counter(string name, long tsNs, int pid, ReadOnlySpan<(string Series, long Value)> values)
    {
        Head(name, null, "C", tsNs, pid, 0);
        _w.WriteStartObject("args");
        foreach (var (s, v) in values) _w.WriteNumber(s, v);
        _w.WriteEndObject();
        _w.WriteEndObject();
    }

    void Args(Action<Utf8JsonWriter>? args)
    {
        if (args == null) return;
        _w.WriteStartObject("args");
        args(_w);
        _w.WriteEndObject();
    }

    /// <summary>A trace event as an instant on its CPU's track: task, probe and fields as args (decimal integers as
    /// numbers when exact in a double, everything else as the text the kernel printed).</summary>
    public void Write(TraceEvent e)
    {
        int tid = CpuTrack(e.Cpu);
        int colon = e.Name.IndexOf(':');
        Instant(e.Name, colon > 0 ? e.Name[..colon] : "event", e.Timestamp, CpuProcess, tid, 't', w =>
        {
            w.WriteString("comm", e.Comm);
            w.WriteNumber("pid", e.Pid);
            if (e.Probe != null) w.WriteString("probe", e.Probe);
            foreach (var f in e.Fields)
            {
                if (f.Name is "comm" or "pid" or "probe") { w.WriteString("field_" + f.Name, f.FormatValue()); continue; }
                if (f.Type == FieldType.S64 && Math.Abs(f.AsS64) < (1L << 53)) w.WriteNumber(f.Name, f.AsS64);
                else if (f.Type == FieldType.U64 && f.Style == FieldStyle.Decimal && f.Bits < (1UL << 53)) w.WriteNumber(f.Name, f.Bits);
                else w.WriteString(f.Name, f.FormatValue());
            }
        });
    }

    /// <summary>Ends the array and the document.</summary>
    public void Finish()
    {
        if (_done) return;
        _done = true;
        _w.WriteEndArray();
        _w.WriteEndObject();
        _w.Flush();
    }

    public void Dispose()
    {
        Finish();
        _w.Dispose();
        if (!_leaveOpen) _stream.Dispose();
    }
}
