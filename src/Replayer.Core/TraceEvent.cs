using System.Globalization;
using System.Runtime.CompilerServices;
using System.Text;
using MessagePack;
using MessagePack.Formatters;

namespace Replayer.Core;

/// <summary>Value type of a field, as the kernel's format declares it.</summary>
public enum FieldType : byte
{
    U64 = 0,
    S64 = 1,
    Str = 2,
}

/// <summary>How the kernel printed an integer field. A hint for writers; not part of the value.</summary>
public enum FieldStyle : byte
{
    /// <summary>Decimal (<c>%d</c>, <c>%u</c>, <c>%lu</c>).</summary>
    Decimal = 0,
    /// <summary>Hex with a <c>0x</c> prefix (<c>0x%lx</c>, kprobe <c>x64</c>).</summary>
    Hex = 1,
    /// <summary>Hex without prefix (<c>%lx</c>).</summary>
    BareHex = 2,
    /// <summary>A <c>%p</c> pointer: hex without prefix, zero-padded to 16 digits.</summary>
    Pointer = 3,
}

/// <summary>
/// One named field of a trace event: a u64, an s64 or a string. Integers keep the style the
/// kernel printed them in so that text writers can reproduce the kernel's output.
/// Equality compares name and value, not the print style: two integers are equal when they are
/// the same number (a non-negative S64 equals the U64 of the same value, since text does not say
/// whether <c>1</c> was an <c>int</c> or an <c>unsigned</c>); an integer never equals a string.
/// </summary>
[MessagePackObject]
public readonly struct EventField : IEquatable<EventField>
{
    [Key(0)]
    [MessagePackFormatter(typeof(StringInterningFormatter))]
    public string Name { get; }

    /// <summary>Low nibble: <see cref="FieldType"/>; high nibble: <see cref="FieldStyle"/>.</summary>
    [Key(1)]
    public byte Kind { get; }

    /// <summary>The integer value (two's complement for S64); 0 for strings.</summary>
    [Key(2)]
    public ulong Bits { get; }

    /// <summary>The string value; null for integers.</summary>
    [Key(3)]
    public string? Text { get; }

    [SerializationConstructor]
    public EventField(string name, byte kind, ulong bits, string? text)
    {
        Name = name;
        Kind = kind;
        Bits = bits;
        Text = text;
    }

    public static EventField U64(string name, ulong value, FieldStyle style = FieldStyle.Decimal) =>
        new(name, (byte)((byte)FieldType.U64 | ((byte)style << 4)), value, null);

    public static EventField S64(string name, long value) =>
        new(name, (byte)FieldType.S64, unchecked((ulong)value), null);

    public static EventField Str(string name, string value) =>
        new(name, (byte)FieldType.Str, 0, value);

    [IgnoreMember] public FieldType Type => (FieldType)(Kind & 0x0f);
    [IgnoreMember] public FieldStyle Style => (FieldStyle)(Kind >> 4);
    [IgnoreMember] public bool IsInteger => Type != FieldType.Str;
    [IgnoreMember] public long AsS64 => unchecked((long)Bits);
    [IgnoreMember] public ulong AsU64 => Bits;

    /// <summary>Formats the value the way the kernel printed it.</summary>
    public string FormatValue()
    {
        switch (Type)
        {
            case FieldType.Str: return Text ?? "";
            case FieldType.S64: return AsS64.ToString(CultureInfo.InvariantCulture);
        }
        return Style switch
        {
            FieldStyle.Hex => "0x" + Bits.ToString("x", CultureInfo.InvariantCulture),
            FieldStyle.BareHex => Bits.ToString("x", CultureInfo.InvariantCulture),
            FieldStyle.Pointer => Bits.ToString("x16", CultureInfo.InvariantCulture),
            _ => Bits.ToString(CultureInfo.InvariantCulture),
        };
    }

    public bool Equals(EventField other)
    {
        if (Name != other.Name) return false;
        if (Type == FieldType.Str || other.Type == FieldType.Str)
            return Type == other.Type && Text == other.Text;
        if (Bits != other.Bits) return false;
        // Same bits: equal unless one side is a negative S64 and the other a U64 >= 2^63.
        return Type == other.Type || (long)Bits >= 0;
    }

    public override bool Equals(object? obj) => obj is EventField f && Equals(f);
    public override int GetHashCode() => HashCode.Combine(Name, Type == FieldType.Str, Bits, Text);
    public static bool operator ==(EventField a, EventField b) => a.Equals(b);
    public static bool operator !=(EventField a, EventField b) => !a.Equals(b);
    public override string ToString() => Name + "=" + FormatValue();
}

/// <summary>
/// The canonical trace event every reader produces and every later stage consumes.
/// <para>Name is <c>system:event</c> (e.g. <c>kmem:mm_page_alloc</c>, <c>rt:file_rmap_add</c>).
/// Fields are in the order of the event's format. Timestamp is integer nanoseconds in the
/// capture's trace clock.</para>
/// <para>Equality covers everything but <see cref="Source"/> (where the event came from).</para>
/// </summary>
[MessagePackObject]
public sealed class TraceEvent : IEquatable<TraceEvent>
{
    public static readonly EventField[] NoFields = [];

    /// <summary>Nanoseconds in the capture's trace clock.</summary>
    [Key(0)] public long Timestamp { get; init; }

    [Key(1)] public int Cpu { get; init; }

    [Key(2)] public int Pid { get; init; }

    [Key(3)]
    [MessagePackFormatter(typeof(StringInterningFormatter))]
    public string Comm { get; init; } = "";

