using System.Globalization;
using System.Text;
using Replayer.Core;

namespace Replayer.Formats.Binary;

/// <summary>What <see cref="TraceDatWriter"/> embeds besides the events.</summary>
public sealed class TraceDatWriterOptions
{
    /// <summary>Known event formats (the capture's <c>formats/</c> or those of a binary input). Events
    /// with no format here get a synthesized one.</summary>
    public List<EventFormat> Formats { get; } = new();
    /// <summary>Kallsyms text of the source, if any (probe locations are resolved against it).</summary>
    public string? Kallsyms { get; set; }
    /// <summary>Kernel variables print formats use (<c>vmemmap_base</c>), embedded as kallsyms data symbols.</summary>
    public Dictionary<string, ulong> SymbolValues { get; } = new(StringComparer.Ordinal);
    public string Uname { get; set; } = "Linux replayer 0.0.0 x86_64";
    /// <summary>At least this many CPUs (the file has one buffer per CPU).</summary>
    public int CpuCount { get; set; }
    public bool BigEndian { get; set; }
}

/// <summary>
/// Writes canonical events as a version-6 uncompressed trace.dat that <c>trace-cmd report</c> and
/// KernelShark open: event formats embedded, printed fields turned back into binary records (inverse
/// of the print-fmt evaluation), saved cmdlines, kallsyms for kprobe locations. Every record is
/// decoded again after encoding; an event whose decoded fields, probe or comm differ from the source
/// is counted in <see cref="LossyEvents"/> (by reason in <see cref="Lossy"/>), never dropped silently.
/// The file is written on <see cref="Dispose"/> (the CPU offsets table precedes the data).
/// </summary>
public sealed class TraceDatWriter : IDisposable
{
    readonly Stream _out;
    readonly bool _leaveOpen;
    readonly TraceDatWriterOptions _opt;
    readonly Dictionary<string, Encoder> _byName = new(StringComparer.Ordinal);
    readonly Dictionary<string, List<EventFormat>> _byShort = new(StringComparer.Ordinal);
    readonly HashSet<int> _ids = new();
    readonly List<(MemoryStream Pages, RingPageWriter Writer)> _cpus = new(); // pages built as events come
    readonly Dictionary<int, string> _comms = new();
    readonly Dictionary<int, Dictionary<string, long>> _commCounts = new();

    void AddLossy(string reason, long n, string? example)
    {
        LossyEvents += n;
        Lossy[reason] = Lossy.GetValueOrDefault(reason) + n;
        if (example != null) LossyExamples.TryAdd(reason, example);
    }
    readonly SymbolTable _syms;
    int _nextId = 50000;
    bool _done;

    public long Events { get; private set; }
    public long LossyEvents { get; private set; }
    /// <summary>Lossy events by reason (<c>fields:system:event</c>, <c>probe:…</c>, <c>pid</c>; <c>comm</c> is
    /// known only after <see cref="Finish"/>).</summary>
    public SortedDictionary<string, long> Lossy { get; } = new(StringComparer.Ordinal);
    /// <summary>One example per lossy reason: source fields that did not come back → what came back.</summary>
    public SortedDictionary<string, string> LossyExamples { get; } = new(StringComparer.Ordinal);
    /// <summary>Kernel variable values print formats use (given, or learned from the events: <c>vmemmap_base</c>
    /// from <c>page=</c> and <c>pfn=</c>); a reader needs them to print those fields back.</summary>
    public IReadOnlyDictionary<string, ulong> SymbolValues => _syms.Values;
    /// <summary>Event names for which a format was synthesized.</summary>
    public SortedSet<string> SynthesizedFormats { get; } = new(StringComparer.Ordinal);

    public TraceDatWriter(Stream output, TraceDatWriterOptions? options = null, bool leaveOpen = false)
    {
        _out = output;
        _leaveOpen = leaveOpen;
        _opt = options ?? new TraceDatWriterOptions();
        foreach (var f in _opt.Formats)
        {
            if (!_ids.Add(f.Id)) continue;
            if (!_byShort.TryGetValue(f.Name, out var l)) _byShort[f.Name] = l = new();
            l.Add(f);
        }
        _syms = new SymbolTable(_opt.Kallsyms, _opt.SymbolValues);
    }

