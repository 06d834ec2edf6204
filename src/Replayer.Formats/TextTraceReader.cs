using System.Globalization;
using System.Text;
using Replayer.Core;
using Replayer.Formats.Schema;

namespace Replayer.Formats;

/// <summary>
/// Reader of the line-oriented text formats: raw ftrace (<c>trace</c> with or without the irq-info column,
/// <c>trace_pipe</c>), <c>trace-cmd report</c>, and <c>perf script</c> (default and <c>-F</c> variants).
/// One line at a time from a byte buffer; comm, event and field names and repeated values are interned.
/// </summary>
public sealed class TextTraceReader : IBlockTraceReader
{
    /// <summary>Default system for a raw-ftrace event whose system nothing names.</summary>
    public const string UnknownSystem = "unknown";
    public const string PrintName = "ftrace:print";
    /// <summary>Function tracer lines (<c>func &lt;-parent</c>).</summary>
    public const string FunctionName = "ftrace:function";

    /// <summary>Prefix of the comment lines by which Replayer's own text writer describes its print formats.</summary>
    public const string SelfFormatPrefix = "# replayer:format ";
    static readonly byte[] SelfFormatPrefixBytes = Encoding.UTF8.GetBytes(SelfFormatPrefix);

    readonly LineSource _lines;
    readonly SchemaRegistry _registry;
    readonly TraceOpenOptions _options;
    readonly Utf8Interner _interner = new();
    readonly Utf8Interner _valueInterner = new(1 << 15, 160);
    readonly Utf8Map<NameInfo> _names = new(4096);
    long _lastTs;
    bool _ended;
    string _why = "";

    public TraceFormat Format { get; }
    public string SourceName { get; }
    public CaptureHeader Header { get; } = new();
    public ReadStats Stats { get; } = new();

    sealed class NameInfo
    {
        public required string FullName;
        public required string ShortName;
        public EventSchema? Schema;
        public int LastTemplate;
        public bool PrintSymbol;
        /// <summary><c>ftrace:bprint</c>/<c>bputs</c> (trace_printk): the message field's name (<c>buf</c>/<c>str</c>).</summary>
        public string? PrintkField;
        public bool ProbeExpected;
        public bool IsDataLoss;
    }

    public TextTraceReader(LineSource lines, TraceFormat format, string sourceName, SchemaRegistry registry, TraceOpenOptions? options = null)
    {
        _lines = lines;
        Format = format;
        SourceName = sourceName;
        _registry = registry;
        _options = options ?? TraceOpenOptions.Default;
    }

    long _overwritten;      // entries-written minus entries-in-buffer, announced before the first event
    TraceEvent? _stash;     // the event that follows that announcement (once per input)

    public TraceEvent? Read()
    {
        if (_stash != null)
        {
            var s = _stash;
            _stash = null;
            return s;
        }
        var sink = new EventSink();
        return NextRow(ref sink) ? sink.ToEvent() : null;
    }

    /// <summary>
    /// Parses up to <paramref name="max"/> next events (the same events, in the same order, with the same stats
    /// and strict-mode errors as <see cref="Read"/>) straight into <paramref name="block"/>'s columns: no object
    /// per event; names, comms and repeated values are the interned strings <see cref="Read"/> gives.
    /// </summary>
    public int ReadBlock(EventBlock block, int max)
    {
        ArgumentNullException.ThrowIfNull(block);
        var sink = new BlockSink(block);
        int n = 0;
        while (n < max)
        {
            if (_stash != null)
            {
                block.Add(_stash);
                _stash = null;
            }
            else if (!NextRow(ref sink)) break;
            n++;
        }
        return n;
    }

    /// <summary>Where the parse routine puts an event: a block row (<see cref="ReadBlock"/>) or the members of a
    /// new <see cref="TraceEvent"/> (<see cref="Read"/>). A struct, so each use gets its own compiled routine and
    /// <see cref="Read"/> keeps allocating just the event and its exact field array, as before blocks.</summary>
    interface IRowSink
    {
        /// <summary>Starts the event (its fields follow).</summary>
        void Append(long timestamp, int cpu, int pid, string comm, string name, string? probe, string? flags, long source);
        /// <summary><paramref name="n"/> more fields of the event, to fill in.</summary>
        Span<EventField> AddFields(int n);
        /// <summary>Drops the last <paramref name="n"/> fields (a template that did not match).</summary>
        void TrimLastFields(int n);
        ReadOnlySpan<EventField> LastFields { get; }
        long LastTimestamp { get; }
    }

