using System.Text.RegularExpressions;
using Replayer.Core;
using Replayer.Formats;
using Replayer.TestKit;
using ZstdSharp;

namespace Replayer.Formats.Tests;

/// <summary>Every text of the real captures (except the 340 MB one, which only the benchmark reads).</summary>
public class RealCaptureTests
{
    public static TheoryData<string, string> Texts()
    {
        var d = new TheoryData<string, string>();
        foreach (var cap in Repo.RealCaptures())
        {
            var name = Path.GetFileName(cap);
            if (name.Contains("large")) continue;
            foreach (var rel in new[] { "ftrace/trace.txt", "ftrace/trace.txt.zst", "tracecmd/report_host.txt", "tracecmd/report_host.txt.zst",
                                        "perf/perf_script.txt", "perf/perf_script.txt.zst", "perf/perf_script_F_all.txt.zst" })
                if (File.Exists(Path.Combine(cap, rel))) d.Add(name, rel);
        }
        return d;
    }

    static string Decompressed(string path)
    {
        using var fs = File.OpenRead(path);
        using Stream s = path.EndsWith(".zst") ? new DecompressionStream(fs) : fs;
        using var r = new StreamReader(s);
        return r.ReadToEnd();
    }

    /// <summary>Events per name, counted the plain way: counts.txt beside the file when it describes this
    /// file, else a regex over the lines.</summary>
    static Dictionary<string, long> ExpectedCounts(string path, string text, out string keyKind)
    {
        var counts = Path.Combine(Path.GetDirectoryName(path)!, "counts.txt");
        var fileName = Path.GetFileName(path).Replace(".zst", "");
        if (File.Exists(counts))
        {
            var lines = File.ReadAllLines(counts);
            if (lines.Length > 0 && lines[0].Contains(" in " + fileName + " "))
            {
                keyKind = "counts.txt";
                return lines.Skip(1).Where(l => l.Trim().Length > 0)
                    .Select(l => l.Trim().Split(' ', 2, StringSplitOptions.TrimEntries))
                    .ToDictionary(p => p[1], p => long.Parse(p[0]));
            }
        }
        keyKind = "regex";
        var rx = new Regex(@"^.+?\s+\d+(?:/\d+)?\s+\[\d+\]\s+\d+\.\d+:\s+(?:\d+\s+)?(\S+):", RegexOptions.Multiline);
        return rx.Matches(text).GroupBy(m => m.Groups[1].Value).ToDictionary(g => g.Key, g => (long)g.Count());
    }

    public static TheoryData<string> SyntheticTexts()
    {
        var d = new TheoryData<string>();
        var root = Repo.Trace("synthetic");
        if (Directory.Exists(root))
            foreach (var f in Directory.GetFiles(root, "trace.txt*", SearchOption.AllDirectories).Order(StringComparer.Ordinal))
                d.Add(Path.GetRelativePath(Repo.Traces, f));
        return d;
    }

    /// <summary>The seed-era traces of tools/gen (raw ftrace with their kprobe_events.txt): every line an event of a
    /// known system, counts equal a plain regex count of the event lines.</summary>
    [Theory]
    [MemberData(nameof(SyntheticTexts))]
    public void Synthetic_seed_era_trace_parses_fully_with_every_event_named(string rel)
    {
        var path = Path.Combine(Repo.Traces, rel);
        var text = Decompressed(path);
        var rx = new Regex(@"^\s*\S.*?-\d+\s+\[\d+\]\s+(?:\S+\s+)?\d+\.\d+:\s+(\S+):", RegexOptions.Multiline);
        var expected = rx.Matches(text).GroupBy(m => m.Groups[1].Value).ToDictionary(g => g.Key, g => (long)g.Count());
        var got = new Dictionary<string, long>();
        using var r = TraceOpener.Open(path, new TraceOpenOptions { Strict = true });
        while (r.Read() is { } e)
        {
            Assert.DoesNotContain("unknown:", e.Name);
            var key = e.Name == "ftrace:print" ? e.Str("ip")! : e.ShortName.ToString();
            got[key] = got.GetValueOrDefault(key) + 1;
        }
        Assert.Equal(0, r.Stats.UnparsedLines);
        Assert.DoesNotContain(r.Stats.Counters, c => c.Value.Severity != StatSeverity.Info);
        Assert.Equal(expected.OrderBy(k => k.Key), got.OrderBy(k => k.Key));
    }

    [Theory]
    [MemberData(nameof(Texts))]
    public void Real_capture_text_parses_fully_and_counts_match(string capture, string rel)
    {
        var path = Repo.Trace(capture, rel);
        var text = Decompressed(path);
        var expected = ExpectedCounts(path, text, out var how);
        var got = new Dictionary<string, long>();
        using var r = TraceOpener.Open(path, new TraceOpenOptions { Strict = true });
        var expectFormat = rel.StartsWith("ftrace") ? TraceFormat.FtraceText : rel.StartsWith("tracecmd") ? TraceFormat.TraceCmdReport : TraceFormat.PerfScript;
        Assert.Equal(expectFormat, r.Format);
        long n = 0;
        while (r.Read() is { } e)
        {
            n++;
            string key = r.Format switch
            {
                TraceFormat.PerfScript => e.Name,
                TraceFormat.FtraceText when e.Name == "ftrace:print" => e.Str("ip")!,
                _ => e.ShortName.ToString(),
            };
            got[key] = got.GetValueOrDefault(key) + 1;
            Assert.DoesNotContain("unknown:", e.Name);
            Assert.True(e.Timestamp > 0);
        }
        Assert.Equal(0, r.Stats.UnparsedLines);
        Assert.False(r.Stats.Counters.ContainsKey("template_mismatch"), string.Join(", ", r.Stats.Counters.Where(c => c.Key.StartsWith("template")).Select(c => c.Key + "=" + c.Value.Value)));
        Assert.Equal(expected.OrderBy(k => k.Key), got.OrderBy(k => k.Key));
        Assert.Equal(expected.Values.Sum(), n);
        Assert.True(how.Length > 0);
    }
}
