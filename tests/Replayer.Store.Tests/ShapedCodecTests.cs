using CsCheck;
using MessagePack;
using Replayer.Core;
using Replayer.Store;

namespace Replayer.Store.Tests;

/// <summary>Body kind 4 (<see cref="ShapedTraceEventCodec"/>): exact round trips (objects and blocks), block batches,
/// and untrusted-data checks.</summary>
public sealed class ShapedCodecTests
{
    static string Seed(ulong n) => new PCG(11, n).ToString(n);

    static void WithTimeout(Action a, int seconds = 120)
    {
        var t = Task.Run(a);
        if (!t.Wait(TimeSpan.FromSeconds(seconds))) Assert.Fail("timed out (a hang)");
        t.GetAwaiter().GetResult();
    }

    // Strings: a small pool (so that shapes and table entries repeat), empty, non-ASCII, longer than the
    // interner keeps (256 bytes), and fresh copies of pooled strings (equal value, another object).
    static readonly string[] Pool = ["kmem:mm_page_alloc", "rt:file_rmap_add", "page", "pfn", "order", "migwl", "d..2.", "func+0x4/0x80", "GFP_KERNEL"];
    static readonly Gen<string> Str = Gen.Frequency(
        (6, Gen.Int[0, Pool.Length - 1].Select(i => Pool[i])),
        (2, Gen.Int[0, Pool.Length - 1].Select(i => new string(Pool[i].AsSpan()))),
        (1, Gen.Const("")),
        (1, Gen.Char["aé☃\u00ffx\u4e2d"].Array[1, 12].Select(a => new string(a))),
        (1, Gen.Const("\U0001D11E clef")),
        (1, Gen.Int[257, 700].Select(n => new string('L', n))),
        (2, Gen.Char["abcxyz_0123"].Array[1, 10].Select(a => new string(a))));
    static readonly Gen<string?> NullableStr = Gen.Frequency((1, Gen.Const((string?)null)), (3, Str.Select(s => (string?)s)));

    static readonly Gen<ulong> Bits = Gen.OneOf(Gen.ULong, Gen.ULong[0, 300], Gen.Const(ulong.MaxValue), Gen.Const(1UL << 63), Gen.Const(0UL),
        Gen.ULong[0xffb6b5d840000000, 0xffb6b5d84fffffff]);

    static readonly Gen<EventField> Field = Gen.Frequency(
        (4, Gen.Select(Str, Bits, Gen.Int[0, 3], (n, v, s) => EventField.U64(n, v, (FieldStyle)s))),
        (3, Gen.Select(Str, Gen.OneOf(Gen.Long, Gen.Long[-5, 5], Gen.Const(long.MinValue), Gen.Const(long.MaxValue)), (n, v) => EventField.S64(n, v))),
        (3, Gen.Select(Str, Str, (n, v) => EventField.Str(n, v))),
        // Unusual combinations the canonical constructors never make: still stored exactly.
        (1, Gen.Select(Str, Gen.Byte, Bits, NullableStr, (n, k, b, t) => new EventField(n, k, b, t))),
        (1, Gen.Select(Str, Bits, (n, b) => new EventField(n, (byte)FieldType.Str, b | 1, "with bits"))),
        (1, Str.Select(n => new EventField(n, (byte)FieldType.Str, 0, null))),
        (1, Gen.Select(Str, Bits, (n, b) => new EventField(n, 0x30, b, "text on an integer"))));

    static readonly Gen<TraceEvent> Event = Gen.Select(
            Gen.OneOf(Gen.Long, Gen.Long[0, 1_000_000], Gen.Const(long.MinValue), Gen.Const(long.MaxValue)),
            Gen.OneOf(Gen.Int, Gen.Int[-1, 3]),
            Gen.OneOf(Gen.Int, Gen.Int[400, 403]),
            Str,
            Str,
            Gen.Frequency((1, Gen.Const(TraceEvent.NoFields)), (6, Field.Array[1, 12])),
            NullableStr,
            Gen.Select(Gen.OneOf(Gen.Long, Gen.Long[0, 5000]), NullableStr))
        .Select(t => new TraceEvent
        {
            Timestamp = t.Item1, Cpu = t.Item2, Pid = t.Item3, Comm = t.Item4, Name = t.Item5, Fields = t.Item6, Probe = t.Item7,
            Source = t.Item8.Item1, Flags = t.Item8.Item2,
        });

