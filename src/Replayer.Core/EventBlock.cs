using System.Runtime.CompilerServices;

namespace Replayer.Core;

/// <summary>
/// A reusable run of canonical events kept in columns: the allocation-free way to move events from a
/// reader or the store to a consumer. Filling a block and reading it allocate nothing per event once its
/// arrays have grown to the working size (strings are the reader's interned ones); a consumer that needs
/// an object calls <see cref="ToTraceEvent"/>. A block is reused: whoever hands one out says how long its
/// contents stay valid (usually until the next call that fills it).
/// <para>Row <c>i</c> equals, field for field, the <see cref="TraceEvent"/> that <see cref="ToTraceEvent"/>
/// builds from it; <see cref="Add(TraceEvent)"/> and <see cref="ToTraceEvent"/> are inverse.</para>
/// </summary>
public sealed class EventBlock
{
    long[] _ts;
    long[] _source;
    int[] _cpu;
    int[] _pid;
    string[] _comm;
    string[] _name;
    string?[] _probe;
    string?[] _flags;
    /// <summary>End (exclusive) of row i's fields in <see cref="_fields"/>; the start is row i-1's end.</summary>
    int[] _fieldEnd;
    EventField[] _fields;
    int _count;
    int _fieldCount;

    public EventBlock(int capacity = 4096)
    {
        capacity = Math.Max(capacity, 1);
        _ts = new long[capacity];
        _source = new long[capacity];
        _cpu = new int[capacity];
        _pid = new int[capacity];
        _comm = new string[capacity];
        _name = new string[capacity];
        _probe = new string?[capacity];
        _flags = new string?[capacity];
        _fieldEnd = new int[capacity];
        _fields = new EventField[capacity * 8];
    }

    /// <summary>Rows in the block.</summary>
    public int Count => _count;

    /// <summary>Rows the block holds without growing.</summary>
    public int Capacity => _ts.Length;

    /// <summary>Fields of all rows together.</summary>
    public int FieldCount => _fieldCount;

    public ReadOnlySpan<long> Timestamps => _ts.AsSpan(0, _count);
    public ReadOnlySpan<long> Sources => _source.AsSpan(0, _count);
    public ReadOnlySpan<int> Cpus => _cpu.AsSpan(0, _count);
    public ReadOnlySpan<int> Pids => _pid.AsSpan(0, _count);
    public ReadOnlySpan<string> Comms => _comm.AsSpan(0, _count);
    public ReadOnlySpan<string> Names => _name.AsSpan(0, _count);
    public ReadOnlySpan<string?> Probes => _probe.AsSpan(0, _count);
    public ReadOnlySpan<string?> FlagColumn => _flags.AsSpan(0, _count);

    /// <summary>Row <paramref name="i"/> as a view (no copy).</summary>
    public EventView this[int i]
    {
        get
        {
            if ((uint)i >= (uint)_count) throw new ArgumentOutOfRangeException(nameof(i), i, $"block has {_count} rows");
            return new EventView(this, i);
        }
    }

    /// <summary>The fields of row <paramref name="i"/>, in the event's format order.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public ReadOnlySpan<EventField> FieldsOf(int i)
    {
        int start = i == 0 ? 0 : _fieldEnd[i - 1];
        return _fields.AsSpan(start, _fieldEnd[i] - start);
    }

    public long TimestampOf(int i) => _ts[i];
    public long SourceOf(int i) => _source[i];
    public int CpuOf(int i) => _cpu[i];
    public int PidOf(int i) => _pid[i];
    public string CommOf(int i) => _comm[i];
    public string NameOf(int i) => _name[i];
    public string? ProbeOf(int i) => _probe[i];
    public string? FlagsOf(int i) => _flags[i];

    /// <summary>Empties the block, keeping its arrays (string references are dropped so they can be collected).</summary>
    public void Clear()
    {
        Array.Clear(_comm, 0, _count);
        Array.Clear(_name, 0, _count);
        Array.Clear(_probe, 0, _count);
        Array.Clear(_flags, 0, _count);
        Array.Clear(_fields, 0, _fieldCount);
        _count = 0;
        _fieldCount = 0;
    }

    /// <summary>Starts a new row with no fields; <see cref="AddField"/> and <see cref="AddFields"/> append to it.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Append(long timestamp, int cpu, int pid, string comm, string name, string? probe, string? flags, long source)
    {
        int i = _count;
        if (i == _ts.Length) GrowRows();
        _ts[i] = timestamp;
        _cpu[i] = cpu;
        _pid[i] = pid;
        _comm[i] = comm;
        _name[i] = name;
        _probe[i] = probe;
        _flags[i] = flags;
        _source[i] = source;
        _fieldEnd[i] = _fieldCount;
        _count = i + 1;
    }