    readonly struct BlockSink(EventBlock block) : IRowSink
    {
        public void Append(long timestamp, int cpu, int pid, string comm, string name, string? probe, string? flags, long source) =>
            block.Append(timestamp, cpu, pid, comm, name, probe, flags, source);
        public Span<EventField> AddFields(int n) => block.AddFields(n);
        public void TrimLastFields(int n) => block.TrimLastFields(n);
        public ReadOnlySpan<EventField> LastFields => block.FieldsOf(block.Count - 1);
        public long LastTimestamp => block.TimestampOf(block.Count - 1);
    }

    struct EventSink : IRowSink
    {
        long _ts, _source;
        int _cpu, _pid;
        string _comm, _name;
        string? _probe, _flags;
        EventField[]? _fields;

        public void Append(long timestamp, int cpu, int pid, string comm, string name, string? probe, string? flags, long source)
        {
            _ts = timestamp; _cpu = cpu; _pid = pid; _comm = comm; _name = name; _probe = probe; _flags = flags; _source = source;
            _fields = null;
        }

        public Span<EventField> AddFields(int n)
        {
            if (n == 0) return default;
            int had = _fields?.Length ?? 0;
            if (had == 0) _fields = new EventField[n];
            else Array.Resize(ref _fields, had + n);
            return _fields.AsSpan(had);
        }

        public void TrimLastFields(int n)
        {
            int had = _fields?.Length ?? 0;
            if ((uint)n > (uint)had) throw new ArgumentOutOfRangeException(nameof(n));
            if (n == 0) return;
            _fields = had == n ? null : _fields.AsSpan(0, had - n).ToArray();
        }

        public readonly ReadOnlySpan<EventField> LastFields => _fields;
        public readonly long LastTimestamp => _ts;

        public readonly TraceEvent ToEvent() => new()
        {
            Timestamp = _ts, Cpu = _cpu, Pid = _pid, Comm = _comm, Name = _name, Fields = _fields ?? TraceEvent.NoFields,
            Probe = _probe, Source = _source, Flags = _flags,
        };
    }

    /// <summary>Parses lines up to the next event and puts it into <paramref name="sink"/>: the one parse routine of
    /// <see cref="Read"/> and <see cref="ReadBlock"/>. False at the end of input.</summary>
    bool NextRow<TSink>(ref TSink sink) where TSink : struct, IRowSink
    {
        if (_ended) return false;
        while (_lines.TryReadLine(out var line))
        {
            Stats.Lines++;
            if (!_lines.LineTerminated && line.Trim((byte)' ').Length > 0 && line.TrimStart((byte)' ')[0] != (byte)'#')
            {
                // The input stops in the middle of a line (every writer of these formats ends lines with '\n'):
                // the line may be cut inside a value, so it is not trusted. A clean end, counted.
                Stats.Add("truncated_last_line", StatSeverity.DataLoss);
                break;
            }
            bool skip;
            if (_overwritten > 0)
            {
                // The ring buffer overwrote the oldest events: data loss before the first event kept. That event
                // is kept aside (once per input) and given after the loss.
                var first = new EventSink();
                if (ParseLine(line, ref first, out skip))
                {
                    Stats.Events++;
                    var ev = first.ToEvent();
                    _lastTs = ev.Timestamp;
                    sink.Append(ev.Timestamp, -1, 0, "", SyntheticEvents.DataLoss, null, null, ev.Source);
                    sink.AddFields(1)[0] = EventField.U64("lost", (ulong)_overwritten);
                    Stats.LostEvents += _overwritten;
                    Stats.DataLossMarkers++;
                    Stats.Events++;
                    _overwritten = 0;
                    _stash = ev;
                    return true;
                }
            }
            else if (ParseLine(line, ref sink, out skip))
            {
                Stats.Events++;
                _lastTs = sink.LastTimestamp;
                return true;
            }
            if (skip) continue;
            Stats.UnparsedLines++;
            if (_options.Strict)
                TraceInputException.ThrowAtLine(SourceName, _lines.LineNumber, _why, Encoding.UTF8.GetString(line));
        }
        _ended = true;
        return false;
    }

    static int SkipBlanks(ReadOnlySpan<byte> s, int i)
    {
        while (i < s.Length && (s[i] == (byte)' ' || s[i] == (byte)'\t')) i++;
        return i;
    }

    static bool IsDigit(byte b) => (uint)(b - '0') <= 9;

