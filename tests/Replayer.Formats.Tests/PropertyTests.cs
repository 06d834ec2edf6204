using System.Text;
using CsCheck;
using Replayer.Core;
using Replayer.Formats;
using static Replayer.Formats.Tests.TestUtil;

namespace Replayer.Formats.Tests;

/// <summary>CsCheck properties with fixed seeds, single-threaded, each run under a timeout.</summary>
public class PropertyTests
{
    const int HeadBytes = 96 * 1024;

    static List<TraceEvent> ReadBytes(byte[] data, int[] chunks, bool strict)
    {
        using var r = TraceOpener.Open(new ChunkedStream(data, chunks), new TraceOpenOptions { Strict = strict, SourceName = "fixture" });
        return ReadAll(r);
    }

    static void WithTimeout(Action a, int seconds = 60)
    {
        var t = Task.Run(a);
        if (!t.Wait(TimeSpan.FromSeconds(seconds))) Assert.Fail("timed out (a hang)");
        t.GetAwaiter().GetResult();
    }

    [Fact]
    public void Splitting_the_input_at_any_byte_gives_the_same_events()
    {
        WithTimeout(() =>
        {
            for (int f = 0; f < Fixtures.Length; f++)
            {
                var data = FixtureHead(Fixtures[f], HeadBytes);
                var expected = ReadBytes(data, [], strict: true);
                Assert.True(expected.Count > 100);
                Gen.Int[1, 9000].Array[1, 12].Sample(chunks =>
                {
                    var got = ReadBytes(data, chunks, strict: true);
                    Assert.Equal(expected, got);
                }, seed: Seed(100 + (ulong)f), iter: 12, threads: 1);
            }
        });
    }

    [Fact]
    public void Truncating_a_fixture_anywhere_gives_a_clean_partial_result_or_a_clean_input_error()
    {
        WithTimeout(() =>
        {
            for (int f = 0; f < Fixtures.Length; f++)
            {
                var data = FixtureHead(Fixtures[f], 32 * 1024);
                var full = ReadBytes(data, [], strict: false);
                Gen.Int[0, data.Length].Sample(cut =>
                {
                    var part = data.AsSpan(0, cut).ToArray();
                    try
                    {
                        using var r = TraceOpener.Open(new MemoryStream(part), new TraceOpenOptions { Strict = true, SourceName = "cut" });
                        var evs = ReadAll(r);
                        // exactly the events of the complete lines: a prefix of the full reading
                        Assert.True(evs.Count <= full.Count);
                        for (int i = 0; i < evs.Count; i++) Assert.Equal(full[i], evs[i]);
                        int complete = data.AsSpan(0, cut).LastIndexOf((byte)'\n') + 1;
                        using var whole = TraceOpener.Open(new MemoryStream(data, 0, complete), new TraceOpenOptions { Strict = true, SourceName = "cut" });
                        Assert.Equal(ReadAll(whole).Count, evs.Count);
                        Assert.Equal(0, r.Stats.UnparsedLines);
                    }
                    catch (TraceInputException e)
                    {
                        Assert.DoesNotContain('\n', e.Message);
                        Assert.StartsWith("cut", e.Message);
                    }
                }, seed: Seed(200 + (ulong)f), iter: 40, threads: 1);
            }
        });
    }

    [Fact]
    public void Truncating_compressed_input_gives_a_clean_result_or_input_error()
    {
        WithTimeout(() =>
        {
            var data = FixtureHead(Fixtures[0], 64 * 1024);
            var zst = new ZstdSharp.Compressor().Wrap(data).ToArray();
            Gen.Int[0, zst.Length].Sample(cut =>
            {
                try
                {
                    using var r = TraceOpener.Open(new MemoryStream(zst.AsSpan(0, cut).ToArray()), new TraceOpenOptions { Strict = true, SourceName = "cut.zst" });
                    ReadAll(r);
                }
                catch (TraceInputException e) { Assert.StartsWith("cut.zst", e.Message); }
            }, seed: Seed(300), iter: 40, threads: 1);
        });
    }

    internal static readonly Gen<string> Ident = Gen.Char["abcdefghijklmnopqrstuvwxyz_"].Array[1, 8].Select(a => new string(a));
    internal static readonly Gen<string> Text = Gen.Char["abcXYZ019 _-|:/.()<>,"].Array[0, 20].Select(a => new string(a));

    internal static readonly Gen<EventField> Field = Gen.OneOf(
        Gen.Select(Ident, Gen.ULong, Gen.Int[0, 3], (n, v, s) => EventField.U64(n, v, (FieldStyle)s)),
        Gen.Select(Ident, Gen.Long, (n, v) => EventField.S64(n, v)),
        Gen.Select(Ident, Text, (n, v) => EventField.Str(n, v)));

    internal static readonly Gen<TraceEvent> Event = Gen.Select(
        Gen.Long[0, long.MaxValue / 2], Gen.Int[-1, 511], Gen.Int[-1, 4_000_000],
        Gen.Char["abcKW09 /:-[]"].Array[1, 15].Select(a => new string(a).Trim() is { Length: > 0 } s ? s : "x"),
        Gen.Select(Ident, Ident, (s, n) => s + ":" + n),
        Field.Array[0, 6].Select(fs => fs.DistinctBy(f => f.Name).ToArray()),
        Gen.OneOf(Gen.Const((string?)null), Gen.Const<string?>("func+0x4/0x80"), Gen.Const<string?>("a+0x1/0x2 <- b")),
        Gen.OneOf(Gen.Const((string?)null), Gen.Const<string?>("d..2."), Gen.Const<string?>(".....")))
        .Select(t => new TraceEvent
        {
            Timestamp = t.Item1, Cpu = t.Item2, Pid = t.Item3, Comm = t.Item4, Name = t.Item5, Fields = t.Item6, Probe = t.Item7, Flags = t.Item8,
        });

