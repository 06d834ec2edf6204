using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Replayer.Core;
using Replayer.Formats;
using Replayer.Store;
using Spectre.Console;

namespace Replayer.Cli.Commands;

/// <summary>
/// <c>replayer ingest FILE... [--store DIR|URL]</c>: parses each trace and appends it, all or nothing,
/// to its own stream <c>capture-&lt;first 16 hex of sha256(file)&gt;</c> with metadata (source, size, hash,
/// format, kernel, events per name, reader counters, capture context (kprobe_events.txt, uname.txt,
/// kallsyms_bases.txt, formats/), ground-truth files found beside the trace).
/// Re-ingesting the same bytes is a no-op.
/// </summary>
public static class IngestCommand
{
    /// <summary>Events per stored batch: small enough that a reader's in-flight batches die young (GC), large enough to compress well.</summary>
    public const int BatchSize = 4096;
    public const string StreamPrefix = "capture-";
    /// <summary>Ground-truth files stored with a capture when found beside its trace.</summary>
    static readonly string[] GroundTruthPatterns = ["memory.stat.*", "memory.numa_stat.*", "workload.stdout", "uname.txt"];
    const long MaxGroundTruthBytes = 1 << 20;

    public static Option<string?> StoreOption() => new("--store")
    {
        Description = "Event store: a directory (default $REPLAYER_STORE or ~/.local/share/replayer/store) or postgres://user:pass@host:port/db",
    };

    public static Command Create()
    {
        var files = new Argument<string[]>("file") { Description = "Trace files (any supported format; gzip/zstd/xz ok)", Arity = ArgumentArity.OneOrMore };
        var store = StoreOption();
        var lenient = new Option<bool>("--lenient") { Description = "Count lines that are not understood instead of stopping at the first one" };
        var cmd = new Command("ingest", "Parse traces and store each as one capture stream (all or nothing; re-ingest is a no-op)") { files, store, lenient };
        cmd.SetAction(pr => CliRunner.Run(() => Run(pr.GetValue(files)!, pr.GetValue(store), !pr.GetValue(lenient), Console.Out)));
        return cmd;
    }