    /// <summary>Appends the line's event to <paramref name="sink"/> (true), or says why not: a line that is no
    /// event (<paramref name="skip"/>) or an unparsed one (<see cref="_why"/>).</summary>
    bool ParseLine<TSink>(ReadOnlySpan<byte> line, ref TSink sink, out bool skip) where TSink : struct, IRowSink
    {
        skip = false;
        int i = SkipBlanks(line, 0);
        if (i == line.Length) { skip = true; return false; }
        byte c0 = line[i];
        if (c0 == (byte)'#')
        {
            skip = true;
            HeaderComment(line[i..]);
            return false;
        }
        if (TryParseEvent(line, ref sink)) return true;
        // non-event lines that are part of the formats
        var t = line[i..];
        if (t.StartsWith("CPU:"u8) && TryParseLost(t, ref sink)) return true;
        if (t.StartsWith("cpus="u8) && int.TryParse(t[5..], NumberStyles.Integer, CultureInfo.InvariantCulture, out int cpus))
        { Header.CpuCount = cpus; skip = true; return false; }
        if (t.StartsWith("version = "u8) || t.StartsWith("version="u8))
        { Header.FormatVersion = Encoding.UTF8.GetString(t[(t.IndexOf((byte)'=') + 1)..]).Trim(); skip = true; return false; }
        if (t.StartsWith("CPU "u8) && t.EndsWith(" is empty"u8))
        { Stats.Add("empty_cpu_lines", StatSeverity.Info); skip = true; return false; }
        if (Format == TraceFormat.PerfScript && i > 0 && IsCallchainLine(t))
        { Stats.Add("callchain_lines", StatSeverity.Info); skip = true; return false; }
        if (_why.Length == 0) _why = "an event line (TASK-PID [CPU] TIMESTAMP: EVENT: FIELDS)";
        return false;
    }

    void HeaderComment(ReadOnlySpan<byte> t)
    {
        if (t.StartsWith(SelfFormatPrefixBytes))
        {
            RegisterSelfFormat(Encoding.UTF8.GetString(t[SelfFormatPrefix.Length..]));
            return;
        }
        var s = t.Length < 200 ? Encoding.UTF8.GetString(t) : "";
        if (s.StartsWith("# tracer:", StringComparison.Ordinal))
            Header.Properties["tracer"] = s[9..].Trim();
        else if (s.StartsWith("# entries-in-buffer/entries-written:", StringComparison.Ordinal))
        {
            var rest = s["# entries-in-buffer/entries-written:".Length..].Trim();
            int sp = rest.IndexOf(' ');
            var counts = sp < 0 ? rest : rest[..sp];
            Header.Properties["entries-in-buffer/entries-written"] = counts;
            int slash = counts.IndexOf('/');
            if (slash > 0 && long.TryParse(counts[..slash], NumberStyles.None, CultureInfo.InvariantCulture, out long inBuf)
                && long.TryParse(counts[(slash + 1)..], NumberStyles.None, CultureInfo.InvariantCulture, out long written) && written > inBuf)
            {
                _overwritten = written - inBuf;
                Stats.Add("entries_overwritten", StatSeverity.DataLoss, written - inBuf);
            }
            int p = rest.IndexOf("#P:", StringComparison.Ordinal);
            if (p >= 0 && int.TryParse(rest[(p + 3)..].Trim(), NumberStyles.Integer, CultureInfo.InvariantCulture, out int n))
                Header.CpuCount = n;
        }
        else if (s.StartsWith("# os release : ", StringComparison.Ordinal)) // perf script --header
            Header.KernelRelease = s[15..].Trim();
        else if (s.StartsWith("# nrcpus avail : ", StringComparison.Ordinal)
            && int.TryParse(s[17..].Trim(), NumberStyles.Integer, CultureInfo.InvariantCulture, out int nc))
            Header.CpuCount = nc;
    }