    /// <summary>Everything, exactly: print style, kind byte, bits and text of every field, and Source.</summary>
    internal static void AssertExact(TraceEvent want, TraceEvent got)
    {
        Assert.Equal(want.Timestamp, got.Timestamp);
        Assert.Equal(want.Cpu, got.Cpu);
        Assert.Equal(want.Pid, got.Pid);
        Assert.Equal(want.Comm ?? "", got.Comm);
        Assert.Equal(want.Name ?? "", got.Name);
        Assert.Equal(want.Probe, got.Probe);
        Assert.Equal(want.Flags, got.Flags);
        Assert.Equal(want.Source, got.Source);
        var wf = want.Fields ?? TraceEvent.NoFields;
        Assert.Equal(wf.Length, got.Fields.Length);
        for (int k = 0; k < wf.Length; k++)
        {
            Assert.Equal(wf[k].Name ?? "", got.Fields[k].Name);
            Assert.Equal(wf[k].Kind, got.Fields[k].Kind);
            Assert.Equal(wf[k].Bits, got.Fields[k].Bits);
            Assert.Equal(wf[k].Text, got.Fields[k].Text);
        }
    }

    static EventBlock ToBlock(IEnumerable<TraceEvent> events)
    {
        var b = new EventBlock(4);
        foreach (var e in events) b.Add(e);
        return b;
    }

    [Fact]
    public void Random_batches_round_trip_exactly_through_objects_blocks_and_block_batches()
    {
        WithTimeout(() => Gen.Select(Event.Array[1, 80], Gen.Int[0, 100]).Sample((events, skipPct) =>
        {
            var enc = BatchCodec.Encode(EventBatch.Of(events));
            Assert.Equal(BodyKind.TraceEventsShaped, enc.Kind);
            Assert.Equal(BodyCodec.Zstd, enc.Codec);
            var plain = BatchCodec.Encode(EventBatch.Of(events), BodyCodec.None);

            var (back, _) = BatchCodec.Decode(enc.Kind, enc.Codec, enc.RawLength, enc.Count, enc.Body, "t");
            Assert.Equal(events.Length, back!.Length);
            for (int i = 0; i < events.Length; i++) AssertExact(events[i], back[i]);

            int skip = events.Length * skipPct / 100;
            var block = new EventBlock(2);
            block.Add(events[0]); // decoding appends to what the block holds
            var d = BatchCodec.DecodeInto(plain.Kind, plain.Codec, plain.RawLength, plain.Count, plain.Body, "t", block, skip);
            Assert.Equal(new DecodedBody(false, events.Length), d);
            Assert.Equal(1 + events.Length - skip, block.Count);
            for (int i = skip; i < events.Length; i++) AssertExact(events[i], block.ToTraceEvent(1 + i - skip));

            // A block batch encodes to the same bytes as the array it was filled from.
            var fromBlock = BatchCodec.Encode(EventBatch.Of(ToBlock(events)), BodyCodec.None);
            Assert.Equal(plain.Body, fromBlock.Body);
        }, seed: Seed(1), iter: 400, threads: 1));
    }

    [Fact]
    public void The_body_is_a_sequence_of_MessagePack_values_the_standard_reader_walks()
    {
        WithTimeout(() => Event.Array[1, 40].Sample(events =>
        {
            var plain = BatchCodec.Encode(EventBatch.Of(events), BodyCodec.None);
            var r = new MessagePackReader(plain.Body);
            Assert.Equal((uint)events.Length, r.ReadUInt32());
            int ns = r.ReadArrayHeader();
            var table = new List<string>();
            for (int i = 0; i < ns; i++) table.Add(r.ReadString()!);
            int nk = r.ReadArrayHeader();
            for (int k = 0; k < nk; k++) r.Skip();
            int values = 0;
            while (!r.End)
            {
                r.Skip();
                values++;
            }
            // Seven values per event at least; the strings are in the table.
            Assert.True(values >= 7 * events.Length);
            Assert.Contains(events[0].Name, table);
            Assert.Contains(events[^1].Comm, table);
        }, seed: Seed(2), iter: 100, threads: 1));
    }

