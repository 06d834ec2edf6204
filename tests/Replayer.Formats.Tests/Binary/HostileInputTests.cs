using System.Buffers.Binary;
using Replayer.Core;
using Replayer.Formats.Binary;
using Replayer.TestKit;

namespace Replayer.Formats.Tests.Binary;

/// <summary>Named hostile-input cases: truncation anywhere in real captures and corrupted structures
/// end in one <see cref="TraceInputException"/> with the byte offset and what was expected.</summary>
public class HostileInputTests
{
    /// <summary>Decoding fails with one TraceInputException, through Read() and through ReadBlock alike.</summary>
    static TraceInputException DecodeFails(byte[] data, bool perf)
    {
        var e = Assert.Throws<TraceInputException>(() => MutationFuzzTests.Decode(data, perf, blocks: false));
        var b = Assert.Throws<TraceInputException>(() => MutationFuzzTests.Decode(data, perf, blocks: true));
        Assert.Equal(e.Message, b.Message);
        Assert.True(e.Offset >= 0 && e.Offset <= data.Length, $"offset {e.Offset} outside the {data.Length}-byte input: {e.Message}");
        Assert.False(e.Message.Contains('\n'), e.Message);
        Assert.False(string.IsNullOrWhiteSpace(e.Expected));
        return e;
    }

    [Fact]
    public void Truncated_real_trace_dat_fails_with_the_offset_everywhere()
    {
        var full = File.ReadAllBytes(BinaryTestKit.TraceDat("6.1-ext4-fail"));
        // Points in the preamble, metadata sections, options, and inside the compressed ring-buffer data.
        foreach (double frac in new[] { 0.0, 0.00001, 0.0005, 0.002, 0.01, 0.1, 0.3, 0.5, 0.7, 0.9, 0.999 })
        {
            int cut = (int)(full.Length * frac);
            var e = DecodeFails(full[..cut], perf: false);
            Assert.Contains("expected", e.Message);
        }
    }

    [Fact]
    public void Truncated_real_perf_data_fails_with_the_offset_everywhere()
    {
        var full = BinaryTestKit.ZstdBytes(Repo.Trace("6.1-ext4-fail", "perf", "perf.data.zst"));
        foreach (double frac in new[] { 0.0, 0.00001, 0.0005, 0.01, 0.3, 0.6, 0.999 })
            DecodeFails(full[..(int)(full.Length * frac)], perf: true);
    }

    [Fact]
    public void Ring_buffer_commit_beyond_the_page_is_reported_at_the_commit_field()
    {
        var data = SyntheticCaptures.TraceDat(6, "none", false);
        // CPU 0's first page is the first page-aligned block after the metadata; its commit is at +8.
        int page = FirstPage(data);
        BinaryPrimitives.WriteUInt64LittleEndian(data.AsSpan(page + 8), 5000);
        var e = DecodeFails(data, perf: false);
        Assert.Equal(page + 8, e.Offset);
        Assert.Contains("commit", e.Expected);
    }

    [Fact]
    public void Event_length_past_the_page_data_is_reported_at_the_event()
    {
        var data = SyntheticCaptures.TraceDat(6, "none", false);
        int page = FirstPage(data);
        // first event header at data offset 16: make it a type_len 0 event claiming 4000 bytes
        BinaryPrimitives.WriteUInt32LittleEndian(data.AsSpan(page + 16), 0);
        BinaryPrimitives.WriteUInt32LittleEndian(data.AsSpan(page + 20), 4000);
        var e = DecodeFails(data, perf: false);
        Assert.Equal(page + 16, e.Offset);
        Assert.Contains("event length", e.Expected);
    }

    [Fact]
    public void Huge_declared_sizes_are_rejected_before_allocating()
    {
        var data = SyntheticCaptures.PerfData(false);
        BinaryPrimitives.WriteUInt64LittleEndian(data.AsSpan(32), 0x7fff_ffff_ff00); // attrs section size
        var before = GC.GetAllocatedBytesForCurrentThread();
        var e = DecodeFails(data, perf: true);
        Assert.True(GC.GetAllocatedBytesForCurrentThread() - before < 16 << 20, "rejecting a bogus size must not allocate it");
        Assert.Equal(32, e.Offset);

        var v7 = SyntheticCaptures.TraceDat(7, "zstd", false);
        // The header-info section (the first after "zstd\0" "1\0" and the 8-byte options offset) claims 2 GiB uncompressed.
        Assert.True(IndexOf(v7, "header_page"u8.ToArray()) < 0, "the synthetic v7 file compresses its sections");
        var bogus = (byte[])v7.Clone();
        int sec = IndexOf(bogus, "zstd\0"u8.ToArray()) + 7 + 8 + 16; // section body: u32 csize, u32 usize
        BinaryPrimitives.WriteUInt32LittleEndian(bogus.AsSpan(sec + 4), 0x7fff_0000);
        before = GC.GetAllocatedBytesForCurrentThread();
        e = DecodeFails(bogus, perf: false);
        Assert.True(GC.GetAllocatedBytesForCurrentThread() - before < 16 << 20);
        Assert.Contains("uncompressed size", e.Expected);
    }

    static int FirstPage(byte[] data)
    {
        // the v6 synthetic file: CPU data starts at the first 4096-aligned offset after "flyrecord\0" + the table
        int fly = IndexOf(data, "flyrecord\0"u8.ToArray());
        return (int)BinaryPrimitives.ReadUInt64LittleEndian(data.AsSpan(fly + 10));
    }

    static int IndexOf(byte[] hay, byte[] needle) => hay.AsSpan().IndexOf(needle);
}