    public void Write(TraceEvent e)
    {
        if (_done) throw new ObjectDisposedException(nameof(TraceDatWriter));
        if (!_byName.TryGetValue(e.Name, out var enc)) _byName[e.Name] = enc = CreateEncoder(e);
        enc.LastDiff = null;
        var rec = enc.Encode(e, _syms, out string? lossy);
        if (lossy == null && e.Pid == 0 && e.Comm.Length > 0 && e.Comm != "<idle>")
        {
            lossy = "comm"; // readers (trace-cmd too) print pid 0 as <idle> whatever cmdlines say
            enc.LastDiff = $"pid 0 is {e.Comm}, reads back as <idle>";
        }
        else if (lossy == null && e.Comm.Length > 0)
        {
            // Saved cmdlines hold one comm per pid: the most frequent one is kept (in Finish), the others are lossy.
            if (!_commCounts.TryGetValue(e.Pid, out var counts)) _commCounts[e.Pid] = counts = new Dictionary<string, long>(1, StringComparer.Ordinal);
            counts[e.Comm] = counts.GetValueOrDefault(e.Comm) + 1;
        }
        if (lossy != null) AddLossy(lossy, 1, enc.LastDiff);
        int cpu = Math.Max(0, e.Cpu);
        while (_cpus.Count <= cpu) { var ms = new MemoryStream(); _cpus.Add((ms, new RingPageWriter(ms, _opt.BigEndian))); }
        _cpus[cpu].Writer.Add(e.Timestamp, rec);
        Events++;
    }

    Encoder CreateEncoder(TraceEvent e)
    {
        int colon = e.Name.IndexOf(':');
        string sys = colon > 0 ? e.Name[..colon] : "replayer", name = colon > 0 ? e.Name[(colon + 1)..] : e.Name;
        EventFormat? f = null;
        if (_byShort.TryGetValue(name, out var cands))
            f = cands.FirstOrDefault(c => c.System == sys) ?? (colon < 0 && cands.Count == 1 ? cands[0] : null);
        if (f == null)
        {
            while (!_ids.Add(_nextId)) _nextId++;
            f = Synthesize(sys, name, _nextId, e);
            SynthesizedFormats.Add(sys + ":" + name);
        }
        return new Encoder(f, _opt.BigEndian);
    }

    /// <summary>A format for an event no format describes: each field one record field (u64/s64, or a
    /// <c>__data_loc char[]</c> string) printed as <c>name=value</c> in its style; kprobe/kretprobe
    /// location fields when the event has a probe column.</summary>
    static EventFormat Synthesize(string sys, string name, int id, TraceEvent e)
    {
        var sb = new StringBuilder();
        sb.Append("name: ").Append(name).Append("\nID: ").Append(id).Append("\nformat:\n");
        sb.Append("\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;\n");
        sb.Append("\tfield:unsigned char common_flags;\toffset:2;\tsize:1;\tsigned:0;\n");
        sb.Append("\tfield:unsigned char common_preempt_count;\toffset:3;\tsize:1;\tsigned:0;\n");
        sb.Append("\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;\n\n");
        int off = 8;
        var fmt = new StringBuilder();
        var args = new List<string>();
        void Field(string decl, int size, bool signed)
        {
            sb.Append("\tfield:").Append(decl).Append(";\toffset:").Append(off).Append(";\tsize:").Append(size).Append(";\tsigned:").Append(signed ? 1 : 0).Append(";\n");
            off += size;
        }
        if (e.Probe != null && e.Probe.Contains(" <- ", StringComparison.Ordinal))
        {
            Field("unsigned long __probe_func", 8, false); Field("unsigned long __probe_ret_ip", 8, false);
            fmt.Append("(%lx <- %lx)"); args.Add("REC->__probe_func"); args.Add("REC->__probe_ret_ip");
        }
        else if (e.Probe != null)
        {
            Field("unsigned long __probe_ip", 8, false);
            fmt.Append("(%lx)"); args.Add("REC->__probe_ip");
        }
        var strs = new List<string>();
        foreach (var fld in e.Fields)
        {
            string n = Sanitize(fld.Name);
            if (fmt.Length > 0) fmt.Append(' ');
            fmt.Append(fld.Name).Append('=');
            switch (fld.Type)
            {
                case FieldType.Str:
                    Field("__data_loc char[] " + n, 4, false);
                    fmt.Append("%s"); args.Add($"__get_str({n})");
                    break;
                case FieldType.S64:
                case FieldType.U64 when fld.Style == FieldStyle.Decimal:
                    // text does not say whether "1" was signed: decimals are s64 so that a later "-1" fits
                    // (an unsigned value above 2^63 then prints negative: counted lossy)
                    Field("s64 " + n, 8, true);
                    fmt.Append("%lld"); args.Add("REC->" + n);
                    break;
                default:
                    Field("u64 " + n, 8, false);
                    fmt.Append(fld.Style switch { FieldStyle.Hex => "0x%llx", FieldStyle.BareHex => "%llx", FieldStyle.Pointer => "%016llx", _ => "%llu" });
                    args.Add("REC->" + n);
                    break;
            }
        }
        sb.Append("\nprint fmt: \"").Append(Escape(fmt.ToString())).Append('"');
        foreach (var a in args) sb.Append(", ").Append(a);
        sb.Append('\n');
        return EventFormat.Parse(sb.ToString(), sys, "synthesized format of " + sys + ":" + name, 0);
    }