    [Fact]
    public void Pointers_that_move_by_small_steps_take_few_bytes()
    {
        // 4096 events of one shape whose page pointer advances by 64: the deltas are one or two bytes each.
        var events = Enumerable.Range(0, 4096).Select(i => new TraceEvent
        {
            Timestamp = 25_000_000_000 + i * 900L, Cpu = 0, Pid = 401, Comm = "migwl", Name = "kmem:mm_page_free", Source = i + 1, Flags = ".....",
            Fields = [EventField.U64("page", 0xffb6b5d8400c78c0 + (ulong)i * 64, FieldStyle.Pointer), EventField.U64("pfn", 0x31e3 + (ulong)i, FieldStyle.Hex), EventField.U64("order", 0)],
        }).ToArray();
        var plain = BatchCodec.Encode(EventBatch.Of(events), BodyCodec.None);
        // Header 11 bytes (ts delta 900 and pid 401 take three each) + one byte per field.
        Assert.InRange(plain.RawLength - 14 * events.Length, 0, 100);
        var compact = new System.Buffers.ArrayBufferWriter<byte>();
        CompactTraceEventEncoder.Encode(compact, events);
        Assert.True(plain.RawLength * 2 < compact.WrittenCount, $"shaped {plain.RawLength} vs compact {compact.WrittenCount} bytes");
        var block = new EventBlock();
        BatchCodec.DecodeInto(plain.Kind, plain.Codec, plain.RawLength, plain.Count, plain.Body, "t", block);
        for (int i = 0; i < events.Length; i++) AssertExact(events[i], block.ToTraceEvent(i));
    }

    [Fact]
    public void A_block_batch_is_a_copy_the_caller_can_refill_at_once_and_can_be_appended_twice()
    {
        var first = TestEvents.Make(300, seed: 1);
        var second = TestEvents.Make(300, seed: 2);
        var block = ToBlock(first);
        var whole = EventBatch.Of(block);
        var part = EventBatch.Of(block, 100, 50);
        Assert.True(whole.IsBlock);
        Assert.Null(whole.TraceEvents);
        Assert.Equal(300, whole.Count);
        Assert.Equal(50, part.Count);
        block.Clear();
        foreach (var e in second) block.Add(e);

        foreach (var (batch, want) in new[] { (whole, first), (part, first[100..150]) })
        {
            var a = BatchCodec.Encode(batch);
            var again = BatchCodec.Encode(batch);
            Assert.Equal(a.Body, again.Body);
            var plain = BatchCodec.Encode(batch, BodyCodec.None); // after the copy was given back: recompressed
            foreach (var enc in new[] { a, plain })
            {
                var (back, _) = BatchCodec.Decode(enc.Kind, enc.Codec, enc.RawLength, enc.Count, enc.Body, "t");
                Assert.Equal(want.Length, back!.Length);
                for (int i = 0; i < want.Length; i++) AssertExact(want[i], back[i]);
            }
        }
        Assert.Throws<ArgumentOutOfRangeException>(() => EventBatch.Of(block, 250, 51));
        Assert.Throws<ArgumentException>(() => EventBatch.Of([first[0], null!]));
    }

    /// <summary>Any mutation of a body either decodes to the header's count or throws StoreCorruptException
    /// naming the place, never another exception or a hang; a failed block decode leaves the block as it was.</summary>
    [Fact]
    public void Mutated_and_truncated_bodies_fail_cleanly()
    {
        var rng = new Random(78);
        var odd = new List<TraceEvent>();
        Event.Array[20].Sample(a => odd.AddRange(a), seed: Seed(3), iter: 1, threads: 1);
        var ev = TestEvents.Make(60, seed: 3).Concat(odd).ToArray();
        var enc = BatchCodec.Encode(EventBatch.Of(ev), BodyCodec.None);
        var zenc = BatchCodec.Encode(EventBatch.Of(ev));
        int decoded = 0, rejected = 0;
        var block = new EventBlock();
        WithTimeout(() =>
        {
            for (int iter = 0; iter < 4000; iter++)
            {
                var (src, codec) = iter % 2 == 0 ? (enc, BodyCodec.None) : (zenc, BodyCodec.Zstd);
                var body = src.Body.ToArray();
                int flips = rng.Next(0, 4);
                for (int k = 0; k < flips; k++) body[rng.Next(body.Length)] = (byte)rng.Next(256);
                if (flips == 0 || rng.Next(4) == 0) body = body[..rng.Next(body.Length)];
                int raw = iter % 7 == 0 ? src.RawLength - 1 : src.RawLength;
                block.Clear();
                block.Add(ev[0]);
                try
                {
                    BatchCodec.DecodeInto(src.Kind, codec, raw, src.Count, body, "fuzz", block);
                    Assert.Equal(1 + ev.Length, block.Count);
                    var (back, _) = BatchCodec.Decode(src.Kind, codec, raw, src.Count, body, "fuzz");
                    Assert.Equal(ev.Length, back!.Length);
                    decoded++;
                }
                catch (StoreCorruptException e)
                {
                    Assert.StartsWith("fuzz: ", e.Message);
                    Assert.Equal(1, block.Count);
                    rejected++;
                }
            }
        });
        Assert.True(rejected > 1000, $"{rejected} rejected, {decoded} decoded");
    }

