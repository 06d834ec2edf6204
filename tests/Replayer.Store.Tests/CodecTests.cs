using System.Buffers;
using MessagePack;
using Replayer.Core;
using Replayer.Store;

namespace Replayer.Store.Tests;

public sealed class CodecTests
{
    static TraceEvent RandomEvent(Random rng)
    {
        string RandStr() => rng.Next(6) switch
        {
            0 => "",
            1 => new string('x', rng.Next(300, 600)),
            2 => "caf\u00e9 \u2603 " + rng.Next(),
            _ => "s" + rng.Next(50),
        };
        var fields = new EventField[rng.Next(0, 20)];
        for (int i = 0; i < fields.Length; i++)
            fields[i] = rng.Next(3) switch
            {
                0 => EventField.U64(RandStr(), (ulong)rng.NextInt64() * (ulong)rng.Next(1, 3), (FieldStyle)rng.Next(4)),
                1 => EventField.S64(RandStr(), rng.NextInt64(long.MinValue, long.MaxValue)),
                _ => EventField.Str(RandStr(), RandStr()),
            };
        return new TraceEvent
        {
            Timestamp = rng.NextInt64(long.MinValue, long.MaxValue), Cpu = rng.Next(-1, 512), Pid = rng.Next(int.MinValue, int.MaxValue),
            Comm = RandStr(), Name = RandStr(), Fields = fields, Probe = rng.Next(2) == 0 ? null : RandStr(),
            Source = rng.NextInt64(), Flags = rng.Next(2) == 0 ? null : RandStr(),
        };
    }

    [Fact]
    public void Fast_encoder_writes_and_fast_decoder_reads_exactly_what_MessagePack_does()
    {
        var rng = new Random(2024);
        for (int iter = 0; iter < 300; iter++)
        {
            var events = Enumerable.Range(0, rng.Next(0, 60)).Select(_ => RandomEvent(rng)).ToArray();
            var bytes = MessagePackSerializer.Serialize(events, BatchCodec.Options);
            var buf = new ArrayBufferWriter<byte>();
            TraceEventEncoder.Encode(buf, events);
            Assert.Equal(bytes, buf.WrittenSpan.ToArray());
            var fast = TraceEventDecoder.Decode(bytes, out int consumed);
            var std = MessagePackSerializer.Deserialize<TraceEvent[]>(bytes, BatchCodec.Options);
            Assert.Equal(bytes.Length, consumed);
            Assert.Equal(std.Length, fast.Length);
            for (int i = 0; i < std.Length; i++)
            {
                TestEvents.AssertSame(std[i], fast[i]);
                TestEvents.AssertSame(events[i], fast[i]);
            }
        }
    }

    [Fact]
    public void Compact_bodies_written_explicitly_as_kind_3_still_decode_to_objects_and_blocks()
    {
        var rng = new Random(4242);
        for (int iter = 0; iter < 300; iter++)
        {
            var events = Enumerable.Range(0, rng.Next(1, 60)).Select(_ => RandomEvent(rng)).ToArray();
            // Equal strings that are distinct objects, and the extremes of the delta-coded members.
            if (iter % 3 == 0) events[0] = new TraceEvent { Timestamp = long.MinValue, Source = long.MaxValue, Comm = new string('c', 3), Name = "n", Fields = null! };
            var buf = new ArrayBufferWriter<byte>();
            CompactTraceEventEncoder.Encode(buf, events);
            var raw = buf.WrittenSpan.ToArray();
            var body = iter % 2 == 0 ? raw : new ZstdSharp.Compressor(1).Wrap(raw).ToArray();
            var codec = iter % 2 == 0 ? BodyCodec.None : BodyCodec.Zstd;
            var (back, _) = BatchCodec.Decode(BodyKind.TraceEventsCompact, codec, raw.Length, events.Length, body, "t");
            var block = new EventBlock();
            int skip = rng.Next(events.Length + 1);
            var d = BatchCodec.DecodeInto(BodyKind.TraceEventsCompact, codec, raw.Length, events.Length, body, "t", block, skip);
            Assert.Equal(new DecodedBody(false, events.Length), d);
            Assert.Equal(events.Length, back!.Length);
            Assert.Equal(events.Length - skip, block.Count);
            for (int i = 0; i < events.Length; i++)
            {
                var want = events[i].Fields is null ? new TraceEvent { Timestamp = events[i].Timestamp, Cpu = events[i].Cpu, Pid = events[i].Pid, Comm = events[i].Comm, Name = events[i].Name, Probe = events[i].Probe, Source = events[i].Source, Flags = events[i].Flags } : events[i];
                TestEvents.AssertSame(want, back[i]);
                if (i >= skip) TestEvents.AssertSame(want, block.ToTraceEvent(i - skip));
            }
        }
    }