    static string Sanitize(string s)
    {
        var sb = new StringBuilder(s.Length);
        foreach (char c in s) sb.Append(char.IsAsciiLetterOrDigit(c) || c == '_' ? c : '_');
        if (sb.Length == 0 || char.IsAsciiDigit(sb[0])) sb.Insert(0, '_');
        return sb.ToString();
    }

    static string Escape(string s) => s.Replace("\\", "\\\\", StringComparison.Ordinal).Replace("\"", "\\\"", StringComparison.Ordinal)
        .Replace("\n", "\\n", StringComparison.Ordinal).Replace("\t", "\\t", StringComparison.Ordinal);

    /// <summary>The text of a format file for <paramref name="f"/> (as the kernel prints it in tracefs).</summary>
    public static string FormatText(EventFormat f)
    {
        var sb = new StringBuilder();
        sb.Append("name: ").Append(f.Name).Append("\nID: ").Append(f.Id).Append("\nformat:\n");
        bool common = true;
        foreach (var fld in f.Fields)
        {
            if (common && !fld.Name.StartsWith("common_", StringComparison.Ordinal)) { sb.Append('\n'); common = false; }
            string decl = fld.DataLoc ? $"__data_loc {fld.Type}[] {fld.Name}" : fld.RelLoc ? $"__rel_loc {fld.Type}[] {fld.Name}"
                : fld.IsArray ? $"{fld.Type} {fld.Name}[{fld.ArrayLength}]" : $"{fld.Type} {fld.Name}";
            sb.Append("\tfield:").Append(decl).Append(";\toffset:").Append(fld.Offset).Append(";\tsize:").Append(fld.Size)
              .Append(";\tsigned:").Append(fld.Signed ? 1 : 0).Append(";\n");
        }
        if (common) sb.Append('\n');
        sb.Append("\nprint fmt: \"").Append(Escape(f.PrintFormat)).Append('"');
        foreach (var a in f.PrintArgs) sb.Append(", ").Append(a);
        sb.Append('\n');
        return sb.ToString();
    }

    /// <summary>Writes the file (once).</summary>
    public void Finish()
    {
        if (_done) return;
        _done = true;
        bool big = _opt.BigEndian;
        foreach (var (pid, counts) in _commCounts)
        {
            var keep = counts.MaxBy(kv => kv.Value);
            _comms[pid] = keep.Key;
            foreach (var (comm, n) in counts)
                if (comm != keep.Key) AddLossy("comm", n, $"pid {pid} is {comm} in {n} event(s), saved as {keep.Key}");
        }
        var formats = _byName.Values.Select(en => en.Format).Concat(_opt.Formats)
            .DistinctBy(f => f.Id).Select(f => (f.System, FormatText(f))).ToList();
        var cmdlines = new StringBuilder();
        foreach (var (pid, comm) in _comms.OrderBy(k => k.Key)) cmdlines.Append(pid).Append(' ').Append(comm).Append('\n');
        var meta = TraceDatLayout.V6Metadata(big, formats, _syms.Text(), cmdlines.ToString());
        int ncpu = Math.Max(Math.Max(1, _opt.CpuCount), _cpus.Count);
        var pages = new List<Stream>();
        try
        {
            for (int c = 0; c < ncpu; c++)
            {
                if (c < _cpus.Count) { _cpus[c].Writer.Flush(); pages.Add(_cpus[c].Pages); }
                else pages.Add(new MemoryStream());
            }
            TraceDatLayout.WriteV6(_out, big, meta, _opt.Uname, pages);
            _out.Flush();
        }
        finally { foreach (var p in pages) p.Dispose(); _cpus.Clear(); }
    }

