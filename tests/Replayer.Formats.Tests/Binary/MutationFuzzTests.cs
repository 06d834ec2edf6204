using System.Diagnostics;
using Replayer.Core;
using Replayer.Formats.Binary;

namespace Replayer.Formats.Tests.Binary;

/// <summary>
/// Fixed-seed mutation fuzzing of both binary readers: small seed captures (synthetic trace.dat
/// v6/v7 and perf.data of both byte orders) are truncated, bit-flipped, spliced and have integer
/// fields overwritten with extreme values. Every input is decoded twice, with <c>Read()</c> and with
/// <c>ReadBlock</c> (block sizes varying per call), and must either decode or end in one
/// <see cref="TraceInputException"/> both ways, with the same event count or the same message; any other
/// exception, or a hang, fails the test.
/// </summary>
public class MutationFuzzTests
{
    const int Total = 100_000;

    static readonly (string Name, byte[] Data, bool Perf)[] Seeds =
    [
        ("tracedat-v6-le", SyntheticCaptures.TraceDat(6, "none", false), false),
        ("tracedat-v7-zstd-le", SyntheticCaptures.TraceDat(7, "zstd", false), false),
        ("tracedat-v7-none-be", SyntheticCaptures.TraceDat(7, "none", true), false),
        ("tracedat-printk-le", SyntheticPrintk.TraceDat(false), false),
        ("tracedat-printk-be", SyntheticPrintk.TraceDat(true), false),
        ("perf-le", SyntheticCaptures.PerfData(false), true),
        ("perf-be", SyntheticCaptures.PerfData(true), true),
        ("perf-compressed-le", SyntheticCaptures.PerfData(false, null, 81), true),
    ];

    [Fact]
    public async Task Hundred_thousand_mutated_inputs_end_in_events_or_one_TraceInputException()
    {
        // Fixed seed in CI; REPLAYER_FUZZ_SEED explores other sequences locally.
        int seed = int.TryParse(Environment.GetEnvironmentVariable("REPLAYER_FUZZ_SEED"), out var s) ? s : 20251125;
        var task = Task.Run(() => Run(Total, seed));
        var done = await Task.WhenAny(task, Task.Delay(TimeSpan.FromMinutes(4)));
        Assert.True(done == task, "mutation fuzzing did not finish in 4 minutes (a hang?)");
        var (runs, ok, rejected) = await task;
        Assert.True(runs >= Total, $"only {runs} inputs");
        Assert.True(ok > 0 && rejected > 0, $"mutations should both pass and fail: {ok} decoded, {rejected} rejected");
    }

    static (int Runs, int Ok, int Rejected) Run(int total, int seed)
    {
        var rng = new Random(seed);
        int runs = 0, ok = 0, rejected = 0;
        var sw = Stopwatch.StartNew();
        while (runs < total)
        {
            var (name, data, perf) = Seeds[runs % Seeds.Length];
            var input = Mutate(data, rng, Seeds[rng.Next(Seeds.Length)].Data);
            runs++;
            var byRead = Outcome(name, runs, seed, input, perf, blocks: false);
            var byBlock = Outcome(name, runs, seed, input, perf, blocks: true);
            if (byRead != byBlock)
            {
                var path = Save(name, runs, input);
                Assert.Fail($"{name} mutation #{runs} (seed {seed}): Read() {byRead}, ReadBlock {byBlock} (input saved to {path})");
            }
            if (byRead.Error == null) ok++;
            else rejected++;
        }
        _ = sw;
        return (runs, ok, rejected);
    }

    /// <summary>How decoding one input ended: the events, or the one-line error (null events count then).</summary>
    readonly record struct Result(long Events, string? Error);

    static Result Outcome(string name, int run, int seed, byte[] input, bool perf, bool blocks)
    {
        try
        {
            return new Result(Decode(input, perf, blocks), null);
        }
        catch (TraceInputException e)
        {
            Assert.False(e.Message.Contains('\n'), $"{name} #{run}: multi-line message: {e.Message}");
            Assert.True(e.Offset >= 0 || e.Line > 0, $"{name} #{run}: error without a position: {e.Message}");
            return new Result(-1, e.Message);
        }
        catch (Exception e)
        {
            var path = Save(name, run, input);
            Assert.Fail($"{name} mutation #{run} (seed {seed}) threw {e.GetType().Name} through {(blocks ? "ReadBlock" : "Read()")}: {e.Message} (input saved to {path})\n{e.StackTrace}");
            throw;
        }
    }