    /// <summary><c>system:event</c>.</summary>
    [Key(4)]
    [MessagePackFormatter(typeof(StringInterningFormatter))]
    public string Name { get; init; } = "";

    [Key(5)] public EventField[] Fields { get; init; } = NoFields;

    /// <summary>
    /// For kprobe/kretprobe events, the probe location as the source printed it
    /// (<c>page_add_file_rmap+0x0/0x2f0</c>, <c>ffffffff998e79d0</c>,
    /// <c>migrate_folio_extra+0x24/0x70 &lt;- folio_migrate_mapping</c>); otherwise null.
    /// </summary>
    [Key(6)]
    [MessagePackFormatter(typeof(StringInterningFormatter))]
    public string? Probe { get; init; }

    /// <summary>Where the event came from: 1-based line number for text, byte offset for binary
    /// inputs, store position for stored events. Not part of equality.</summary>
    [Key(7)] public long Source { get; init; }

    /// <summary>The irq-info column of raw ftrace (<c>d..3.</c>) when the source printed it.</summary>
    [Key(8)]
    [MessagePackFormatter(typeof(StringInterningFormatter))]
    public string? Flags { get; init; }

    /// <summary>Index of the field, or -1.</summary>
    public int IndexOf(string name) => EventFields.IndexOf(Fields, name);

    public bool TryGet(string name, out EventField field) => EventFields.TryGet(Fields, name, out field);

    public ulong? U64(string name) => EventFields.U64(Fields, name);
    public long? S64(string name) => EventFields.S64(Fields, name);
    public string? Str(string name) => EventFields.Str(Fields, name);

    /// <summary>The part of <see cref="Name"/> after the colon.</summary>
    [IgnoreMember]
    public ReadOnlySpan<char> ShortName => EventFields.ShortName(Name);

    public bool Equals(TraceEvent? other)
    {
        if (other is null) return false;
        if (ReferenceEquals(this, other)) return true;
        return Timestamp == other.Timestamp && Cpu == other.Cpu && Pid == other.Pid
            && Comm == other.Comm && Name == other.Name && Probe == other.Probe
            && Flags == other.Flags && Fields.AsSpan().SequenceEqual(other.Fields);
    }

    public override bool Equals(object? obj) => Equals(obj as TraceEvent);

    public override int GetHashCode() => HashCode.Combine(Timestamp, Cpu, Pid, Name, Fields.Length);

    /// <summary>Seconds.microseconds (or nanoseconds when not a whole microsecond) as ftrace prints them.</summary>
    public static string FormatTimestamp(long ns)
    {
        long sec = ns / 1_000_000_000;
        long frac = ns % 1_000_000_000;
        if (frac % 1000 == 0)
            return sec.ToString(CultureInfo.InvariantCulture) + "." + (frac / 1000).ToString("D6", CultureInfo.InvariantCulture);
        return sec.ToString(CultureInfo.InvariantCulture) + "." + frac.ToString("D9", CultureInfo.InvariantCulture);
    }

    public override string ToString()
    {
        var sb = new StringBuilder();
        sb.Append(Comm).Append('-').Append(Pid).Append(" [").Append(Cpu.ToString("D3", CultureInfo.InvariantCulture)).Append("] ")
          .Append(FormatTimestamp(Timestamp)).Append(": ").Append(Name).Append(':');
        if (Probe != null) sb.Append(" (").Append(Probe).Append(')');
        foreach (var f in Fields) sb.Append(' ').Append(f.Name).Append('=').Append(f.FormatValue());
        return sb.ToString();
    }
}

/// <summary>Field lookups shared by <see cref="TraceEvent"/> and <see cref="EventView"/>.</summary>
public static class EventFields
{
    /// <summary>Index of the first field named <paramref name="name"/>, or -1 (names are usually interned: reference first).</summary>
    public static int IndexOf(ReadOnlySpan<EventField> fields, string name)
    {
        for (int i = 0; i < fields.Length; i++)
            if (ReferenceEquals(fields[i].Name, name) || fields[i].Name == name) return i;
        return -1;
    }

    public static bool TryGet(ReadOnlySpan<EventField> fields, string name, out EventField field)
    {
        int i = IndexOf(fields, name);
        field = i < 0 ? default : fields[i];
        return i >= 0;
    }

    public static ulong? U64(ReadOnlySpan<EventField> fields, string name) => TryGet(fields, name, out var f) && f.IsInteger ? f.Bits : null;
    public static long? S64(ReadOnlySpan<EventField> fields, string name) => TryGet(fields, name, out var f) && f.IsInteger ? f.AsS64 : null;
    /// <summary>A string field's text, or an integer field as the kernel printed it.</summary>
    public static string? Str(ReadOnlySpan<EventField> fields, string name) =>
        TryGet(fields, name, out var f) ? (f.Type == FieldType.Str ? f.Text : f.FormatValue()) : null;

    /// <summary>The part of a <c>system:event</c> name after the colon.</summary>
    public static ReadOnlySpan<char> ShortName(string name)
    {
        int c = name.IndexOf(':');
        return c < 0 ? name.AsSpan() : name.AsSpan(c + 1);
    }
}

/// <summary>Well-known synthetic event names that readers emit for things the capture recorded
/// about itself rather than kernel events.</summary>
public static class SyntheticEvents
{
    /// <summary>Events the kernel dropped (<c>CPU:N [LOST n EVENTS]</c>, ring-buffer missed events,
    /// perf LOST records). Field <c>lost</c> (u64; 0 when the count is unknown).</summary>
    public const string DataLoss = "replayer:data_loss";
}