    /// <summary>A reader over a fixed list (to feed TimeSorter arbitrary orders).</summary>
    sealed class ListReader(IReadOnlyList<TraceEvent> events) : ITraceReader
    {
        int _i;
        public TraceFormat Format => TraceFormat.Unknown;
        public string SourceName => "list";
        public CaptureHeader Header { get; } = new();
        public ReadStats Stats { get; } = new();
        public TraceEvent? Read() => _i < events.Count ? events[_i++] : null;
        public void Dispose() { }
    }

    [Fact]
    public void Time_sorter_with_a_large_enough_window_is_a_stable_sort()
    {
        WithTimeout(() => Gen.Select(Gen.Int[0, 50].Array[0, 300], Gen.Int[1, 400], Gen.Int[0, 60]).Sample((stamps, window, horizon) =>
        {
            var events = stamps.Select((t, i) => new TraceEvent { Timestamp = t, Name = "x:y", Source = i }).ToList();
            // horizon 0 (off) or beyond the spread of the stamps: only the count window matters
            using var s = new TimeSorter(new ListReader(events), window, horizon < 51 ? 0 : horizon);
            var got = ReadAll(s);
            Assert.Equal(events.Count, got.Count);
            Assert.Equal(events.Select(e => e.Source).Order(), got.Select(e => e.Source).Order());
            if (window >= events.Count)
            {
                Assert.Equal(events.OrderBy(e => e.Timestamp).Select(e => e.Source), got.Select(e => e.Source));
                Assert.Equal(0, s.OutOfOrderEvents);
            }
            // whatever the window, the count of steps back in time is what the sorter reports
            long back = 0, max = long.MinValue;
            foreach (var e in got) { if (e.Timestamp < max) back++; max = Math.Max(max, e.Timestamp); }
            Assert.Equal(back, s.OutOfOrderEvents);
        }, seed: Seed(600), iter: 300, threads: 1));
    }

    [Fact]
    public void Time_sorter_horizon_releases_events_early_and_counts_what_comes_later()
    {
        WithTimeout(() => Gen.Select(Gen.Int[0, 1000].Array[0, 300], Gen.Int[1, 200]).Sample((stamps, horizon) =>
        {
            var events = stamps.Select((t, i) => new TraceEvent { Timestamp = t, Name = "x:y", Source = i }).ToList();
            using var s = new TimeSorter(new ListReader(events), 1 << 20, horizon);
            var got = ReadAll(s);
            Assert.Equal(events.Select(e => e.Source).Order(), got.Select(e => e.Source).Order());
            long back = 0, max = long.MinValue;
            foreach (var e in got) { if (e.Timestamp < max) back++; max = Math.Max(max, e.Timestamp); }
            Assert.Equal(back, s.OutOfOrderEvents);
            // an event can only be late if it was more than the horizon behind the newest one read before it
            long seen = long.MinValue;
            long mustBeInOrder = 0;
            foreach (var e in events) { if (seen - e.Timestamp <= horizon) mustBeInOrder++; seen = Math.Max(seen, e.Timestamp); }
            Assert.True(back <= events.Count - mustBeInOrder);
        }, seed: Seed(650), iter: 300, threads: 1));
    }

    [Fact]
    public void Jsonl_round_trip_is_exact_for_any_events()
    {
        WithTimeout(() => Event.Array[1, 30].Sample(events =>
        {
            var ms = new MemoryStream();
            using (var w = new JsonlWriter(ms, leaveOpen: true)) foreach (var e in events) w.Write(e);
            ms.Position = 0;
            using var r = TraceOpener.Open(ms, new TraceOpenOptions { Strict = true });
            var back = ReadAll(r);
            Assert.Equal(events, back);
            for (int i = 0; i < events.Length; i++)
                Assert.Equal(events[i].Fields.Select(f => f.Kind), back[i].Fields.Select(f => f.Kind));
        }, seed: Seed(400), iter: 150, threads: 1));
    }

    [Fact]
    public void Ftrace_text_writer_round_trip_is_exact_for_any_events()
    {
        WithTimeout(() => Event.Array[1, 30].Sample(events =>
        {
            var ms = new MemoryStream();
            long lossy;
            using (var w = new FtraceTextWriter(ms, leaveOpen: true))
            {
                foreach (var e in events) w.Write(e);
                lossy = w.LossyEvents;
            }
            ms.Position = 0;
            using var r = TraceOpener.Open(ms, new TraceOpenOptions { Strict = true });
            var back = ReadAll(r);
            Assert.Equal(0, lossy);
            Assert.Equal(events.Length, back.Count);
            for (int i = 0; i < events.Length; i++)
                Assert.True(events[i].Equals(back[i]), $"{events[i]}\n{back[i]}\n{Encoding.UTF8.GetString(ms.ToArray())}");
        }, seed: Seed(500), iter: 150, threads: 1));
    }
}
