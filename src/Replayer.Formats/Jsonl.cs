using System.Buffers;
using System.Text;
using System.Text.Json;
using Replayer.Core;

namespace Replayer.Formats;

/// <summary>
/// Replayer's canonical JSON lines: an optional header object (<c>{"replayer":"jsonl",...}</c>) then one event per
/// line: <c>{"ts":ns,"cpu":0,"pid":1,"comm":"x","name":"sys:event","probe":"...","flags":"...","src":12,
/// "fields":[["pfn","u64","hex",4660],["mode","str","MIGRATE_SYNC"],["ret","s64","dec",-11]]}</c>.
/// Integers are exact (u64/s64), styles are kept, so reading back gives equal events.
/// </summary>
public sealed class JsonlWriter : IDisposable
{
    readonly Stream _out;
    readonly ArrayBufferWriter<byte> _buf = new(1024);
    readonly Utf8JsonWriter _json;
    readonly bool _leaveOpen;
    public long Events { get; private set; }

    public JsonlWriter(Stream output, bool leaveOpen = false)
    {
        _out = output;
        _leaveOpen = leaveOpen;
        _json = new Utf8JsonWriter(_buf, new JsonWriterOptions { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping, SkipValidation = true });
    }

    public void WriteHeader(TraceFormat sourceFormat, CaptureHeader header)
    {
        _json.Reset();
        _buf.Clear();
        _json.WriteStartObject();
        _json.WriteString("replayer", "jsonl");
        _json.WriteNumber("version", 1);
        _json.WriteString("source_format", sourceFormat.ToString());
        if (header.CpuCount is { } c) _json.WriteNumber("cpus", c);
        if (header.KernelRelease is { } k) _json.WriteString("kernel", k);
        if (header.TraceClock is { } tc) _json.WriteString("clock", tc);
        _json.WriteEndObject();
        Flush();
    }

    public static string StyleName(FieldStyle s) => s switch
    {
        FieldStyle.Hex => "hex",
        FieldStyle.BareHex => "barehex",
        FieldStyle.Pointer => "ptr",
        _ => "dec",
    };

    public void Write(TraceEvent e)
    {
        _json.Reset();
        _buf.Clear();
        _json.WriteStartObject();
        _json.WriteNumber("ts"u8, e.Timestamp);
        _json.WriteNumber("cpu"u8, e.Cpu);
        _json.WriteNumber("pid"u8, e.Pid);
        _json.WriteString("comm"u8, e.Comm);
        _json.WriteString("name"u8, e.Name);
        if (e.Probe != null) _json.WriteString("probe"u8, e.Probe);
        if (e.Flags != null) _json.WriteString("flags"u8, e.Flags);
        _json.WriteNumber("src"u8, e.Source);
        _json.WriteStartArray("fields"u8);
        foreach (var f in e.Fields)
        {
            _json.WriteStartArray();
            _json.WriteStringValue(f.Name);
            switch (f.Type)
            {
                case FieldType.Str:
                    _json.WriteStringValue("str"u8);
                    _json.WriteStringValue(f.Text ?? "");
                    break;
                case FieldType.S64:
                    _json.WriteStringValue("s64"u8);
                    _json.WriteStringValue(StyleName(f.Style));
                    _json.WriteNumberValue(f.AsS64);
                    break;
                default:
                    _json.WriteStringValue("u64"u8);
                    _json.WriteStringValue(StyleName(f.Style));
                    _json.WriteNumberValue(f.Bits);
                    break;
            }
            _json.WriteEndArray();
        }
        _json.WriteEndArray();
        _json.WriteEndObject();
        Flush();
        Events++;
    }

    void Flush()
    {
        _json.Flush();
        _out.Write(_buf.WrittenSpan);
        _out.WriteByte((byte)'\n');
    }

    public void Dispose()
    {
        _json.Dispose();
        _out.Flush();
        if (!_leaveOpen) _out.Dispose();
    }
}

/// <summary>Reads <see cref="JsonlWriter"/> output.</summary>
public sealed class JsonlReader : ITraceReader
{
    readonly LineSource _lines;
    readonly TraceOpenOptions _options;
    readonly Utf8Interner _interner = new();
    bool _ended;

    public TraceFormat Format => TraceFormat.Jsonl;
    public string SourceName { get; }
    public CaptureHeader Header { get; } = new();
    public ReadStats Stats { get; } = new();

    public JsonlReader(LineSource lines, string sourceName, TraceOpenOptions? options = null)
    {
        _lines = lines;
        SourceName = sourceName;
        _options = options ?? TraceOpenOptions.Default;
    }

    public TraceEvent? Read()
    {
        if (_ended) return null;
        while (_lines.TryReadLine(out var line))
        {
            Stats.Lines++;
            if (line.Trim((byte)' ').Length == 0) continue;
            string? error;
            TraceEvent? ev;
            try { ev = ParseLine(line, out error); }
            catch (JsonException e) { ev = null; error = "valid JSON (" + e.Message.Split('.')[0] + ")"; }
            catch (InvalidOperationException e) { ev = null; error = "a JSON value of the right type (" + e.Message.Split('.')[0] + ")"; }
            catch (FormatException e) { ev = null; error = "a number (" + e.Message + ")"; }
            if (ev != null)
            {
                Stats.Events++;
                if (ev.Name == SyntheticEvents.DataLoss)
                {
                    Stats.DataLossMarkers++;
                    if (ev.U64("lost") is { } l) Stats.LostEvents += (long)l;
                }
                return ev;
            }
            if (error == null) continue; // header
            if (!_lines.LineTerminated)
            {
                Stats.Add("truncated_last_line", StatSeverity.DataLoss);
                break;
            }
            Stats.UnparsedLines++;
            if (_options.Strict)
                TraceInputException.ThrowAtLine(SourceName, _lines.LineNumber, error, Encoding.UTF8.GetString(line));
        }
        _ended = true;
        return null;
    }