    static string Save(string name, int run, byte[] input)
    {
        var path = Path.Combine(Path.GetTempPath(), $"replayer-fuzz-{name}-{run}.bin");
        File.WriteAllBytes(path, input);
        return path;
    }

    internal static int Decode(byte[] input, bool perf) => Decode(input, perf, blocks: false);

    /// <summary>Decodes all of <paramref name="input"/> with <c>Read()</c>, or with <c>ReadBlock</c> into one
    /// reused block with sizes 1, 7 and 4096 in turn; returns the events (at most about a million).</summary>
    internal static int Decode(byte[] input, bool perf, bool blocks)
    {
        int n = 0;
        if (perf)
        {
            using var r = new PerfDataReader(new MemoryStream(input), "fuzz.perf");
            if (blocks) return DecodeBlocks(r.ReadBlock);
            while (r.Read() != null && n < 1_000_000) n++;
        }
        else
        {
            using var r = new TraceDatReader(BinarySource.FromBytes(input, "fuzz.dat"));
            if (blocks) return DecodeBlocks(r.ReadBlock);
            while (r.Read() != null && n < 1_000_000) n++;
        }
        return n;
    }

    static readonly int[] BlockSizes = [1, 7, 4096];

    static int DecodeBlocks(Func<EventBlock, int, int> readBlock)
    {
        var block = new EventBlock(16);
        int n = 0;
        for (int call = 0; n < 1_000_000; call++)
        {
            block.Clear();
            int got = readBlock(block, BlockSizes[call % BlockSizes.Length]);
            if (got == 0) break;
            if (got != block.Count) throw new InvalidOperationException($"ReadBlock said {got} rows, the block has {block.Count}");
            n += got;
        }
        return n;
    }

    static readonly ulong[] Extremes = [0, 1, 0x7f, 0x80, 0xff, 0x7fff, 0xffff, 0x7fffffff, 0x80000000, 0xffffffff, 0x7fffffffffffffff, 0xffffffffffffffff];

    internal static byte[] Mutate(byte[] seed, Random rng, byte[] other)
    {
        var b = (byte[])seed.Clone();
        int ops = 1 + rng.Next(3);
        for (int o = 0; o < ops; o++)
        {
            if (b.Length == 0) break;
            switch (rng.Next(6))
            {
                case 0: // truncate
                    b = b[..rng.Next(b.Length)];
                    break;
                case 1: // flip bits
                    for (int k = rng.Next(1, 9); k > 0; k--) b[rng.Next(b.Length)] ^= (byte)(1 << rng.Next(8));
                    break;
                case 2: // overwrite an integer with an extreme value
                {
                    int size = new[] { 1, 2, 4, 8 }[rng.Next(4)];
                    int at = rng.Next(b.Length);
                    ulong v = Extremes[rng.Next(Extremes.Length)];
                    for (int k = 0; k < size && at + k < b.Length; k++) b[at + k] = (byte)(v >> (8 * k));
                    break;
                }
                case 3: // splice a chunk of another seed in
                {
                    int len = rng.Next(1, 256);
                    int from = rng.Next(Math.Max(1, other.Length - len));
                    int to = rng.Next(b.Length);
                    len = Math.Min(len, Math.Min(other.Length - from, b.Length - to));
                    if (len > 0) Array.Copy(other, from, b, to, len);
                    break;
                }
                case 4: // duplicate or drop a range
                {
                    int at = rng.Next(b.Length), len = rng.Next(1, Math.Min(512, b.Length - at) + 1);
                    b = rng.Next(2) == 0 ? [.. b[..at], .. b[at..(at + len)], .. b[at..]] : [.. b[..at], .. b[(at + len)..]];
                    break;
                }
                default: // random byte run
                {
                    int at = rng.Next(b.Length), len = Math.Min(rng.Next(1, 32), b.Length - at);
                    rng.NextBytes(b.AsSpan(at, len));
                    break;
                }
            }
        }
        return b;
    }
}
