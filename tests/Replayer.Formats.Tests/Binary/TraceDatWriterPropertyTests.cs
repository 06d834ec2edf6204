using CsCheck;
using Replayer.Core;
using Replayer.Formats.Binary;

namespace Replayer.Formats.Tests.Binary;

/// <summary>
/// Random canonical events (no known formats: every event name gets a synthesized format) written as
/// trace.dat and read back: equal, event for event, or counted lossy for the documented reasons only
/// (a decimal above 2^63). Covers several CPUs, gaps needing TIME_EXTEND, records over 112 bytes and
/// page breaks, both endiannesses.
/// </summary>
public class TraceDatWriterPropertyTests
{
    // Per event name: a fixed list of (field name, kind): 0 decimal, 1 signed, 2 hex, 3 string.
    static readonly (string Name, (string Field, int Kind)[] Fields)[] Schemas =
    [
        ("sysa:one", [("x", 0), ("y", 2)]),
        ("sysa:two", [("name", 3), ("delta", 1), ("addr", 2), ("note", 3)]),
        ("sysb:three", [("n", 0)]),
    ];

    static readonly Gen<string> Str = Gen.String[Gen.Char['!', '~'], 0, 300]; // printable, no NUL; long ones need a length word

    static readonly Gen<(int Schema, int Cpu, long Gap, int Pid, ulong A, long S, string T, string U)> Item =
        Gen.Select(Gen.Int[0, Schemas.Length - 1], Gen.Int[0, 3], Gen.OneOf(Gen.Long[0, 5000], Gen.Long[0, 20_000_000_000]),
            Gen.Int[1, 6], Gen.ULong[0, long.MaxValue], Gen.Long, Str, Str);

    [Fact]
    public void Random_events_round_trip_exactly()
    {
        Gen.Select(Item.List[1, 400], Gen.Bool).Sample((items, big) =>
        {
            var lastByCpu = new long[4];
            var events = new List<TraceEvent>();
            foreach (var it in items)
            {
                var (name, fields) = Schemas[it.Schema];
                lastByCpu[it.Cpu] += it.Gap; // monotonic per CPU, as ring buffers are
                var f = fields.Select(fd => fd.Kind switch
                {
                    0 => EventField.U64(fd.Field, it.A),
                    1 => EventField.S64(fd.Field, it.S),
                    2 => EventField.U64(fd.Field, it.A ^ 0xffff_0000_0000_0000, FieldStyle.Hex),
                    _ => EventField.Str(fd.Field, fd.Field == "note" ? it.U : it.T),
                }).ToArray();
                events.Add(new TraceEvent { Timestamp = lastByCpu[it.Cpu], Cpu = it.Cpu, Pid = it.Pid, Comm = "c" + it.Pid, Name = name, Flags = "d..1.", Fields = f });
            }
            using var ms = new MemoryStream();
            var w = new TraceDatWriter(ms, new TraceDatWriterOptions { BigEndian = big }, leaveOpen: true);
            foreach (var e in events) w.Write(e);
            w.Dispose();
            Assert.Equal(0, w.LossyEvents);
            using var r = new TraceDatReader(BinarySource.FromBytes(ms.ToArray(), "prop.dat"));
            var back = new List<TraceEvent>();
            while (r.Read() is { } e) back.Add(e);
            var want = events.Select((e, i) => (e, i)).OrderBy(x => x.e.Timestamp).ThenBy(x => x.e.Cpu).ThenBy(x => x.i).Select(x => x.e).ToList();
            Assert.Equal(want.Count, back.Count);
            // Same-time events on different CPUs may merge in either order: compare per CPU.
            for (int c = 0; c < 4; c++)
                Assert.Equal(want.Where(e => e.Cpu == c), back.Where(e => e.Cpu == c));
        }, seed: "0N0XIzNsQ0O2", iter: 60);
    }

    [Fact]
    public void Decimal_above_two_to_the_63_is_counted_lossy_not_hidden()
    {
        var e = new TraceEvent { Timestamp = 1, Cpu = 0, Pid = 1, Comm = "c", Name = "s:e", Flags = "d..1.", Fields = [EventField.U64("v", ulong.MaxValue - 1)] };
        using var ms = new MemoryStream();
        var w = new TraceDatWriter(ms, leaveOpen: true);
        w.Write(e);
        w.Dispose();
        Assert.Equal(1, w.LossyEvents);
        Assert.Equal(1, w.Lossy["fields:s:e"]);
    }
}