    [Fact]
    public void Bodies_of_the_first_format_still_decode()
    {
        var ev = TestEvents.Make(3000, seed: 5);
        var buf = new ArrayBufferWriter<byte>();
        TraceEventEncoder.Encode(buf, ev);
        var raw = buf.WrittenSpan.ToArray();
        var z = new ZstdSharp.Compressor(1).Wrap(raw).ToArray();
        foreach (var (codec, body) in new[] { (BodyCodec.None, raw), (BodyCodec.Zstd, z) })
        {
            var (back, _) = BatchCodec.Decode(BodyKind.TraceEvents, codec, raw.Length, ev.Length, body, "v1");
            for (int i = 0; i < ev.Length; i++) TestEvents.AssertSame(ev[i], back![i]);
            var block = new EventBlock();
            BatchCodec.DecodeInto(BodyKind.TraceEvents, codec, raw.Length, ev.Length, body, "v1", block, 10);
            Assert.Equal(ev.Length - 10, block.Count);
            for (int i = 10; i < ev.Length; i++) TestEvents.AssertSame(ev[i], block.ToTraceEvent(i - 10));
        }
        // The compact form of the same batch is several times smaller before compression.
        var compact = BatchCodec.Encode(EventBatch.Of(ev), BodyCodec.None);
        Assert.True(compact.RawLength * 2 < raw.Length, $"compact {compact.RawLength} bytes vs {raw.Length}");
    }

    [Fact]
    public void Encode_decode_round_trips_batches_of_both_kinds()
    {
        var ev = TestEvents.Make(5000, seed: 9);
        var enc = BatchCodec.Encode(EventBatch.Of(ev));
        Assert.Equal(BodyCodec.Zstd, enc.Codec);
        Assert.Equal(BodyKind.TraceEventsShaped, enc.Kind);
        Assert.True(enc.Body.Length < enc.RawLength);
        var (back, _) = BatchCodec.Decode(enc.Kind, enc.Codec, enc.RawLength, enc.Count, enc.Body, "t");
        for (int i = 0; i < ev.Length; i++) TestEvents.AssertSame(ev[i], back![i]);

        var recs = new[] { new EventRecord("A", new byte[] { 0, 255 }), new EventRecord("B", Array.Empty<byte>()) };
        var enc2 = BatchCodec.Encode(EventBatch.Of(recs), BodyCodec.None);
        var (_, r2) = BatchCodec.Decode(enc2.Kind, enc2.Codec, enc2.RawLength, enc2.Count, enc2.Body, "t");
        Assert.Equal(recs.Select(r => (r.EventType, r.Payload.ToArray())), r2!.Select(r => (r.EventType, r.Payload.ToArray())));
        // Records as MessagePack the standard reader agrees with ([type, bin] pairs).
        var std = MessagePackSerializer.Deserialize<object[][]>(enc2.Body, BatchCodec.Options);
        Assert.Equal(["A", "B"], std.Select(p => (string)p[0]));
        Assert.Equal(new byte[] { 0, 255 }, (byte[])std[0][1]);
        // A block read passes over records and says how many.
        var block = new EventBlock();
        Assert.Equal(new DecodedBody(true, 2), BatchCodec.DecodeInto(enc2.Kind, enc2.Codec, enc2.RawLength, enc2.Count, enc2.Body, "t", block));
        Assert.Equal(0, block.Count);
    }

    /// <summary>Bodies are untrusted: any mutation of an (uncompressed) body either decodes to the same count or
    /// throws StoreCorruptException, never another exception, a hang or a giant allocation.</summary>
    [Fact]
    public void Mutated_bodies_fail_cleanly()
    {
        var rng = new Random(77);
        var ev = TestEvents.Make(40, seed: 3);
        var enc = BatchCodec.Encode(EventBatch.Of(ev), BodyCodec.None);
        var zenc = BatchCodec.Encode(EventBatch.Of(ev));
        for (int iter = 0; iter < 2000; iter++)
        {
            var (src, codec) = iter % 2 == 0 ? (enc, BodyCodec.None) : (zenc, BodyCodec.Zstd);
            var body = src.Body.ToArray();
            int flips = rng.Next(1, 4);
            for (int k = 0; k < flips; k++) body[rng.Next(body.Length)] = (byte)rng.Next(256);
            if (rng.Next(5) == 0) body = body[..rng.Next(body.Length)];
            try
            {
                var (back, _) = BatchCodec.Decode(src.Kind, codec, src.RawLength, src.Count, body, "fuzz");
                Assert.Equal(40, back!.Length);
            }
            catch (StoreCorruptException e)
            {
                Assert.StartsWith("fuzz: ", e.Message);
            }
        }
    }

    [Fact]
    public void Crc32C_matches_the_Castagnoli_check_value()
    {
        Assert.Equal(0xE3069283u, Crc32C.Compute("123456789"u8));
        var data = new byte[1000];
        new Random(1).NextBytes(data);
        Assert.Equal(Crc32C.Compute(data), ~Crc32C.Append(Crc32C.Append(~0u, data.AsSpan(0, 333)), data.AsSpan(333)));
    }
}
