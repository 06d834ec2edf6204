using Replayer.Core;
using Replayer.Formats.Binary;
using Replayer.Formats.Tests.Binary;
using SharpFuzz;

// Coverage-guided fuzz target of the binary readers (see README.md).
//   Replayer.Fuzz seeds DIR     write the seed corpus
//   Replayer.Fuzz libfuzzer     run under libfuzzer-dotnet (input bytes from libFuzzer)
//   Replayer.Fuzz afl           run under afl-fuzz (SharpFuzz out-of-process mode, input on stdin)
//   Replayer.Fuzz run FILE...   decode files once (reproduce a crash)
if (args.Length >= 2 && args[0] == "seeds")
{
    Directory.CreateDirectory(args[1]);
    foreach (var big in new[] { false, true })
    {
        string e = big ? "be" : "le";
        File.WriteAllBytes(Path.Combine(args[1], $"tracedat-v6-{e}.dat"), SyntheticCaptures.TraceDat(6, "none", big));
        File.WriteAllBytes(Path.Combine(args[1], $"tracedat-printk-{e}.dat"), SyntheticPrintk.TraceDat(big));
        foreach (var c in new[] { "none", "zstd", "zlib" })
            File.WriteAllBytes(Path.Combine(args[1], $"tracedat-v7-{c}-{e}.dat"), SyntheticCaptures.TraceDat(7, c, big));
        File.WriteAllBytes(Path.Combine(args[1], $"perf-{e}.data"), SyntheticCaptures.PerfData(big));
        File.WriteAllBytes(Path.Combine(args[1], $"perf-compressed-{e}.data"), SyntheticCaptures.PerfData(big, null, big ? 83 : 81));
    }
    return 0;
}
if (args.Length >= 1 && args[0] == "libfuzzer")
{
    Fuzzer.LibFuzzer.Run(span => Target(span.ToArray()));
    return 0;
}
if (args.Length >= 1 && args[0] == "afl")
{
    Fuzzer.OutOfProcess.Run(stream =>
    {
        using var ms = new MemoryStream();
        stream.CopyTo(ms);
        Target(ms.ToArray());
    });
    return 0;
}
if (args.Length >= 2 && args[0] == "run")
{
    foreach (var f in args[1..])
    {
        try { Console.WriteLine($"{f}: {Target(File.ReadAllBytes(f))} events"); }
        catch (TraceInputException e) { Console.WriteLine($"{f}: {e.Message}"); }
    }
    return 0;
}
Console.Error.WriteLine("usage: Replayer.Fuzz seeds DIR | libfuzzer | afl | run FILE...");
return 2;

// Decodes one input with the reader its magic selects, once with Read() and once with ReadBlock (block sizes
// 1, 7, 4096 in turn). TraceInputException is the expected way to reject bad input and is swallowed; any other
// exception escapes and is a finding, and so is a difference between the two ways (events or error).
static int Target(byte[] data)
{
    var (n, error) = Decode(data, blocks: false);
    var (m, blockError) = Decode(data, blocks: true);
    if (n != m || error != blockError)
        throw new InvalidOperationException($"Read() gave {n} events ({error ?? "no error"}), ReadBlock {m} ({blockError ?? "no error"})");
    return Math.Max(n, 0);
}

static (int Events, string? Error) Decode(byte[] data, bool blocks)
{
    int n = 0;
    try
    {
        bool perf = data.Length >= 8 && (data.AsSpan(0, 8).SequenceEqual("PERFILE2"u8) || data.AsSpan(0, 8).SequenceEqual("2ELIFREP"u8));
        using ITraceReader r = perf ? new PerfDataReader(new MemoryStream(data), "fuzz.perf") : new TraceDatReader(BinarySource.FromBytes(data, "fuzz.dat"));
        if (blocks)
        {
            var block = new EventBlock(16);
            int[] sizes = [1, 7, 4096];
            for (int call = 0; n < 1_000_000; call++)
            {
                block.Clear();
                int got = r switch
                {
                    PerfDataReader p => p.ReadBlock(block, sizes[call % 3]),
                    TraceDatReader t => t.ReadBlock(block, sizes[call % 3]),
                    _ => 0,
                };
                if (got == 0) break;
                n += got;
            }
        }
        else
            while (r.Read() != null && n < 1_000_000) n++;
    }
    catch (TraceInputException e)
    {
        return (-1, e.Message);
    }
    return (n, null);
}