    /// <summary>The capture id of a file: the first 16 hex digits of the SHA-256 of its bytes.</summary>
    public static (string Id, string Sha256, long Size) Identify(string path)
    {
        using var fs = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 20, FileOptions.SequentialScan);
        var hash = Convert.ToHexStringLower(SHA256.HashData(fs));
        return (hash[..16], hash, fs.Length);
    }

    public static int Run(string[] paths, string? storeSpec, bool strict, TextWriter output)
    {
        foreach (var p in paths)
            if (!File.Exists(p)) throw new UsageException($"{p}: no such file");
        using var store = StoreFactory.Open(storeSpec);
        if (store is Replayer.Store.Embedded.EmbeddedEventStore emb)
            foreach (var line in emb.RecoveryLog) Console.Error.WriteLine("replayer: note: " + line);
        foreach (var path in paths)
            IngestOne(store, path, strict, output);
        return ExitCodes.Ok;
    }

    /// <summary>Ingests one trace (a no-op when its bytes are already stored); returns the capture id.</summary>
    public static string IngestOne(IEventStore store, string path, bool strict, TextWriter output)
    {
        var (id, sha, size) = Identify(path);
        var stream = new StreamName(StreamPrefix + id);
        if (store.GetStreamInfoAsync(stream).GetAwaiter().GetResult() is { } existing)
        {
            output.WriteLine($"{path}: already ingested as {stream} ({existing.EventCount} events); nothing to do");
            return id;
        }

        var sw = Stopwatch.StartNew();
        var perName = new Dictionary<string, long>(StringComparer.Ordinal);
        long events = 0;
        ITraceReader? reader = null;
        TraceFormat format = TraceFormat.Unknown;
        string? kernel = null;
        IAppendTransaction tx;
        try
        {
            tx = store.BeginAppendAsync(stream, ExpectedRevision.NoStream).GetAwaiter().GetResult();
        }
        catch (WrongExpectedVersionException)
        {
            output.WriteLine($"{path}: already ingested as {stream} (by a concurrent ingest); nothing to do");
            return id;
        }
        try
        {
            reader = TraceOpener.Open(path, new TraceOpenOptions { Strict = strict });
            var r = reader;
            WithProgress(path, size, report =>
            {
                // Reader → block → store: readers that decode into blocks (trace.dat, perf.data) allocate nothing
                // per event, and EventBatch.Of copies the rows, so one block is refilled for every batch.
                var block = new EventBlock(BatchSize);
                while (true)
                {
                    block.Clear();
                    if (r.ReadBlock(block, BatchSize) == 0) break;
                    // Events of one name come in runs: count a run at once.
                    var names = block.Names;
                    for (int i = 0; i < names.Length; )
                    {
                        var name = names[i];
                        int j = i + 1;
                        while (j < names.Length && ReferenceEquals(names[j], name)) j++;
                        ref var c = ref System.Runtime.InteropServices.CollectionsMarshal.GetValueRefOrAddDefault(perName, name, out _);
                        c += j - i;
                        i = j;
                    }
                    tx.AppendAsync(EventBatch.Of(block)).GetAwaiter().GetResult();
                    events += block.Count;
                    report(events);
                }
            });
            format = reader.Format;
            kernel = reader.Header.KernelRelease ?? KernelFromUname(path);
            tx.SetMetadata(BuildMetadata(path, id, sha, size, reader, events, perName));
            tx.CommitAsync().GetAwaiter().GetResult();
        }
        finally
        {
            reader?.Dispose();
            tx.DisposeAsync().AsTask().GetAwaiter().GetResult(); // no-op after commit; rolls back otherwise
        }
        output.WriteLine($"{path}: ingested {events} events as {stream} ({format}{(kernel != null ? ", kernel " + kernel : "")}) in {sw.Elapsed.TotalSeconds.ToString("F1", CultureInfo.InvariantCulture)} s into {store.Description}");
        return id;
    }

    static string? KernelFromUname(string tracePath)
    {
        var uname = Path.Combine(Path.GetDirectoryName(Path.GetFullPath(tracePath))!, "uname.txt");
        if (!File.Exists(uname)) return null;
        // `uname -a`: Linux HOST RELEASE ...
        var parts = File.ReadAllText(uname).Split([' ', '\t', '\n'], StringSplitOptions.RemoveEmptyEntries);
        return parts.Length >= 3 && parts[0] == "Linux" ? parts[2] : null;
    }

    public static string BuildMetadata(string path, string id, string sha, long size, ITraceReader reader, long events, Dictionary<string, long> perName)
    {
        var ms = new MemoryStream();
        using (var w = new Utf8JsonWriter(ms, new JsonWriterOptions { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping }))
        {
            w.WriteStartObject();
            w.WriteString("kind", "capture");
            w.WriteString("id", id);
            w.WriteString("sourceFile", Path.GetFileName(path));
            w.WriteString("sourcePath", Path.GetFullPath(path));
            w.WriteNumber("size", size);
            w.WriteString("sha256", sha);
            w.WriteString("format", reader.Format.ToString());
            var kernel = reader.Header.KernelRelease ?? KernelFromUname(path);
            if (kernel != null) w.WriteString("kernelRelease", kernel);
            else w.WriteNull("kernelRelease");
            w.WriteString("ingestedAt", DateTimeOffset.UtcNow.ToString("O", CultureInfo.InvariantCulture));
            w.WriteNumber("events", events);
            w.WriteStartObject("header");
            if (reader.Header.CpuCount is { } cpus) w.WriteNumber("cpuCount", cpus);
            if (reader.Header.TraceClock is { } clock) w.WriteString("traceClock", clock);
            if (reader.Header.FormatVersion is { } fv) w.WriteString("formatVersion", fv);
            foreach (var (k, v) in reader.Header.Properties.OrderBy(kv => kv.Key, StringComparer.Ordinal)) w.WriteString(k, v);
            w.WriteEndObject();
            w.WriteStartObject("eventsPerName");
            foreach (var (k, v) in perName.OrderBy(kv => kv.Key, StringComparer.Ordinal)) w.WriteNumber(k, v);
            w.WriteEndObject();
            w.WriteStartObject("readStats");
            w.WriteNumber("lines", reader.Stats.Lines);
            w.WriteNumber("unparsedLines", reader.Stats.UnparsedLines);
            w.WriteNumber("lostEvents", reader.Stats.LostEvents);
            w.WriteNumber("dataLossMarkers", reader.Stats.DataLossMarkers);
            w.WriteStartObject("counters");
            foreach (var (k, (sev, v)) in reader.Stats.Counters.OrderBy(kv => kv.Key, StringComparer.Ordinal))
            {
                w.WriteStartObject(k);
                w.WriteString("severity", sev.ToString());
                w.WriteNumber("value", v);
                w.WriteEndObject();
            }
            w.WriteEndObject();
            w.WriteEndObject();
            // the capture context, so audits of the stored capture never need the folder it came from
            w.WritePropertyName("context");
            Replayer.Replay.CaptureFiles.Collect(path).WriteJson(w);
            w.WriteStartObject("groundTruth");
            var dir = Path.GetDirectoryName(Path.GetFullPath(path))!;
            var found = GroundTruthPatterns.SelectMany(p => Directory.EnumerateFiles(dir, p)).Distinct().OrderBy(f => f, StringComparer.Ordinal);
            foreach (var f in found)
            {
                var len = new FileInfo(f).Length;
                if (len > MaxGroundTruthBytes) continue;
                var bytes = File.ReadAllBytes(f);
                w.WriteString(Path.GetFileName(f), Encoding.UTF8.GetString(bytes));
            }
            w.WriteEndObject();
            w.WriteEndObject();
        }
        return Encoding.UTF8.GetString(ms.ToArray());
    }

    /// <summary>Runs <paramref name="body"/> with a live Spectre.Console progress line on stderr when it is a
    /// terminal and the input is large; otherwise (redirected, small input) with a no-op reporter.</summary>
    static void WithProgress(string path, long size, Action<Action<long>> body)
    {
        IAnsiConsole? console = null;
        if (!Console.IsErrorRedirected && size >= (4 << 20))
        {
            console = AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(Console.Error) });
            if (!console.Profile.Capabilities.Ansi || !console.Profile.Capabilities.Interactive) console = null;
        }
        if (console == null)
        {
            body(static _ => { });
            return;
        }
        var name = Path.GetFileName(path);
        var sw = Stopwatch.StartNew();
        console.Progress()
            .AutoClear(true)
            .Columns(new SpinnerColumn(), new TaskDescriptionColumn { Alignment = Justify.Left }, new ElapsedTimeColumn())
            .Start(ctx =>
            {
                var task = ctx.AddTask(Markup.Escape($"ingest {name}"));
                task.IsIndeterminate = true;
                body(events =>
                {
                    double rate = events / Math.Max(0.001, sw.Elapsed.TotalSeconds);
                    task.Description = Markup.Escape($"ingest {name}: {events.ToString("N0", CultureInfo.InvariantCulture)} events ({rate.ToString("N0", CultureInfo.InvariantCulture)}/s)");
                });
                task.StopTask();
            });
    }
}
