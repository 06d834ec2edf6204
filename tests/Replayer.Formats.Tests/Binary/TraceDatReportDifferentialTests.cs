using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;
using Replayer.Core;
using Replayer.Formats.Binary;
using Replayer.TestKit;

namespace Replayer.Formats.Tests.Binary;

/// <summary>
/// trace.dat decoding against <c>trace-cmd report</c> of the same file: every event, in order, with
/// comm, pid, CPU, timestamp (report prints rounded microseconds) and the print format's output
/// evaluated from the binary record (libtraceevent semantics). The one documented difference:
/// <c>kmem</c> <c>page=</c>, which trace-cmd computes wrongly and we do not compute without the
/// value of <c>vmemmap_base</c>.
/// </summary>
public class TraceDatReportDifferentialTests
{
    public static TheoryData<string> Captures => new(BinaryTestKit.TestCaptures);

    [Theory]
    [MemberData(nameof(Captures))]
    public void Decoded_events_match_trace_cmd_report_text(string capture)
    {
        var report = BinaryTestKit.ZstdLines(Repo.Trace(capture, "tracecmd", "report_host.txt.zst"))
            .Where(l => !l.StartsWith("cpus=", StringComparison.Ordinal)).ToList();
        var mine = RenderAll(BinaryTestKit.TraceDat(capture), out var stats);
        CompareLines(capture, report, mine);
        Assert.Equal(report.Count, (int)stats.Events);
        Assert.Equal(0, stats.UnparsedLines);
    }

    [Fact]
    public void Converted_v6_file_matches_trace_cmd_report_of_it()
    {
        var tc = BinaryTestKit.RequireTool("trace-cmd", "trace-cmd");
        var dir = Repo.TempDir("tdat-v6");
        try
        {
            var v6 = Path.Combine(dir, "v6.dat");
            BinaryTestKit.Run(tc, $"convert -i {BinaryTestKit.TraceDat("6.1-ext4-fail")} -o {v6} --file-version 6 --compression none");
            var report = BinaryTestKit.Run(tc, $"report -i {v6}").Split('\n', StringSplitOptions.RemoveEmptyEntries)
                .Where(l => !l.StartsWith("cpus=", StringComparison.Ordinal)).ToList();
            var mine = RenderAll(v6, out var stats);
            CompareLines("v6 of 6.1-ext4-fail", report, mine);
            using var r = new TraceDatReader(v6);
            Assert.Equal("trace.dat v6", r.Header.FormatVersion);
        }
        finally { Directory.Delete(dir, true); }
    }

    /// <summary>Each event as a report line: comm-pid [cpu] sec.usec: event: print output.</summary>
    internal static List<string> RenderAll(string path, out ReadStats stats)
    {
        var lines = new List<string>();
        using var r = new TraceDatReader(path, new BinaryReaderOptions { RenderText = true });
        while (r.Read() is { } e)
        {
            long us = (e.Timestamp + 500) / 1000; // report rounds to microseconds
            string ts = (us / 1_000_000).ToString(CultureInfo.InvariantCulture) + "." + (us % 1_000_000).ToString("D6", CultureInfo.InvariantCulture);
            string shortName = e.Name[(e.Name.IndexOf(':') + 1)..];
            lines.Add($"{e.Comm}-{e.Pid} [{e.Cpu:D3}] {ts}: {shortName}: {r.LastRendered}");
        }
        stats = r.Stats;
        return lines;
    }

    internal static void CompareLines(string what, List<string> report, List<string> mine)
    {
        int n = Math.Min(report.Count, mine.Count);
        for (int i = 0; i < n; i++)
        {
            string want = BinaryTestKit.Squash(report[i]).TrimEnd(), got = BinaryTestKit.Squash(mine[i]).TrimEnd();
            if (want == got) continue;
            if (got.Contains(EventDecoder.UnknownMark, StringComparison.Ordinal))
            {
                // Only kmem's page= (vmemmap_base + pfn) may be unknown; everything else in the line must match.
                Assert.Matches(@"^.+ \[\d+\] [\d.]+: (kmem:)?mm_page_(alloc|free|free_batched): page=<\?> ", got);
                var pattern = "^" + Regex.Escape(got).Replace(Regex.Escape(EventDecoder.UnknownMark), @"\S+") + "$";
                if (Regex.IsMatch(want, pattern)) continue;
            }
            Assert.Fail($"{what}: event {i} differs\n report: {want}\n binary: {got}");
        }
        Assert.True(report.Count == mine.Count, $"{what}: report has {report.Count} events, binary reader {mine.Count}");
    }
}