    public void Dispose()
    {
        Finish();
        if (!_leaveOpen) _out.Dispose();
    }

    // ------------------------------------------------------------------ symbols

    /// <summary>Kallsyms for the written file: the source's, plus symbols placed for probe locations no
    /// source symbol explains (each followed by a gap symbol so <c>func+off/size</c> prints back the same).</summary>
    internal sealed class SymbolTable
    {
        readonly List<(ulong Addr, char Type, string Name)> _lines = new();
        readonly Dictionary<string, ulong> _byName = new(StringComparer.Ordinal);
        ulong _cursor = 0xffffffffc1000000UL;
        Kallsyms? _parsed;
        bool _dirty = true;
        public Dictionary<string, ulong> Values { get; }

        public SymbolTable(string? kallsyms, IReadOnlyDictionary<string, ulong> values)
        {
            Values = new Dictionary<string, ulong>(values, StringComparer.Ordinal);
            if (kallsyms != null)
                foreach (var line in kallsyms.Split('\n'))
                {
                    var p = line.Split(' ', 4, StringSplitOptions.RemoveEmptyEntries);
                    if (p.Length < 3 || !ulong.TryParse(p[0], NumberStyles.HexNumber, CultureInfo.InvariantCulture, out var a)) continue;
                    string name = p.Length > 3 ? p[2] + " " + p[3] : p[2];
                    _lines.Add((a, p[1][0], name));
                    _byName.TryAdd(p[2], a);
                    if (a >= _cursor && a < 0xffffffffff000000UL) _cursor = a + 0x100000;
                }
                    }

        public Kallsyms? Kallsyms
        {
            get
            {
                if (_dirty) { _parsed = global::Replayer.Formats.Binary.Kallsyms.Parse(Encoding.UTF8.GetBytes(Text()), out _); _dirty = false; }
                return _parsed;
            }
        }

        public string Text()
        {
            var sb = new StringBuilder();
            foreach (var (a, t, n) in _lines) sb.Append(a.ToString("x16", CultureInfo.InvariantCulture)).Append(' ').Append(t).Append(' ').Append(n).Append('\n');
            return sb.ToString();
        }

        /// <summary>The address of <c>func+0xoff/0xsize</c>, <c>func</c> or a hex address.</summary>
        public ulong? Resolve(string text)
        {
            text = text.Trim();
            if (text.Length > 0 && ulong.TryParse(text.StartsWith("0x", StringComparison.Ordinal) ? text[2..] : text, NumberStyles.HexNumber, CultureInfo.InvariantCulture, out var hex)
                && !_byName.ContainsKey(text))
                return hex;
            string name = text;
            ulong off = 0, size = 0x1000;
            int plus = text.LastIndexOf('+');
            if (plus > 0)
            {
                name = text[..plus];
                var rest = text[(plus + 1)..];
                int slash = rest.IndexOf('/');
                var o = slash >= 0 ? rest[..slash] : rest;
                if (!TryHex(o, out off)) return null;
                if (slash >= 0 && !TryHex(rest[(slash + 1)..], out size)) return null;
            }
            if (name.Length == 0 || name.Contains(' ', StringComparison.Ordinal)) return null;
            if (!_byName.TryGetValue(name, out var addr))
            {
                addr = _cursor;
                _lines.Add((addr, 't', name));
                _lines.Add((addr + Math.Max(size, 1), 't', "__replayer_gap_" + _byName.Count.ToString(CultureInfo.InvariantCulture)));
                _cursor = addr + Math.Max(size, 1) + 0x10;
                _byName[name] = addr;
                _dirty = true;
            }
            return addr + off;
        }

        static bool TryHex(string s, out ulong v) =>
            ulong.TryParse(s.StartsWith("0x", StringComparison.Ordinal) ? s[2..] : s, NumberStyles.HexNumber, CultureInfo.InvariantCulture, out v);
    }

    // ------------------------------------------------------------------ encoding

    readonly struct Target
    {
        public readonly ulong Bits;
        public readonly string? Str;
        public Target(ulong bits) { Bits = bits; Str = null; }
        public Target(string s) { Str = s; Bits = 0; }
        public bool IsStr => Str != null;
    }