    /// <summary><c># replayer:format NAME KIND NAMES FMT</c>: the print format Replayer's text writer used.</summary>
    void RegisterSelfFormat(string s)
    {
        var parts = s.Split(' ', 4);
        if (parts.Length < 3 || !parts[0].Contains(':'))
        {
            if (_options.Strict)
                TraceInputException.ThrowAtLine(SourceName, _lines.LineNumber, "'# replayer:format SYS:EVENT KIND NAMES FORMAT'", s);
            Stats.Add("bad_format_comments", StatSeverity.Error);
            return;
        }
        string fmt = parts.Length > 3 ? parts[3] : "";
        var kind = parts[1] switch { "kprobe" => ProbeKind.Kprobe, "kretprobe" => ProbeKind.Kretprobe, _ => ProbeKind.None };
        var t = PrintTemplate.Parse(fmt);
        var names = parts[2] == "-" ? [] : parts[2].Split(',');
        if (names.Length != t.Fields.Count)
        {
            if (_options.Strict)
                TraceInputException.ThrowAtLine(SourceName, _lines.LineNumber, $"{t.Fields.Count} field names", parts[2]);
            Stats.Add("bad_format_comments", StatSeverity.Error);
            return;
        }
        var fields = t.Fields.Select((f, k) => new TemplateField { Name = string.Intern(names[k]), Type = f.Type, Style = f.Style, Syntax = f.Syntax, Spec = f.Spec, Arg = f.Arg }).ToArray();
        var full = parts[0];
        int colon = full.IndexOf(':');
        var schema = new EventSchema(full[..colon], full[(colon + 1)..], [PrintTemplate.FromParts(fmt, kind, t.Literals.ToArray(), fields)], SchemaOrigin.SelfDescribed);
        _registry.Replace(schema);
        _names.Clear();
    }

    static bool IsCallchainLine(ReadOnlySpan<byte> t)
    {
        // "ffffffff998f9486 __alloc_pages+0x256 ([kernel.kallsyms])"
        int sp = t.IndexOf((byte)' ');
        if (sp <= 0) return false;
        foreach (var b in t[..sp]) if (!Uri.IsHexDigit((char)b)) return false;
        return t.EndsWith(")"u8) && t.LastIndexOf(" ("u8) > sp;
    }

    bool TryParseLost<TSink>(ReadOnlySpan<byte> t, ref TSink sink) where TSink : struct, IRowSink
    {
        // CPU:1 [LOST 123 EVENTS]   (ftrace)   CPU:1 [123 EVENTS DROPPED] / CPU:1 [LOST EVENTS]
        int i = 4, s = i;
        while (i < t.Length && IsDigit(t[i])) i++;
        if (i == s || !int.TryParse(t[s..i], NumberStyles.Integer, CultureInfo.InvariantCulture, out int cpu)) return false;
        var rest = t[i..];
        if (!rest.StartsWith(" ["u8) || !rest.EndsWith("]"u8)) return false;
        var inner = rest[2..^1];
        if (inner.IndexOf("LOST"u8) < 0 && inner.IndexOf("DROPPED"u8) < 0) return false;
        int d = 0;
        while (d < inner.Length && !IsDigit(inner[d])) d++;
        Loss(ref sink, _lastTs, cpu, 0, "", DigitsAt(inner, d));
        return true;
    }

    /// <summary>The decimal number starting at <paramref name="at"/> (0 when there is none).</summary>
    static ulong DigitsAt(ReadOnlySpan<byte> s, int at)
    {
        int end = at;
        while (end < s.Length && IsDigit(s[end])) end++;
        ulong n = 0;
        if (end > at) ulong.TryParse(s[at..end], NumberStyles.None, CultureInfo.InvariantCulture, out n);
        return n;
    }

    /// <summary>A data-loss marker as a row, counted in the stats.</summary>
    void Loss<TSink>(ref TSink sink, long ts, int cpu, int pid, string comm, ulong lost) where TSink : struct, IRowSink
    {
        Stats.LostEvents += (long)lost;
        Stats.DataLossMarkers++;
        sink.Append(ts, cpu, pid, comm, SyntheticEvents.DataLoss, null, null, _lines.LineNumber);
        sink.AddFields(1)[0] = EventField.U64("lost", lost);
    }

    /// <summary>perf script --show-lost-events: "... PERF_RECORD_LOST lost: 12" (any spelling with a number after "lost").</summary>
    void PerfLost<TSink>(ref TSink sink, ReadOnlySpan<byte> t, long ts, int cpu, int pid, ReadOnlySpan<byte> comm) where TSink : struct, IRowSink
    {
        ulong lost = 0;
        var rest = t["PERF_RECORD_LOST"u8.Length..];
        int k = rest.LastIndexOf("lost"u8);
        if (k >= 0)
        {
            int d = k + 4;
            while (d < rest.Length && (rest[d] == (byte)':' || rest[d] == (byte)' ')) d++;
            lost = DigitsAt(rest, d);
        }
        Loss(ref sink, ts, cpu, pid, _interner.Get(comm), lost);
    }