    /// <summary>Appends a field to the last row.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void AddField(in EventField field)
    {
        if (_count == 0) throw new InvalidOperationException("AddField before Append");
        if (_fieldCount == _fields.Length) GrowFields(1);
        _fields[_fieldCount++] = field;
        _fieldEnd[_count - 1] = _fieldCount;
    }

    /// <summary>Appends <paramref name="n"/> default fields to the last row and returns them to fill in.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public Span<EventField> AddFields(int n)
    {
        if (_count == 0) throw new InvalidOperationException("AddFields before Append");
        ArgumentOutOfRangeException.ThrowIfNegative(n);
        if (_fieldCount + n > _fields.Length) GrowFields(n);
        var span = _fields.AsSpan(_fieldCount, n);
        _fieldCount += n;
        _fieldEnd[_count - 1] = _fieldCount;
        return span;
    }

    /// <summary>Drops fields from the end of the last row (e.g. when a decoder filled fewer than it reserved).</summary>
    public void TrimLastFields(int n)
    {
        if (_count == 0) throw new InvalidOperationException("no row");
        int start = _count == 1 ? 0 : _fieldEnd[_count - 2];
        if ((uint)n > (uint)(_fieldCount - start)) throw new ArgumentOutOfRangeException(nameof(n));
        Array.Clear(_fields, _fieldCount - n, n);
        _fieldCount -= n;
        _fieldEnd[_count - 1] = _fieldCount;
    }

    /// <summary>Removes the last row (e.g. when a decoder gives up on it midway).</summary>
    public void RemoveLast()
    {
        if (_count == 0) throw new InvalidOperationException("no row");
        int start = _count == 1 ? 0 : _fieldEnd[_count - 2];
        Array.Clear(_fields, start, _fieldCount - start);
        _fieldCount = start;
        _count--;
        _comm[_count] = null!;
        _name[_count] = null!;
        _probe[_count] = null;
        _flags[_count] = null;
    }

    /// <summary>Appends a copy of <paramref name="e"/> as a new row.</summary>
    public void Add(TraceEvent e)
    {
        Append(e.Timestamp, e.Cpu, e.Pid, e.Comm, e.Name, e.Probe, e.Flags, e.Source);
        if (e.Fields.Length > 0) e.Fields.AsSpan().CopyTo(AddFields(e.Fields.Length));
    }

    /// <summary>Appends a copy of row <paramref name="i"/> of <paramref name="other"/>.</summary>
    public void Add(EventBlock other, int i)
    {
        Append(other._ts[i], other._cpu[i], other._pid[i], other._comm[i], other._name[i], other._probe[i], other._flags[i], other._source[i]);
        var f = other.FieldsOf(i);
        if (f.Length > 0) f.CopyTo(AddFields(f.Length));
    }

    /// <summary>Row <paramref name="i"/> as a new <see cref="TraceEvent"/> (it shares nothing mutable with the block).</summary>
    public TraceEvent ToTraceEvent(int i)
    {
        if ((uint)i >= (uint)_count) throw new ArgumentOutOfRangeException(nameof(i), i, $"block has {_count} rows");
        var f = FieldsOf(i);
        return new TraceEvent
        {
            Timestamp = _ts[i], Cpu = _cpu[i], Pid = _pid[i], Comm = _comm[i], Name = _name[i],
            Fields = f.Length == 0 ? TraceEvent.NoFields : f.ToArray(), Probe = _probe[i], Source = _source[i], Flags = _flags[i],
        };
    }

    /// <summary>Every row as a new <see cref="TraceEvent"/>.</summary>
    public TraceEvent[] ToTraceEvents()
    {
        var a = new TraceEvent[_count];
        for (int i = 0; i < a.Length; i++) a[i] = ToTraceEvent(i);
        return a;
    }

    void GrowRows()
    {
        int n = checked(_ts.Length * 2);
        Array.Resize(ref _ts, n);
        Array.Resize(ref _source, n);
        Array.Resize(ref _cpu, n);
        Array.Resize(ref _pid, n);
        Array.Resize(ref _comm, n);
        Array.Resize(ref _name, n);
        Array.Resize(ref _probe, n);
        Array.Resize(ref _flags, n);
        Array.Resize(ref _fieldEnd, n);
    }