    /// <summary>Turns one event's fields back into its binary record through its format's print expressions.</summary>
    internal sealed class Encoder
    {
        public EventFormat Format { get; }
        readonly EventDecoder _dec;
        readonly (string Name, Conversion[] Convs, PrintExpr[] Args, string[] Between)[] _printed;
        readonly RecordField? _type, _pid, _flags, _preempt;
        readonly int _fixed;
        readonly bool _big;
        RecordContext? _ctx;
        public string? LastDiff;
        readonly ReadStats _stats = new();

        public Encoder(EventFormat f, bool big)
        {
            Format = f;
            _big = big;
            _dec = new EventDecoder(f);
            _printed = _dec.PrintedFields.ToArray();
            _type = f.Field("common_type");
            _pid = f.Field("common_pid");
            _flags = f.Field("common_flags");
            _preempt = f.Field("common_preempt_count");
            _fixed = f.Fields.Length == 0 ? 8 : f.Fields.Max(x => x.Offset + x.Size);
        }

        byte[] _rec = [];
        List<byte>? _dyn;

        readonly List<(PrintExpr.Binary Expr, ulong Target)> _deferred = new();
        SymbolTable? _symbols;

        public byte[] Encode(TraceEvent e, SymbolTable syms, out string? lossy)
        {
            _symbols = syms;
            _deferred.Clear();
            _rec = new byte[_fixed];
            _dyn = null;
            if (_type != null) SetInt(_type, (ulong)Format.Id);
            if (_pid != null) SetInt(_pid, unchecked((ulong)e.Pid));
            if (e.Flags is { Length: 5 } fl && _flags != null && _preempt != null)
            {
                SetInt(_flags, IrqBits(fl));
                SetInt(_preempt, (ulong)(Nibble(fl[3]) | Nibble(fl[4]) << 4));
            }
            foreach (var (name, convs, args, between) in _printed)
            {
                int i = e.IndexOf(name);
                if (i < 0) continue;
                var src = e.Fields[i];
                if (convs.Length == 1)
                    Invert(args[0], src.IsInteger ? new Target(src.Bits) : new Target(src.Text ?? ""), convs[0]);
                else
                {
                    var parts = SplitJoined(src.Type == FieldType.Str ? src.Text ?? "" : src.FormatValue(), between, args);
                    if (parts == null) continue;
                    for (int k = 0; k < args.Length; k++) Invert(args[k], new Target(parts[k]), convs[k]);
                }
            }
            var (ip, func, ret) = _dec.ProbeExprs;
            if (e.Probe != null)
            {
                int arrow = e.Probe.IndexOf(" <- ", StringComparison.Ordinal);
                if (ip != null && arrow < 0 && syms.Resolve(e.Probe) is { } a) Invert(ip, new Target(a), null);
                else if (func != null && ret != null && arrow >= 0)
                {
                    string l = e.Probe[..arrow], r = e.Probe[(arrow + 4)..];
                    bool hexOrder = IsHex(l) && IsHex(r); // without symbols the reader prints "func <- return"
                    var fa = syms.Resolve(hexOrder ? l : r);
                    var ra = syms.Resolve(hexOrder ? r : l);
                    if (fa != null) Invert(func, new Target(fa.Value), null);
                    if (ra != null) Invert(ret, new Target(ra.Value), null);
                }
            }
            foreach (var (bin, target) in _deferred) InvertPointer(bin, target);
            byte[] rec = _rec;
            if (_dyn != null) { rec = new byte[_rec.Length + _dyn.Count]; _rec.CopyTo(rec, 0); _dyn.CopyTo(rec, _rec.Length); }
            lossy = Verify(e, rec, syms);
            return rec;
        }

        string? Verify(TraceEvent e, byte[] rec, SymbolTable syms)
        {
            _ctx ??= new RecordContext(_big, 8, syms.Values);
            _ctx.Set(rec, 0, rec.Length);
            var ks = syms.Kallsyms;
            var fields = _dec.Fields(_ctx, _stats, ks); // fields not evaluable are left out: the comparison sees them
            if (!fields.AsSpan().SequenceEqual(e.Fields))
            {
                LastDiff = string.Join(" ", e.Fields.Where(f => !fields.Contains(f))) + " -> " + string.Join(" ", fields.Where(f => !e.Fields.Contains(f)));
                return "fields:" + e.Name;
            }
            if (e.Probe != null && _dec.Probe(_ctx, ks) is var pr && pr != e.Probe) { LastDiff = e.Probe + " -> " + pr; return "probe:" + e.Name; }
            if (_dec.Pid(rec, _big) != e.Pid) { LastDiff = $"pid {e.Pid} -> {_dec.Pid(rec, _big)}"; return "pid"; }
            return null;
        }