    /// <summary>sec.frac followed by ':' → nanoseconds.</summary>
    static bool TryParseTimestamp(ReadOnlySpan<byte> tok, out long ns)
    {
        ns = 0;
        if (tok.Length < 2 || tok[^1] != (byte)':') return false;
        tok = tok[..^1];
        int dot = tok.IndexOf((byte)'.');
        if (dot < 0)
        {
            // non-nanosecond trace clocks (counter, x86-tsc, local with ns off) print a bare integer
            if (tok.Length > 19) return false;
            long v = 0;
            foreach (var b in tok) { if (!IsDigit(b)) return false; v = v * 10 + (b - '0'); }
            ns = v;
            return true;
        }
        if (dot == 0 || dot == tok.Length - 1 || tok.Length - dot - 1 > 9 || dot > 10) return false;
        long sec = 0;
        for (int k = 0; k < dot; k++)
        {
            if (!IsDigit(tok[k])) return false;
            sec = sec * 10 + (tok[k] - '0');
        }
        long frac = 0;
        int digits = tok.Length - dot - 1;
        for (int k = dot + 1; k < tok.Length; k++)
        {
            if (!IsDigit(tok[k])) return false;
            frac = frac * 10 + (tok[k] - '0');
        }
        for (int k = digits; k < 9; k++) frac *= 10;
        ns = sec * 1_000_000_000 + frac;
        return true;
    }

    static int TokenEnd(ReadOnlySpan<byte> s, int i)
    {
        while (i < s.Length && s[i] != (byte)' ' && s[i] != (byte)'\t') i++;
        return i;
    }