    static FieldStyle ParseStyle(ReadOnlySpan<byte> s) =>
        s.SequenceEqual("hex"u8) ? FieldStyle.Hex : s.SequenceEqual("barehex"u8) ? FieldStyle.BareHex : s.SequenceEqual("ptr"u8) ? FieldStyle.Pointer : FieldStyle.Decimal;

    string Str(ref Utf8JsonReader r)
    {
        if (r.TokenType == JsonTokenType.Null) return "";
        if (r.TokenType != JsonTokenType.String) throw new InvalidOperationException("expected a string");
        if (!r.ValueIsEscaped && !r.HasValueSequence) return _interner.Get(r.ValueSpan);
        return r.GetString()!;
    }

    TraceEvent? ParseLine(ReadOnlySpan<byte> line, out string? error)
    {
        var r = new Utf8JsonReader(line, new JsonReaderOptions { CommentHandling = JsonCommentHandling.Disallow });
        error = "a JSON object";
        if (!r.Read() || r.TokenType != JsonTokenType.StartObject) return null;
        long ts = 0, src = 0;
        int cpu = 0, pid = 0;
        string comm = "", name = "";
        string? probe = null, flags = null;
        EventField[] fields = TraceEvent.NoFields;
        bool haveTs = false, haveName = false, header = false, haveSrc = false;
        while (r.Read() && r.TokenType == JsonTokenType.PropertyName)
        {
            var key = r.ValueSpan;
            if (key.SequenceEqual("ts"u8)) { r.Read(); ts = r.GetInt64(); haveTs = true; }
            else if (key.SequenceEqual("cpu"u8)) { r.Read(); cpu = r.GetInt32(); }
            else if (key.SequenceEqual("pid"u8)) { r.Read(); pid = r.GetInt32(); }
            else if (key.SequenceEqual("src"u8)) { r.Read(); src = r.GetInt64(); haveSrc = true; }
            else if (key.SequenceEqual("comm"u8)) { r.Read(); comm = Str(ref r); }
            else if (key.SequenceEqual("name"u8)) { r.Read(); name = Str(ref r); haveName = true; }
            else if (key.SequenceEqual("probe"u8)) { r.Read(); probe = r.TokenType == JsonTokenType.Null ? null : Str(ref r); }
            else if (key.SequenceEqual("flags"u8)) { r.Read(); flags = r.TokenType == JsonTokenType.Null ? null : Str(ref r); }
            else if (key.SequenceEqual("fields"u8))
            {
                r.Read();
                if (r.TokenType != JsonTokenType.StartArray) { error = "\"fields\": an array"; return null; }
                var list = new List<EventField>(16);
                while (r.Read() && r.TokenType == JsonTokenType.StartArray)
                {
                    r.Read(); var fname = Str(ref r);
                    r.Read();
                    var type = r.ValueSpan;
                    if (type.SequenceEqual("str"u8)) { r.Read(); list.Add(EventField.Str(fname, Str(ref r))); }
                    else if (type.SequenceEqual("s64"u8)) { r.Read(); r.Read(); list.Add(EventField.S64(fname, r.GetInt64())); }
                    else if (type.SequenceEqual("u64"u8)) { r.Read(); var st = ParseStyle(r.ValueSpan); r.Read(); list.Add(EventField.U64(fname, r.GetUInt64(), st)); }
                    else { error = "a field type u64, s64 or str"; return null; }
                    if (!r.Read() || r.TokenType != JsonTokenType.EndArray) { error = "a field as [name, type, (style,) value]"; return null; }
                }
                if (r.TokenType != JsonTokenType.EndArray) { error = "the end of \"fields\""; return null; }
                fields = list.Count == 0 ? TraceEvent.NoFields : list.ToArray();
            }
            else if (key.SequenceEqual("replayer"u8)) { header = true; r.Read(); }
            else if (header && (key.SequenceEqual("cpus"u8))) { r.Read(); Header.CpuCount = r.GetInt32(); }
            else if (header && key.SequenceEqual("kernel"u8)) { r.Read(); Header.KernelRelease = r.GetString(); }
            else if (header && key.SequenceEqual("clock"u8)) { r.Read(); Header.TraceClock = r.GetString(); }
            else if (header && key.SequenceEqual("version"u8)) { r.Read(); Header.FormatVersion = r.GetInt32().ToString(System.Globalization.CultureInfo.InvariantCulture); }
            else { r.Read(); r.Skip(); }
        }
        if (r.TokenType != JsonTokenType.EndObject) { error = "the end of the JSON object"; return null; }
        if (r.Read()) { error = "one JSON object per line"; return null; }
        if (header) { error = null; return null; }
        if (!haveTs || !haveName) { error = "an event object with \"ts\" and \"name\""; return null; }
        error = null;
        return new TraceEvent { Timestamp = ts, Cpu = cpu, Pid = pid, Comm = comm, Name = name, Probe = probe, Flags = flags, Fields = fields, Source = haveSrc ? src : _lines.LineNumber };
    }

    public void Dispose() => _lines.Dispose();
}