    delegate void WriteBody(ref MessagePackWriter w);

    static byte[] Body(WriteBody write, out int length)
    {
        var buf = new System.Buffers.ArrayBufferWriter<byte>();
        var w = new MessagePackWriter(buf);
        write(ref w);
        w.Flush();
        length = buf.WrittenCount;
        return buf.WrittenSpan.ToArray();
    }

    static void Header(ref MessagePackWriter w, uint count, string[] strings, params object?[][] shapes)
    {
        w.Write(count);
        w.WriteArrayHeader(strings.Length);
        foreach (var s in strings) w.Write(s);
        w.WriteArrayHeader(shapes.Length);
        foreach (var sh in shapes)
        {
            w.WriteArrayHeader(sh.Length);
            foreach (var o in sh)
                switch (o)
                {
                    case null: w.WriteNil(); break;
                    case int i: w.Write(i); break;
                    case long l: w.Write(l); break;
                    case ulong u: w.Write(u); break;
                }
        }
    }

    /// <summary>One event of shape 0: ts, cpu, pid, comm 0, shape, source, flags nil, then the values.</summary>
    static void Event1(ref MessagePackWriter w, int shape, params long[] values)
    {
        w.Write(1L); w.Write(0); w.Write(401); w.Write(0); w.Write(shape); w.Write(1L); w.WriteNil();
        foreach (var v in values) w.Write(v);
    }

    public static TheoryData<string, string> HostileBodies() => new()
    {
        { "count", "event count" },
        { "strings", "string table" },
        { "shapes", "shape table" },
        { "string-index", "string index 9" },
        { "shape-index", "shape index 3" },
        { "mode", "unknown value mode 7" },
        { "kind", "is not a byte" },
        { "members", "has 4 members" },
        { "fields", "more than" },
        { "trailing", "trailing bytes" },
        { "header-count", "header says 2" },
        { "not-an-int", "expected an integer" },
        { "huge-uint", "does not fit a signed" },
    };