        static bool IsHex(string s) => s.Length > 0 && s.All(char.IsAsciiHexDigit);

        static string[]? SplitJoined(string text, string[] between, PrintExpr[] args)
        {
            var parts = new string[between.Length + 1];
            if (between.All(b => b.Length == 0))
            {
                // "%s%s%s" of cond ? "M" : " " columns: split by the constant widths.
                int p = 0;
                for (int k = 0; k < args.Length; k++)
                {
                    if (args[k] is not PrintExpr.Ternary { IfTrue: PrintExpr.Const { Value.Str: { } a }, IfFalse: PrintExpr.Const { Value.Str: { } b } } || a.Length != b.Length
                        || p + a.Length > text.Length) return null;
                    parts[k] = text.Substring(p, a.Length);
                    p += a.Length;
                }
                return p == text.Length ? parts : null;
            }
            int pos = 0;
            for (int k = 0; k < between.Length; k++)
            {
                int at = between[k].Length == 0 ? -1 : text.IndexOf(between[k], pos, StringComparison.Ordinal);
                if (at < 0) return null;
                parts[k] = text[pos..at];
                pos = at + between[k].Length;
            }
            parts[^1] = text[pos..];
            return parts;
        }

        static int Nibble(char c) => c == '.' ? 0 : char.IsAsciiHexDigit(c) ? Convert.ToInt32(c.ToString(), 16) : 0;

        static ulong IrqBits(string f)
        {
            ulong b = f[0] switch { 'D' => 0x81, 'd' => 0x01, 'b' => 0x80, 'X' => 0x02, _ => 0 };
            b |= f[1] switch { 'N' => 0x24UL, 'n' => 0x04UL, 'p' => 0x20UL, _ => 0 };
            b |= f[2] switch { 'Z' => 0x48UL, 'z' => 0x40UL, 'H' => 0x18UL, 'h' => 0x08UL, 's' => 0x10UL, _ => 0 };
            return b;
        }

        void SetInt(RecordField f, ulong v)
        {
            if (f.Offset + f.Size > _rec.Length || f.Size is < 1 or > 8) return;
            var span = _rec.AsSpan(f.Offset, f.Size);
            ulong cur = Endian.Read(span, f.Size, _big);
            v |= cur; // several printed fields may each carry part of one record field (MAJOR/MINOR of dev)
            for (int i = 0; i < f.Size; i++)
            {
                byte by = (byte)(v >> (8 * i));
                span[_big ? f.Size - 1 - i : i] = by;
            }
        }

        void SetString(RecordField f, string s)
        {
            var bytes = Encoding.UTF8.GetBytes(s);
            if (f.DataLoc || f.RelLoc)
            {
                _dyn ??= new List<byte>();
                if (f.Size != 4) return;
                int at = _fixed + _dyn.Count;
                int len = bytes.Length + 1;
                _dyn.AddRange(bytes); _dyn.Add(0);
                int stored = f.RelLoc ? at - (f.Offset + f.Size) : at;
                SetInt(f, (ulong)(uint)(len << 16 | stored));
            }
            else if (f.IsArray && f.Size == 0 && f.Offset == _fixed && _dyn == null)
            {
                _dyn = new List<byte>(bytes.Length + 1); // char buf[]: the rest of the record
                _dyn.AddRange(bytes); _dyn.Add(0);
            }
            else if (f.IsArray && f.Offset + f.Size <= _rec.Length)
                bytes.AsSpan(0, Math.Min(bytes.Length, f.Size)).CopyTo(_rec.AsSpan(f.Offset));
        }

        static bool ParseInt(string s, Conversion? c, out ulong v)
        {
            s = s.Trim();
            bool hex = c?.Conv is 'x' or 'X' or 'p' || s.StartsWith("0x", StringComparison.OrdinalIgnoreCase);
            if (s.StartsWith("0x", StringComparison.OrdinalIgnoreCase)) s = s[2..];
            if (hex) return ulong.TryParse(s, NumberStyles.HexNumber, CultureInfo.InvariantCulture, out v);
            if (s.StartsWith('-') && long.TryParse(s, NumberStyles.Integer, CultureInfo.InvariantCulture, out var n)) { v = unchecked((ulong)n); return true; }
            return ulong.TryParse(s, NumberStyles.Integer, CultureInfo.InvariantCulture, out v);
        }