    bool TryParseEvent<TSink>(ReadOnlySpan<byte> line, ref TSink sink) where TSink : struct, IRowSink
    {
        int from = 0;
        int bracket, cpu = 0, after;
        long ts = 0;
        ReadOnlySpan<byte> flags = default;
        while (true)
        {
            int b = line[from..].IndexOf(" ["u8);
            if (b < 0)
            {
                // perf script -F without cpu: "comm tid ts: event: ..." or "ts: event: ..."
                if (Format == TraceFormat.PerfScript && from == 0 && FindPerfTimestamp(line, out bracket, out ts, out after))
                {
                    cpu = -1;
                    Stats.Add("events_without_cpu", StatSeverity.Info);
                    break;
                }
                _why = "TASK-PID [CPU] TIMESTAMP: at the start of an event line";
                return false;
            }
            b += from;
            from = b + 1;
            int j = b + 2, ds = j;
            while (j < line.Length && IsDigit(line[j])) j++;
            if (j == ds || j - ds > 10 || j >= line.Length || line[j] != (byte)']') continue;
            if (j + 1 < line.Length && line[j + 1] != (byte)' ') continue;
            long cpuv = 0;
            for (int k = ds; k < j; k++) cpuv = cpuv * 10 + (line[k] - '0');
            if (cpuv > uint.MaxValue) continue;
            cpu = unchecked((int)(uint)cpuv); // Replayer's writer prints an unknown cpu (-1) as its u32
            int k1 = SkipBlanks(line, j + 1);
            int e1 = TokenEnd(line, k1);
            flags = default;
            if (!TryParseTimestamp(line[k1..e1], out ts))
            {
                int k2 = SkipBlanks(line, e1);
                int e2 = TokenEnd(line, k2);
                if (e1 == k1 || !TryParseTimestamp(line[k2..e2], out ts)) continue;
                flags = line[k1..e1];
                e1 = e2;
            }
            bracket = b;
            after = e1;
            break;
        }

        // TASK-PID, TASK PID, TASK PID/TID, optional (TGID)
        var head = line[..bracket].TrimEnd((byte)' ');
        if (head.Length > 0 && head[^1] == (byte)')')
        {
            int op = head.LastIndexOf((byte)'(');
            if (op < 0) { _why = "'(TGID)' before [CPU]"; return false; }
            head = head[..op].TrimEnd((byte)' ');
        }
        int pe = head.Length, ps = pe;
        while (ps > 0 && IsDigit(head[ps - 1])) ps--;
        bool perf = Format == TraceFormat.PerfScript;
        if (perf && head.Trim((byte)' ').Length == 0) { ps = 0; pe = 0; }
        else if (ps == pe || (ps == 0 && !perf) || pe - ps > 10) { _why = "a PID before [CPU]"; return false; }
        long pidv = pe > ps ? long.Parse(head[ps..pe], NumberStyles.None, CultureInfo.InvariantCulture) : -1;
        if (pidv > uint.MaxValue) { _why = "a PID before [CPU]"; return false; }
        int pid = pidv < 0 ? -1 : unchecked((int)(uint)pidv); // Replayer's writer prints a negative pid as its u32
        byte sep = ps > 0 ? head[ps - 1] : (byte)' ';
        ReadOnlySpan<byte> comm;
        if (ps == 0) comm = default;
        else if (sep == (byte)'-')
        {
            comm = head[..(ps - 1)];
            if (ps >= 2 && head[ps - 2] == (byte)'-' && comm.Length > 0) { } // "comm--1"? keep
        }
        else if (sep == (byte)'/')
        {
            int qs = ps - 1;
            while (qs > 0 && IsDigit(head[qs - 1])) qs--;
            if (qs == ps - 1 || qs == 0 || head[qs - 1] != (byte)' ') { _why = "PID/TID before [CPU]"; return false; }
            comm = head[..(qs - 1)];
        }
        else if (sep == (byte)' ') comm = head[..(ps - 1)];
        else { _why = "TASK-PID before [CPU]"; return false; }
        comm = comm.Trim((byte)' ');

        // [period] EVENT: payload
        int i = SkipBlanks(line, after);
        {
            int pe2 = i;
            while (pe2 < line.Length && IsDigit(line[pe2])) pe2++;
            if (pe2 > i && pe2 < line.Length && line[pe2] == (byte)' ') i = SkipBlanks(line, pe2);
        }
        if (line[i..].StartsWith("PERF_RECORD_LOST"u8))
        {
            PerfLost(ref sink, line[i..], ts, cpu, pid, comm);
            return true;
        }
        int ns = i, ne = -1;
        for (int j = i; j < line.Length; j++)
        {
            byte ch = line[j];
            if (ch == (byte)' ' || ch == (byte)'\t') break;
            if (ch == (byte)':' && (j + 1 == line.Length || line[j + 1] == (byte)' ' || line[j + 1] == (byte)'\t')) { ne = j; break; }
        }
        if (ne <= ns)
        {
            // function tracer: "func <-parent" (ftrace:function, print fmt " %ps <-- %ps")
            int fe = TokenEnd(line, ns);
            int ps2 = SkipBlanks(line, fe);
            if (fe > ns && line[ps2..].StartsWith("<-"u8))
            {
                var parent = line[(ps2 + 2)..].TrimStart((byte)'-').Trim((byte)' ');
                sink.Append(ts, cpu, pid, _interner.Get(comm), FunctionName, null, flags.Length == 0 ? null : _interner.Get(flags), _lines.LineNumber);
                var ff = sink.AddFields(2);
                ff[0] = EventField.Str("ip", _interner.Get(line[ns..fe]));
                ff[1] = EventField.Str("parent_ip", _interner.Get(parent));
                return true;
            }
            _why = "'EVENT:' after the timestamp";
            return false;
        }
        var nameBytes = line[ns..ne];
        var payload = line[SkipBlanks(line, ne + 1)..];
        if (Format == TraceFormat.PerfScript) payload = StripPerfIpSym(payload);

        var info = Resolve(nameBytes);
        string? probe = null;
        if (!info.PrintSymbol && info.PrintkField == null
            && (info.ProbeExpected || info.Schema == null) && payload.Length > 0 && payload[0] == (byte)'(')
        {
            int cp = payload.IndexOf((byte)')');
            if (cp > 0 && (cp + 1 == payload.Length || payload[cp + 1] == (byte)' '))
            {
                probe = _interner.Get(payload[1..cp]);
                payload = payload[SkipBlanks(payload, cp + 1)..];
            }
        }
        sink.Append(ts, cpu, pid, _interner.Get(comm), info.FullName, probe, flags.Length == 0 ? null : _interner.Get(flags), _lines.LineNumber);
        if (info.PrintSymbol)
        {
            var pf = sink.AddFields(2);
            pf[0] = EventField.Str("ip", info.ShortName);
            pf[1] = EventField.Str("buf", payload.Length == 0 ? "" : Encoding.UTF8.GetString(payload));
        }
        else if (info.PrintkField != null) PrintkFields(ref sink, info.PrintkField, payload);
        else ParseFields(info, payload, ref sink);
        if (info.IsDataLoss)
        {
            Stats.DataLossMarkers++;
            foreach (ref readonly var f in sink.LastFields) if (f.Name == "lost" && f.IsInteger) Stats.LostEvents += (long)f.Bits;
        }
        return true;
    }