    [Theory]
    [MemberData(nameof(HostileBodies))]
    public void Hostile_bodies_are_rejected_with_what_is_wrong(string which, string expect)
    {
        int count = 1;
        var body = Body((ref MessagePackWriter w) =>
        {
            switch (which)
            {
                case "count":
                    Header(ref w, uint.MaxValue, ["a"], [0, null, 0, 0, 0]);
                    Event1(ref w, 0, 5);
                    break;
                case "strings":
                    w.Write(1u);
                    w.WriteArrayHeader(1_000_000_000);
                    w.Write("a");
                    break;
                case "shapes":
                    w.Write(1u);
                    w.WriteArrayHeader(0);
                    w.WriteArrayHeader(100_000);
                    break;
                case "string-index":
                    Header(ref w, 1, ["a"], [9, null]);
                    Event1(ref w, 0);
                    break;
                case "shape-index":
                    Header(ref w, 1, ["a"], [0, null]);
                    Event1(ref w, 3);
                    break;
                case "mode":
                    Header(ref w, 1, ["a"], [0, null, 0, 0, 7]);
                    Event1(ref w, 0, 1);
                    break;
                case "kind":
                    Header(ref w, 1, ["a"], [0, null, 0, 300, 0]);
                    Event1(ref w, 0, 1);
                    break;
                case "members":
                    Header(ref w, 1, ["a"], [0, null, 0, 0]);
                    Event1(ref w, 0, 1);
                    break;
                case "fields":
                    // A shape of 40 fields, and an event that stops after its header.
                    Header(ref w, 1, ["a"], [0, null, .. Enumerable.Range(0, 40).SelectMany(_ => new object[] { 0, 0, 0 })]);
                    Event1(ref w, 0);
                    w.Write(1); w.Write(1); w.Write(1);
                    break;
                case "trailing":
                    Header(ref w, 1, ["a"], [0, null, 0, 0, 0]);
                    Event1(ref w, 0, 5);
                    w.Write(1);
                    break;
                case "header-count":
                    count = 2;
                    Header(ref w, 1, ["a"], [0, null, 0, 0, 0]);
                    Event1(ref w, 0, 5);
                    w.Write(1); w.Write(1); w.Write(1); w.Write(1); w.Write(1); w.Write(1); w.Write(1);
                    break;
                case "not-an-int":
                    Header(ref w, 1, ["a"], [0, null, 0, 0, 0]);
                    w.Write("ts");
                    w.Write(0); w.Write(401); w.Write(0); w.Write(0); w.Write(1L); w.WriteNil(); w.Write(1);
                    break;
                case "huge-uint":
                    Header(ref w, 1, ["a"], [0, null, 0, 0, 0]);
                    w.Write(ulong.MaxValue);
                    w.Write(0); w.Write(401); w.Write(0); w.Write(0); w.Write(1L); w.WriteNil(); w.Write(1);
                    break;
            }
        }, out int length);
        var block = new EventBlock();
        var ex = Assert.Throws<StoreCorruptException>(() => BatchCodec.DecodeInto(BodyKind.TraceEventsShaped, BodyCodec.None, length, count, body, "seg-000000.dat at byte 32", block));
        Assert.StartsWith("seg-000000.dat at byte 32: ", ex.Message);
        Assert.Contains(expect, ex.Message);
        Assert.Equal(0, block.Count);
        var ex2 = Assert.Throws<StoreCorruptException>(() => BatchCodec.Decode(BodyKind.TraceEventsShaped, BodyCodec.None, length, count, body, "here"));
        Assert.StartsWith("here: ", ex2.Message);
    }

    [Fact]
    public void A_well_formed_hand_written_body_decodes()
    {
        // The same writer as the hostile cases, made valid: the decoder is not rejecting everything.
        var body = Body((ref MessagePackWriter w) =>
        {
            Header(ref w, 2, ["migwl", "kmem:mm_page_free", "page", "order"], [1, null, 2, 0x30, 0, 3, 0, 0]);
            Event1(ref w, 0, 1000, 0);
            Event1(ref w, 0, 64, 1);
        }, out int length);
        var block = new EventBlock();
        BatchCodec.DecodeInto(BodyKind.TraceEventsShaped, BodyCodec.None, length, 2, body, "t", block);
        Assert.Equal(2, block.Count);
        Assert.Equal(1064UL, block.FieldsOf(1)[0].Bits);
        Assert.Equal(FieldStyle.Pointer, block.FieldsOf(1)[0].Style);
        Assert.Equal(1UL, block.FieldsOf(1)[1].Bits);
        Assert.Equal("kmem:mm_page_free", block.NameOf(0));
        Assert.Equal(2L, block.TimestampOf(1));
        // Skipping: negative is none, past the end is all; the deltas of skipped events still count.
        block.Clear();
        BatchCodec.DecodeInto(BodyKind.TraceEventsShaped, BodyCodec.None, length, 2, body, "t", block, -5);
        Assert.Equal(2, block.Count);
        block.Clear();
        BatchCodec.DecodeInto(BodyKind.TraceEventsShaped, BodyCodec.None, length, 2, body, "t", block, 1);
        Assert.Equal(1064UL, block.FieldsOf(0)[0].Bits);
        Assert.Equal(2L, block.TimestampOf(0));
        block.Clear();
        BatchCodec.DecodeInto(BodyKind.TraceEventsShaped, BodyCodec.None, length, 2, body, "t", block, 9);
        Assert.Equal(0, block.Count);
    }
}