        /// <summary>Sets record fields so that <paramref name="x"/> evaluates to <paramref name="t"/>, for the
        /// common shapes; anything else is left for <see cref="Verify"/> to report.</summary>
        void Invert(PrintExpr x, Target t, Conversion? c)
        {
            switch (x)
            {
                case PrintExpr.FieldRef fr:
                {
                    var f = fr.Field;
                    if (f.IsString) { SetString(f, t.Str ?? t.Bits.ToString(CultureInfo.InvariantCulture)); return; }
                    if (!f.IsScalar) return;
                    ulong v = t.Bits;
                    if (t.IsStr && !ParseInt(t.Str!, c, out v))
                    {
                        // %ps / %pS: a symbol (func or func+0xoff/0xsize) back to its address
                        if (c?.Conv != 'p' || c.Ext.Length == 0 || _symbols?.Resolve(t.Str!) is not { } a) return;
                        v = a;
                    }
                    SetInt(f, v);
                    return;
                }
                case PrintExpr.Cast cast: Invert(cast.Inner, t, c); return;
                case PrintExpr.Symbolic sym:
                {
                    if (!t.IsStr) { Invert(sym.Value, t, c); return; }
                    foreach (var (val, name) in sym.Table)
                        if (name == t.Str) { Invert(sym.Value, new Target(val), null); return; }
                    if (ParseInt(t.Str!, null, out var v)) Invert(sym.Value, new Target(v), null);
                    return;
                }
                case PrintExpr.Flags fl:
                {
                    if (!t.IsStr) { Invert(fl.Value, t, c); return; }
                    ulong bits = 0;
                    if (!fl.Table.Any(p => p.Value == 0 && p.Name == t.Str))
                        foreach (var part in t.Str!.Split(fl.Delim.Length == 0 ? "|" : fl.Delim))
                        {
                            var hit = fl.Table.FirstOrDefault(p => p.Name == part);
                            if (hit.Name != null) bits |= hit.Value;
                            else if (part.StartsWith("0x", StringComparison.Ordinal) && ParseInt(part, null, out var h)) bits |= h;
                            else return;
                        }
                    Invert(fl.Value, new Target(bits), null);
                    return;
                }
                case PrintExpr.Ternary tern:
                {
                    if (tern.IfFalse is PrintExpr.Const { Value.Kind: ValueKind.Str } k && t.IsStr && k.Value.Str == t.Str)
                    {
                        MakeFalse(tern.Cond);
                        return;
                    }
                    if (tern.IfTrue is PrintExpr.Const { Value.Kind: ValueKind.Str } kt && t.IsStr)
                    {
                        if (kt.Value.Str == t.Str) MakeTrue(tern.Cond);
                        return;
                    }
                    Invert(tern.IfTrue, t, c);
                    return;
                }
                case PrintExpr.Binary { Op: "+", Left: PrintExpr.Cast { PtrElem: > 0, Inner: PrintExpr.Symbol } } ptr:
                {
                    ulong v = t.Bits;
                    if (t.IsStr && !ParseInt(t.Str!, c, out v)) return;
                    _deferred.Add((ptr, v)); // after the plain fields: the index may be printed on its own too
                    return;
                }
                case PrintExpr.Binary bin when bin.Right is PrintExpr.Const { Value.IsInt: true } rc:
                {
                    ulong v = t.Bits, k = rc.Value.Bits;
                    if (t.IsStr && !ParseInt(t.Str!, c, out v)) return;
                    switch (bin.Op)
                    {
                        case ">>" when k < 64: Invert(bin.Left, new Target(v << (int)k), null); return;
                        case "<<" when k < 64: Invert(bin.Left, new Target(v >> (int)k), null); return;
                        case "&": Invert(bin.Left, new Target(v & k), null); return;
                        case "+": Invert(bin.Left, new Target(unchecked(v - k)), null); return;
                        case "-": Invert(bin.Left, new Target(unchecked(v + k)), null); return;
                        case "*" when k != 0 && v % k == 0: Invert(bin.Left, new Target(v / k), null); return;
                    }
                    return;
                }
                case PrintExpr.Unary { Op: '-' or '~' } un:
                {
                    ulong v = t.Bits;
                    if (t.IsStr && !ParseInt(t.Str!, c, out v)) return;
                    Invert(un.Operand, new Target(un.Op == '-' ? unchecked(0 - v) : ~v), null);
                    return;
                }
            }
        }