    /// <summary>trace_printk as <c>trace-cmd report</c> prints it (print format <c>"%ps: %s"</c>): <c>ip</c> (the
    /// caller's symbol) and the message, as the binary reader decodes <c>ftrace:bprint</c>/<c>bputs</c>. libtraceevent's
    /// <c>(NO FORMAT FOUND at ADDR)</c> (the format's address is not in the printk formats) leaves the message out,
    /// as the binary reader does, and is counted.</summary>
    void PrintkFields<TSink>(ref TSink sink, string field, ReadOnlySpan<byte> payload) where TSink : struct, IRowSink
    {
        int sep = payload.IndexOf(": "u8);
        ReadOnlySpan<byte> ip, msg;
        if (sep > 0) { ip = payload[..sep]; msg = payload[(sep + 2)..]; }
        else if (payload.Length > 1 && payload[^1] == (byte)':' && payload.IndexOf((byte)' ') < 0) { ip = payload[..^1]; msg = default; }
        else
        {
            Stats.Add("template_mismatch", StatSeverity.Error);
            Stats.Add("template_mismatch:" + (field == "buf" ? "ftrace:bprint" : "ftrace:bputs"), StatSeverity.Error);
            ParseGeneric(payload, ref sink);
            return;
        }
        var ipField = EventField.Str("ip", _interner.Get(ip));
        if (msg.StartsWith("(NO FORMAT FOUND at "u8) && msg.TrimEnd((byte)' ').EndsWith(")"u8))
        {
            Stats.Add("printk_format_missing", StatSeverity.Info);
            sink.AddFields(1)[0] = ipField;
            return;
        }
        var pk = sink.AddFields(2);
        pk[0] = ipField;
        pk[1] = EventField.Str(field, msg.Length == 0 ? "" : Encoding.UTF8.GetString(msg));
    }

    /// <summary>The first "sec.frac:" token of a line (perf script without the cpu column).</summary>
    static bool FindPerfTimestamp(ReadOnlySpan<byte> line, out int start, out long ts, out int end)
    {
        int i = SkipBlanks(line, 0);
        while (i < line.Length)
        {
            int e = TokenEnd(line, i);
            var tok = line[i..e];
            if (tok.IndexOf((byte)'.') > 0 && TryParseTimestamp(tok, out ts)) { start = i; end = e; return true; }
            if (tok.Length > 0 && tok[^1] == (byte)':') break; // an event name: no timestamp before it
            i = SkipBlanks(line, e);
        }
        start = end = 0;
        ts = 0;
        return false;
    }

    /// <summary>perf script -F ip,sym adds " ffffffff998f9486 __alloc_pages+0x256 ([kernel.kallsyms])".</summary>
    internal static ReadOnlySpan<byte> StripPerfIpSym(ReadOnlySpan<byte> p)
    {
        if (p.Length == 0 || p[^1] != (byte)')') return p;
        int op = p.LastIndexOf(" ("u8);
        if (op < 0 || op + 2 >= p.Length || (p[op + 2] != (byte)'[' && p[op + 2] != (byte)'/')) return p;
        int symStart = p[..op].LastIndexOf((byte)' ');
        if (symStart < 0) return p;
        int ipStart = p[..symStart].LastIndexOf((byte)' ');
        var ip = p[(ipStart + 1)..symStart];
        if (ip.Length == 0 || ip.Length > 16) return p;
        foreach (var b in ip) if (!Uri.IsHexDigit((char)b)) return p;
        return ipStart < 0 ? default : p[..ipStart].TrimEnd((byte)' ');
    }

    NameInfo Resolve(ReadOnlySpan<byte> nameBytes)
    {
        int hash = Utf8Map<NameInfo>.Hash(nameBytes);
        var info = _names.Find(nameBytes, hash);
        if (info != null) return info;
        var name = _interner.Get(nameBytes);
        int colon = name.IndexOf(':');
        var schema = _registry.Find(name);
        string full, shortName = colon >= 0 ? name[(colon + 1)..] : name;
        bool printSym = false;
        if (schema != null) full = schema.FullName;
        else if (colon >= 0) full = name;
        else if (name is "bprint" or "bputs") full = "ftrace:" + name; // trace-cmd report's trace_printk lines
        else if (name == "tracing_mark_write" && Format != TraceFormat.PerfScript)
        {
            // raw ftrace prints the print event as "%ps: %s": the symbol stands where the event name would be
            full = PrintName;
            printSym = true;
        }
        else
        {
            full = UnknownSystem + ":" + name;
            Stats.Add("unknown_event_names", StatSeverity.Info);
        }
        info = new NameInfo
        {
            FullName = string.Intern(full),
            ShortName = string.Intern(shortName),
            Schema = schema,
            PrintSymbol = printSym,
            // trace_printk lines as report prints them, unless the input said how it printed them (Replayer's writers)
            PrintkField = schema?.Origin == SchemaOrigin.SelfDescribed ? null : full == "ftrace:bprint" ? "buf" : full == "ftrace:bputs" ? "str" : null,
            ProbeExpected = schema != null && schema.Templates.Any(t => t.Probe != ProbeKind.None),
            IsDataLoss = full == SyntheticEvents.DataLoss,
        };
        _names.TryAdd(nameBytes, hash, info);
        return info;
    }

