using System.Reflection;
using CsCheck;
using MessagePack;
using Replayer.Core;
using Replayer.Core.Domain;

namespace Replayer.Core.Tests;

/// <summary>Every domain event type survives a MessagePack round trip through the union on the base type.</summary>
public class DomainEventRoundTripTests
{
    static readonly string Seed = new PCG(7, 20261125).ToString();

    public static IEnumerable<object[]> EventTypes() =>
        typeof(DomainEvent).Assembly.GetTypes()
            .Where(t => typeof(DomainEvent).IsAssignableFrom(t) && !t.IsAbstract)
            .OrderBy(t => t.Name, StringComparer.Ordinal)
            .Select(t => new object[] { t.Name });

    [Fact]
    public void Every_concrete_event_type_is_in_the_union()
    {
        var inUnion = typeof(DomainEvent).GetCustomAttributes<UnionAttribute>().Select(u => u.SubType).ToHashSet();
        var concrete = typeof(DomainEvent).Assembly.GetTypes().Where(t => typeof(DomainEvent).IsAssignableFrom(t) && !t.IsAbstract).ToList();
        Assert.NotEmpty(concrete);
        Assert.All(concrete, t => Assert.Contains(t, inUnion));
        Assert.Equal(inUnion.Count, typeof(DomainEvent).GetCustomAttributes<UnionAttribute>().Select(u => u.Key).Distinct().Count());
    }

    [Theory]
    [MemberData(nameof(EventTypes))]
    public void Round_trips_through_messagepack(string typeName)
    {
        var type = typeof(DomainEvent).Assembly.GetTypes().Single(t => t.Name == typeName);
        var gen = GenFor(type);
        gen.Sample(e =>
        {
            var bytes = MessagePackSerializer.Serialize<DomainEvent>(e);
            var back = MessagePackSerializer.Deserialize<DomainEvent>(bytes);
            Assert.Equal(e.GetType(), back.GetType());
            Assert.Equal(e, back);
            Assert.Equal(e.Source, back.Source);
        }, seed: Seed, iter: 60, threads: 1);
    }

    static readonly Gen<string> Str = Gen.String[Gen.Char.AlphaNumeric, 0, 12];
    static readonly Gen<PageRef> PageGen =
        from ptr in Gen.ULong
        from pfn in Gen.ULong
        from flags in Nullable(Gen.ULong)
        from mapping in Nullable(Gen.ULong)
        from index in Nullable(Gen.ULong)
        from mc in Nullable(Gen.Int)
        from rc in Nullable(Gen.Int)
        from memcg in Nullable(Gen.ULong)
        select new PageRef { Ptr = ptr, Pfn = pfn, Flags = flags, Mapping = mapping, Index = index, Mapcount = mc, Refcount = rc, Memcg = memcg };

    static Gen<T?> Nullable<T>(Gen<T> g) where T : struct => Gen.Bool.SelectMany(b => b ? g.Select(v => (T?)v) : Gen.Const((T?)null));

    static readonly Gen<EventField> FieldGen = Gen.Int[0, 2].SelectMany(k => k switch
    {
        0 => from n in Str from v in Gen.ULong from s in Gen.Int[0, 3] select EventField.U64("f" + n, v, (FieldStyle)s),
        1 => from n in Str from v in Gen.Long select EventField.S64("s" + n, v),
        _ => from n in Str from v in Str select EventField.Str("t" + n, v),
    });

    static readonly Gen<TraceEvent> TraceEventGen =
        from ts in Gen.Long
        from cpu in Gen.Int[0, 255]
        from pid in Gen.Int
        from comm in Str
        from name in Str
        from fields in FieldGen.Array[0, 5]
        from probe in Gen.Bool.SelectMany(b => b ? Str.Select(s => (string?)s) : Gen.Const((string?)null))
        select new TraceEvent { Timestamp = ts, Cpu = cpu, Pid = pid, Comm = comm, Name = "sys:" + name, Fields = fields, Probe = probe };

    static Gen<object?> ValueGen(Type t)
    {
        if (t == typeof(long)) return Gen.Long.Select(v => (object?)v);
        if (t == typeof(int)) return Gen.Int.Select(v => (object?)v);
        if (t == typeof(uint)) return Gen.UInt.Select(v => (object?)v);
        if (t == typeof(ulong)) return Gen.ULong.Select(v => (object?)v);
        if (t == typeof(bool)) return Gen.Bool.Select(v => (object?)v);
        if (t == typeof(string)) return Str.Select(v => (object?)v);
        if (t == typeof(PageRef)) return PageGen.Select(v => (object?)v);
        if (t == typeof(TraceEvent)) return TraceEventGen.Select(v => (object?)v);
        if (t.IsEnum)
        {
            var values = Enum.GetValues(t);
            return Gen.Int[0, values.Length - 1].Select(i => values.GetValue(i));
        }
        if (System.Nullable.GetUnderlyingType(t) is { } u)
        {
            var inner = ValueGen(u);
            return Gen.Bool.SelectMany(b => b ? inner : Gen.Const((object?)null));
        }
        throw new NotSupportedException("no generator for " + t);
    }

    /// <summary>A generator filling every settable property of <paramref name="type"/> (including the header).</summary>
    static Gen<DomainEvent> GenFor(Type type)
    {
        var props = type.GetProperties(BindingFlags.Public | BindingFlags.Instance).Where(p => p.SetMethod != null).ToArray();
        Gen<object?[]> acc = Gen.Const(Array.Empty<object?>());
        foreach (var p in props)
        {
            var g = ValueGen(p.PropertyType);
            acc = acc.SelectMany(arr => g.Select(v => (object?[])[.. arr, v]));
        }
        return acc.Select(vals =>
        {
            var e = (DomainEvent)Activator.CreateInstance(type)!;
            for (int i = 0; i < props.Length; i++)
            {
                var v = vals[i];
                if (v == null && props[i].PropertyType == typeof(string)) v = "";
                props[i].SetValue(e, v);
            }
            return e;
        });
    }
}