    void GrowFields(int atLeast) =>
        Array.Resize(ref _fields, Math.Max(checked(_fields.Length * 2), checked(_fieldCount + atLeast)));
}

/// <summary>
/// One event, read in place: either a row of an <see cref="EventBlock"/> or a <see cref="TraceEvent"/>.
/// It has the same accessors as <see cref="TraceEvent"/>, so code that only reads events (decoders,
/// writers, counters) takes an <see cref="EventView"/> and serves both. A view over a block row is
/// valid while the block keeps that row (see the block's owner for how long).
/// </summary>
public readonly struct EventView
{
    readonly EventBlock? _block;
    readonly TraceEvent? _event;
    readonly int _row;

    public EventView(EventBlock block, int row)
    {
        _block = block;
        _event = null;
        _row = row;
    }

    public EventView(TraceEvent e)
    {
        _block = null;
        _event = e ?? throw new ArgumentNullException(nameof(e));
        _row = 0;
    }

    public static implicit operator EventView(TraceEvent e) => new(e);

    public long Timestamp => _event?.Timestamp ?? _block!.TimestampOf(_row);
    public int Cpu => _event?.Cpu ?? _block!.CpuOf(_row);
    public int Pid => _event?.Pid ?? _block!.PidOf(_row);
    public string Comm => _event?.Comm ?? _block!.CommOf(_row);
    /// <summary><c>system:event</c>.</summary>
    public string Name => _event?.Name ?? _block!.NameOf(_row);
    public string? Probe => _event != null ? _event.Probe : _block!.ProbeOf(_row);
    public string? Flags => _event != null ? _event.Flags : _block!.FlagsOf(_row);
    public long Source => _event?.Source ?? _block!.SourceOf(_row);
    public ReadOnlySpan<EventField> Fields => _event != null ? _event.Fields : _block!.FieldsOf(_row);

    /// <summary>The event object behind the view, if it is one (no copy); null for a block row.</summary>
    public TraceEvent? Event => _event;

    /// <summary>The part of <see cref="Name"/> after the colon.</summary>
    public ReadOnlySpan<char> ShortName => EventFields.ShortName(Name);

    /// <summary>Index of the field, or -1.</summary>
    public int IndexOf(string name) => EventFields.IndexOf(Fields, name);

    public bool TryGet(string name, out EventField field) => EventFields.TryGet(Fields, name, out field);

    public ulong? U64(string name) => EventFields.U64(Fields, name);
    public long? S64(string name) => EventFields.S64(Fields, name);
    public string? Str(string name) => EventFields.Str(Fields, name);

    /// <summary>The event as an object: the one behind the view, or a new copy of the block row.</summary>
    public TraceEvent ToTraceEvent() => _event ?? _block!.ToTraceEvent(_row);

    public override string ToString() => ToTraceEvent().ToString();
}

/// <summary>Marks a reader whose <see cref="ITraceReader.ReadBlock"/> decodes straight into the block's
/// columns, allocating nothing per event (the default implementation copies what <see cref="ITraceReader.Read"/> returns).</summary>
public interface IBlockTraceReader : ITraceReader;

/// <summary>Ways to walk a reader's events without an object per event where the reader allows it.</summary>
public static class EventBlockReading
{
    /// <summary>
    /// The reader's events in blocks of up to <paramref name="size"/> rows. The same block is refilled for
    /// every step: a yielded block is valid until the enumeration moves on.
    /// </summary>
    public static IEnumerable<EventBlock> Blocks(this ITraceReader reader, int size = 4096)
    {
        var block = new EventBlock(size);
        while (true)
        {
            block.Clear();
            if (reader.ReadBlock(block, size) == 0) yield break;
            yield return block;
        }
    }

    /// <summary>
    /// The reader's events as views: rows of a reused block when the reader decodes into blocks natively
    /// (<see cref="IBlockTraceReader"/>), else views of the objects <see cref="ITraceReader.Read"/> returns
    /// (copying those into a block would only add work). A view of a block row is valid until the
    /// enumeration moves past its block; call <see cref="EventView.ToTraceEvent"/> to keep an event.
    /// </summary>
    public static IEnumerable<EventView> Views(this ITraceReader reader, int blockSize = 4096)
    {
        if (reader is IBlockTraceReader)
        {
            foreach (var b in reader.Blocks(blockSize))
                for (int i = 0; i < b.Count; i++) yield return new EventView(b, i);
        }
        else
        {
            while (reader.Read() is { } e) yield return new EventView(e);
        }
    }
}