    /// <summary>Appends the payload's fields to the block's last row: the first template of the event's schema
    /// that matches (the last one that did is tried first), else key=value tokens or the text.</summary>
    void ParseFields<TSink>(NameInfo info, ReadOnlySpan<byte> payload, ref TSink sink) where TSink : struct, IRowSink
    {
        if (info.Schema is { } schema)
        {
            var ts = schema.Templates;
            int n = ts.Count;
            for (int k = 0; k < n; k++)
            {
                int idx = (info.LastTemplate + k) % n;
                var t = ts[idx];
                int count = t.FieldCount;
                if (t.TryMatch(payload, _valueInterner, sink.AddFields(count)))
                {
                    info.LastTemplate = idx;
                    return;
                }
                sink.TrimLastFields(count);
            }
            Stats.Add("template_mismatch", StatSeverity.Error);
            Stats.Add("template_mismatch:" + info.FullName, StatSeverity.Error);
        }
        else Stats.Add("events_without_format", StatSeverity.Info);
        ParseGeneric(payload, ref sink);
    }

    static bool IsKeyChar(byte b) => char.IsAsciiLetterOrDigit((char)b) || b == (byte)'_' || b == (byte)'.' || b == (byte)'-' || b == (byte)'[' || b == (byte)']';

    /// <summary>key=value tokens, typed by their text; anything else: the whole payload as one string field "text".</summary>
    void ParseGeneric<TSink>(ReadOnlySpan<byte> payload, ref TSink sink) where TSink : struct, IRowSink
    {
        var p = payload.TrimEnd((byte)' ');
        if (p.Length == 0) return;
        int count = 0;
        bool kv = true;
        int i = 0;
        while (i < p.Length)
        {
            int e = TokenEnd(p, i);
            var tok = p[i..e];
            int eq = tok.IndexOf((byte)'=');
            if (eq <= 0) { kv = false; break; }
            foreach (var b in tok[..eq]) if (!IsKeyChar(b)) { kv = false; break; }
            if (!kv) break;
            count++;
            i = SkipBlanks(p, e);
        }
        if (!kv || i != p.Length || p.IndexOf((byte)'\t') >= 0 || p.IndexOf("  "u8) >= 0)
        {
            sink.AddFields(1)[0] = EventField.Str("text", Encoding.UTF8.GetString(payload));
            return;
        }
        var res = sink.AddFields(count);
        i = 0;
        for (int k = 0; k < count; k++)
        {
            int e = TokenEnd(p, i);
            var tok = p[i..e];
            int eq = tok.IndexOf((byte)'=');
            var key = _interner.Get(tok[..eq]);
            res[k] = TypedValue(key, tok[(eq + 1)..]);
            i = SkipBlanks(p, e);
        }
    }

    EventField TypedValue(string key, ReadOnlySpan<byte> v)
    {
        if (v.Length > 2 && v[0] == (byte)'0' && (v[1] | 0x20) == (byte)'x' && v.Length <= 18)
        {
            if (ulong.TryParse(v[2..], NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out var h))
                return EventField.U64(key, h, FieldStyle.Hex);
        }
        else if (v.Length > 0 && v.Length <= 20)
        {
            bool neg = v[0] == (byte)'-';
            var d = neg ? v[1..] : v;
            bool digits = d.Length > 0;
            foreach (var b in d) if (!IsDigit(b)) { digits = false; break; }
            if (digits)
            {
                if (neg && long.TryParse(v, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var sv) && sv != 0)
                    return EventField.S64(key, sv);
                if (!neg && (d.Length == 1 || d[0] != (byte)'0') && ulong.TryParse(d, NumberStyles.None, CultureInfo.InvariantCulture, out var uv))
                    return EventField.U64(key, uv);
            }
        }
        return EventField.Str(key, _valueInterner.Get(v));
    }

    public void Dispose() => _lines.Dispose();
}