        /// <summary><c>((struct page *)vmemmap_base) + REC->pfn</c>: learns the kernel variable from the first
        /// event when the source does not give it (the index is printed on its own), else sets the index.</summary>
        void InvertPointer(PrintExpr.Binary ptr, ulong target)
        {
            var cast = (PrintExpr.Cast)ptr.Left;
            string sym = ((PrintExpr.Symbol)cast.Inner).Name;
            ulong elem = (ulong)cast.PtrElem;
            var values = _symbols!.Values;
            if (!values.TryGetValue(sym, out var baseVal))
            {
                _ctx ??= new RecordContext(_big, 8, values);
                _ctx.Set(_rec, 0, _rec.Length);
                var idx = ptr.Right.Eval(_ctx);
                if (!idx.IsInt) return;
                values[sym] = unchecked(target - idx.Bits * elem);
                return;
            }
            ulong diff = unchecked(target - baseVal);
            if (diff % elem == 0) Invert(ptr.Right, new Target(diff / elem), null);
        }

        void MakeTrue(PrintExpr cond)
        {
            switch (cond)
            {
                case PrintExpr.Cast cast: MakeTrue(cast.Inner); return;
                case PrintExpr.FieldRef: Invert(cond, new Target(1), null); return;
                case PrintExpr.Binary { Op: "&" } b when b.Right is PrintExpr.Const { Value.IsInt: true } k:
                    Invert(b.Left, new Target(k.Value.Bits), null);
                    return;
            }
        }

        void MakeFalse(PrintExpr cond)
        {
            switch (cond)
            {
                case PrintExpr.FieldRef or PrintExpr.Cast: return; // zero already
                case PrintExpr.Binary { Op: "!=" } b when b.Right is PrintExpr.Const { Value.IsInt: true } k:
                    Invert(b.Left, new Target(k.Value.Bits), null);
                    return;
            }
        }
    }
}

public static class TraceDatWriterSetup
{
    /// <summary>Options from what is known about the input: the capture's <c>formats/</c> folder and
    /// kallsyms bases, a binary input's own formats, the CPU count and kernel release.</summary>
    public static TraceDatWriterOptions From(global::Replayer.Formats.Schema.CaptureContext capture, ITraceReader reader)
    {
        var o = new TraceDatWriterOptions();
        if (capture.FormatsDirectory is { } dir)
            foreach (var f in Directory.EnumerateFiles(dir, "*format", SearchOption.AllDirectories).Order(StringComparer.Ordinal))
            {
                var rel = Path.GetRelativePath(dir, f).Split(Path.DirectorySeparatorChar);
                // <system>/<event>/format, or <system>_<event>_format at the top (ftrace_print_format)
                string? system = rel.Length >= 3 ? rel[^3] : rel.Length == 1 && rel[0].IndexOf('_') > 0 ? rel[0][..rel[0].IndexOf('_')] : null;
                if (system == null) continue;
                try { o.Formats.Add(EventFormat.Parse(File.ReadAllText(f), system, f, 0)); }
                catch (TraceInputException) { } // CaptureContext reports unreadable format files
            }
        if (reader is TraceDatReader { Kallsyms: { } ks }) o.Kallsyms = ks.Text + o.Kallsyms;
        if (reader is PerfDataReader { Kallsyms: { } pks } && o.Kallsyms == null) o.Kallsyms = pks.Text;
        var decoders = reader switch { TraceDatReader t => t.Decoders.Values, PerfDataReader p => p.Decoders.Values, _ => Enumerable.Empty<EventDecoder>() };
        foreach (var d in decoders)
                if (!o.Formats.Any(f => f.FullName == d.Format.FullName)) o.Formats.Add(d.Format);
        // kallsyms_bases.txt holds the addresses of kernel variables (not their values): kallsyms lines.
        if (capture.KallsymsBases.Count > 0 && reader is not TraceDatReader { Kallsyms: not null })
            o.Kallsyms = string.Concat(capture.KallsymsBases.Select(kv => kv.Value.ToString("x16", CultureInfo.InvariantCulture) + " D " + kv.Key + "\n"));
        o.CpuCount = reader.Header.CpuCount ?? 0;
        var rel0 = reader.Header.KernelRelease ?? capture.KernelRelease;
        if (rel0 != null) o.Uname = "Linux replayer " + rel0 + " x86_64";
        return o;
    }
}
