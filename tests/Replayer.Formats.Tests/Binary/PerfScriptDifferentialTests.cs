using System.Globalization;
using Replayer.Core;
using Replayer.Formats.Binary;
using Replayer.TestKit;

namespace Replayer.Formats.Tests.Binary;

/// <summary>
/// perf.data decoding against <c>perf script</c> of the same file: every sample, in perf's order,
/// with comm, tid, CPU, timestamp (perf truncates to microseconds), event name and the print
/// format's output evaluated from PERF_SAMPLE_RAW. kmem <c>page=</c> is the documented exception.
/// </summary>
public class PerfScriptDifferentialTests
{
    public static TheoryData<string> Captures => new(BinaryTestKit.TestCaptures);

    [Theory]
    [MemberData(nameof(Captures))]
    public void Real_capture_matches_perf_script_text(string capture)
    {
        var data = BinaryTestKit.ZstdBytes(Repo.Trace(capture, "perf", "perf.data.zst"));
        var script = BinaryTestKit.ZstdLines(Repo.Trace(capture, "perf", "perf_script.txt.zst")).ToList();
        var mine = RenderAll(new MemoryStream(data), capture, out var stats, out var header);
        TraceDatReportDifferentialTests.CompareLines(capture + " perf", script, mine);
        Assert.Equal(0, stats.UnparsedLines);
        Assert.False(string.IsNullOrEmpty(header.KernelRelease));
        Assert.Equal(File.ReadAllText(Repo.Trace(capture, "perf", "uname.txt")).Split(' ', StringSplitOptions.RemoveEmptyEntries)
            .FirstOrDefault(w => w == header.KernelRelease), header.KernelRelease);
        Assert.True(header.CpuCount > 0);
    }

    [Theory]
    [InlineData("perf-pipe-host", true)]
    [InlineData("perf-zstd-host", false)]
    public void Pipe_mode_and_compressed_fixture_match_perf_script_text(string name, bool pipe)
    {
        var dir = Path.Combine(Repo.Root, "tests", "Replayer.Formats.Tests", "Binary", "data");
        var script = BinaryTestKit.ZstdLines(Path.Combine(dir, name + ".script.txt.zst")).ToList();
        // Pipe mode must work on a non-seekable stream.
        Stream input = File.OpenRead(Path.Combine(dir, name + ".data"));
        if (pipe) input = new NonSeekable(input);
        var mine = RenderAll(input, name, out var stats, out var header);
        TraceDatReportDifferentialTests.CompareLines(name, script, mine);
        Assert.Equal(pipe ? "perf.data (pipe)" : "perf.data", header.FormatVersion);
        if (!pipe) Assert.True(stats.Counters.ContainsKey("perf.compressed_records"), "the fixture has COMPRESSED records");
    }

    internal static List<string> RenderAll(Stream input, string name, out ReadStats stats, out CaptureHeader header)
    {
        var lines = new List<string>();
        using var r = new PerfDataReader(input, name, new BinaryReaderOptions { RenderText = true });
        while (r.Read() is { } e)
        {
            string? rendered = r.NextRendered();
            if (e.Name == SyntheticEvents.DataLoss) continue; // perf script prints no line for LOST by default
            long us = e.Timestamp / 1000; // perf script truncates to microseconds
            string ts = (us / 1_000_000).ToString(CultureInfo.InvariantCulture) + "." + (us % 1_000_000).ToString("D6", CultureInfo.InvariantCulture);
            lines.Add($"{e.Comm} {e.Pid} [{e.Cpu:D3}] {ts}: {e.Name}: {rendered}");
        }
        stats = r.Stats;
        header = r.Header;
        return lines;
    }

    sealed class NonSeekable(Stream inner) : Stream
    {
        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => false;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }
        public override void Flush() { }
        public override int Read(byte[] buffer, int offset, int count) => inner.Read(buffer, offset, count);
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
        protected override void Dispose(bool disposing) { if (disposing) inner.Dispose(); base.Dispose(disposing); }
    }
}
