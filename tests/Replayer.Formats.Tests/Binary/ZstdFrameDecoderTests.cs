using Replayer.Formats.Binary;
using Replayer.TestKit;

namespace Replayer.Formats.Tests.Binary;

/// <summary>
/// trace.dat chunks are decoded by the system's libzstd when it loads, by ZstdSharp otherwise: both decoders
/// give the same bytes for the same frames, and both refuse damaged or oversized frames.
/// </summary>
public class ZstdFrameDecoderTests
{
    [Fact]
    public void The_system_libzstd_is_loaded_on_Linux()
    {
        // libzstd1 is part of every Debian installation (dpkg and apt depend on it); without it the reader is slower, not wrong.
        Assert.True(!OperatingSystem.IsLinux() || ZstdFrameDecoder.Native, "libzstd.so.1 did not load: trace.dat chunks fall back to ZstdSharp");
        using var managed = new ZstdFrameDecoder(managed: true);
        Assert.False(managed.UsesNative);
    }

    /// <summary>Real trace text cut into frames of several sizes and levels, as trace-cmd writes one frame per chunk.</summary>
    static (byte[] Plain, byte[] Frames) Sample(int seed)
    {
        var text = BinaryTestKit.ZstdBytes(Repo.Trace("6.1-ext4-basic", "ftrace", "trace.txt.zst"));
        var rnd = new Random(seed);
        int start = rnd.Next(0, text.Length / 2);
        var plain = text.AsSpan(start, Math.Min(text.Length - start, rnd.Next(1, 1 << 20))).ToArray();
        using var ms = new MemoryStream();
        for (int at = 0; at < plain.Length;)
        {
            int n = Math.Min(plain.Length - at, rnd.Next(1, 300_000));
            using var c = new ZstdSharp.Compressor(rnd.Next(1, 10));
            ms.Write(c.Wrap(plain.AsSpan(at, n)));
            at += n;
        }
        return (plain, ms.ToArray());
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    public void Native_and_managed_decoders_give_the_same_bytes(int seed)
    {
        var (plain, frames) = Sample(seed);
        using var native = new ZstdFrameDecoder();
        using var managed = new ZstdFrameDecoder(managed: true);
        var a = new byte[plain.Length];
        var b = new byte[plain.Length];
        // the same decoder object serves many chunks (one context per reader)
        for (int rep = 0; rep < 2; rep++)
        {
            Assert.Equal(plain.Length, native.Decode(frames, a));
            Assert.Equal(plain.Length, managed.Decode(frames, b));
            Assert.Equal(plain, a);
            Assert.Equal(plain, b);
        }
    }

    [Fact]
    public void Damaged_frames_fail_the_same_way_in_both_decoders_and_Into_names_the_offset()
    {
        var (plain, frames) = Sample(4);
        var rnd = new Random(5);
        using var native = new ZstdFrameDecoder();
        using var managed = new ZstdFrameDecoder(managed: true);
        // too small a destination: refused, never written past
        Assert.ThrowsAny<Exception>(() => native.Decode(frames, new byte[plain.Length - 1]));
        Assert.ThrowsAny<Exception>(() => managed.Decode(frames, new byte[plain.Length - 1]));
        int refused = 0;
        for (int i = 0; i < 300; i++)
        {
            var bad = (byte[])frames.Clone();
            int cut = rnd.Next(0, 3) == 0 ? rnd.Next(1, bad.Length) : bad.Length;
            bad[rnd.Next(0, cut)] ^= (byte)rnd.Next(1, 256);
            var a = new byte[plain.Length];
            var b = new byte[plain.Length];
            var ea = Record.Exception(() => Decompress.Into("zstd", bad.AsSpan(0, cut), a, "chunks.dat", 4242, "test chunk", native));
            var eb = Record.Exception(() => Decompress.Into("zstd", bad.AsSpan(0, cut), b, "chunks.dat", 4242, "test chunk", managed));
            // zstd frames without checksums can decode damaged literals to other bytes: what matters is that both
            // decoders agree, and that a refusal is one TraceInputException at the chunk's offset
            Assert.Equal(ea == null, eb == null);
            if (ea == null) { Assert.Equal(a, b); continue; }
            Assert.Contains("4242", Assert.IsType<Replayer.Core.TraceInputException>(ea).Message);
            Assert.Contains("4242", Assert.IsType<Replayer.Core.TraceInputException>(eb).Message);
            refused++;
        }
        Assert.True(refused > 50, $"only {refused} of 300 damaged inputs refused");
    }
}
