using CsCheck;
using Replayer.Core;

namespace Replayer.Core.Tests;

/// <summary>The column block and its views hold exactly what a <see cref="TraceEvent"/> holds.</summary>
public class EventBlockTests
{
    static readonly string[] Names = ["kmem:mm_page_alloc", "migrate:mm_migrate_pages", "rt:file_rmap_add", "ftrace:print", "x"];
    static readonly string[] FieldNames = ["pfn", "page", "order", "buf", "memcg_id", "val", "folio"];

    static readonly Gen<EventField> Field =
        from n in Gen.Int[0, FieldNames.Length - 1]
        from k in Gen.Int[0, 3]
        from v in Gen.ULong
        from t in Gen.String[Gen.Char.AlphaNumeric, 0, 6]
        select k switch
        {
            0 => EventField.U64(FieldNames[n], v, FieldStyle.Hex),
            1 => EventField.S64(FieldNames[n], (long)v),
            2 => EventField.U64(FieldNames[n], v),
            _ => EventField.Str(FieldNames[n], t),
        };

    static readonly Gen<TraceEvent> Event =
        from name in Gen.Int[0, Names.Length - 1]
        from fields in Field.Array[0, 10]
        from probe in Gen.Int[-1, 1]
        from flags in Gen.Int[-1, 1]
        from pid in Gen.Int[0, 100_000]
        from cpu in Gen.Int[0, 255]
        from ts in Gen.Long[0, long.MaxValue / 2]
        from src in Gen.Long[0, 1_000_000_000]
        select new TraceEvent
        {
            Name = Names[name], Fields = fields, Probe = probe < 0 ? null : "page_add_file_rmap+0x0/0x2f0",
            Flags = flags < 0 ? null : "d..3.", Pid = pid, Cpu = cpu, Comm = "comm" + (pid % 3), Source = src, Timestamp = ts,
        };

    [Fact]
    public void Rows_round_trip_to_equal_events_and_views_read_like_events()
    {
        // A small capacity so that rows and fields both grow during the test.
        Event.Array[0, 60].Sample(events =>
        {
            var block = new EventBlock(4);
            foreach (var e in events) block.Add(e);
            Assert.Equal(events.Length, block.Count);
            Assert.Equal(events.Sum(e => e.Fields.Length), block.FieldCount);
            Assert.Equal(events, block.ToTraceEvents());
            for (int i = 0; i < events.Length; i++)
            {
                var e = events[i];
                var v = block[i];
                Assert.Equal((e.Timestamp, e.Cpu, e.Pid, e.Comm, e.Name, e.Probe, e.Flags, e.Source), (v.Timestamp, v.Cpu, v.Pid, v.Comm, v.Name, v.Probe, v.Flags, v.Source));
                Assert.True(v.Fields.SequenceEqual(e.Fields));
                Assert.Equal(e.ShortName.ToString(), v.ShortName.ToString());
                foreach (var n in FieldNames)
                {
                    Assert.Equal(e.IndexOf(n), v.IndexOf(n));
                    Assert.Equal(e.U64(n), v.U64(n));
                    Assert.Equal(e.S64(n), v.S64(n));
                    Assert.Equal(e.Str(n), v.Str(n));
                }
                EventView ev = e;
                Assert.Same(e, ev.Event);
                Assert.Same(e, ev.ToTraceEvent());
                Assert.Null(v.Event);
                Assert.Equal(e, v.ToTraceEvent());
            }
        }, seed: new PCG(7, 11).ToString(), iter: 300, threads: 1);
    }

    [Fact]
    public void Clear_RemoveLast_and_TrimLastFields_leave_exactly_the_rows_kept()
    {
        var b = new EventBlock(2);
        b.Append(1, 0, 10, "a", "n:one", null, null, 1);
        b.AddField(EventField.U64("pfn", 5));
        b.Append(2, 1, 11, "b", "n:two", "p", "d..", 2);
        var f = b.AddFields(3);
        f[0] = EventField.U64("x", 1);
        f[1] = EventField.Str("y", "s");
        f[2] = EventField.S64("z", -1);
        b.TrimLastFields(1);
        Assert.Equal(2, b.FieldsOf(1).Length);
        Assert.Equal(3, b.FieldCount);
        b.Append(3, 0, 12, "c", "n:three", null, null, 3);
        b.AddField(EventField.U64("q", 9));
        b.RemoveLast();
        Assert.Equal(2, b.Count);
        Assert.Equal(3, b.FieldCount);
        Assert.Equal(new TraceEvent { Timestamp = 2, Cpu = 1, Pid = 11, Comm = "b", Name = "n:two", Probe = "p", Flags = "d..", Source = 2, Fields = [EventField.U64("x", 1), EventField.Str("y", "s")] }, b.ToTraceEvent(1));
        Assert.Throws<ArgumentOutOfRangeException>(() => b[2]);
        b.Clear();
        Assert.Equal(0, b.Count);
        Assert.Equal(0, b.FieldCount);
        Assert.Throws<InvalidOperationException>(() => b.AddField(EventField.U64("x", 1)));
        b.Append(4, 0, 1, "d", "n:four", null, null, 4);
        Assert.Equal(0, b.FieldsOf(0).Length);
    }

    [Fact]
    public void Default_ReadBlock_returns_each_event_once_even_mixed_with_Read()
    {
        var events = Enumerable.Range(0, 10).Select(i => new TraceEvent { Timestamp = i, Name = "n:e", Fields = [EventField.U64("i", (ulong)i)] }).ToArray();
        ITraceReader r = new ListReader(events);
        var block = new EventBlock(2);
        Assert.Equal(3, r.ReadBlock(block, 3));
        Assert.Equal(events[3], r.Read());
        Assert.Equal(6, r.ReadBlock(block, 100));
        Assert.Equal(0, r.ReadBlock(block, 100));
        Assert.Equal(events.Where((_, i) => i != 3), block.ToTraceEvents());
    }

    sealed class ListReader(TraceEvent[] events) : ITraceReader
    {
        int _next;
        public TraceFormat Format => TraceFormat.Jsonl;
        public string SourceName => "list";
        public CaptureHeader Header { get; } = new();
        public ReadStats Stats { get; } = new();
        public TraceEvent? Read() => _next < events.Length ? events[_next++] : null;
        public void Dispose() { }
    }
}
