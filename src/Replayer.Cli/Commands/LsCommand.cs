using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using Replayer.Store;

namespace Replayer.Cli.Commands;

/// <summary><c>replayer ls [--store DIR|URL] [--json]</c>: the captures in the store.</summary>
public static class LsCommand
{
    public static Command Create()
    {
        var store = IngestCommand.StoreOption();
        var json = new Option<bool>("--json") { Description = "Print JSON lines instead of a table" };
        var cmd = new Command("ls", "List the captures in the event store (id, source file, format, events, kernel)") { store, json };
        cmd.SetAction(pr => CliRunner.Run(() => Run(pr.GetValue(store), pr.GetValue(json), Console.Out)));
        return cmd;
    }

    public sealed record Row(string Id, string Stream, string Name, string Format, ulong Events, string? Kernel, long Size, string? Sha256);

    public static List<Row> Collect(IEventStore store)
    {
        var rows = new List<Row>();
        var e = store.ListStreamsAsync().GetAsyncEnumerator();
        try
        {
            while (e.MoveNextAsync().AsTask().GetAwaiter().GetResult())
            {
                var s = e.Current;
                if (!s.Name.Value.StartsWith(IngestCommand.StreamPrefix, StringComparison.Ordinal)) continue;
                string name = "?", format = "?";
                string? kernel = null, sha = null;
                long size = -1;
                if (s.Metadata is { } meta)
                {
                    try
                    {
                        using var doc = JsonDocument.Parse(meta);
                        var r = doc.RootElement;
                        if (r.TryGetProperty("sourceFile", out var v) && v.ValueKind == JsonValueKind.String) name = v.GetString()!;
                        if (r.TryGetProperty("format", out v) && v.ValueKind == JsonValueKind.String) format = v.GetString()!;
                        if (r.TryGetProperty("kernelRelease", out v) && v.ValueKind == JsonValueKind.String) kernel = v.GetString();
                        if (r.TryGetProperty("sha256", out v) && v.ValueKind == JsonValueKind.String) sha = v.GetString();
                        if (r.TryGetProperty("size", out v) && v.ValueKind == JsonValueKind.Number) size = v.GetInt64();
                    }
                    catch (JsonException) { name = "(unreadable metadata)"; }
                }
                rows.Add(new Row(s.Name.Value[IngestCommand.StreamPrefix.Length..], s.Name.Value, name, format, s.EventCount, kernel, size, sha));
            }
        }
        finally
        {
            e.DisposeAsync().AsTask().GetAwaiter().GetResult();
        }
        return rows;
    }

    public static int Run(string? storeSpec, bool json, TextWriter output)
    {
        // Read-only: works while another process ingests into the same directory.
        using var store = OpenForReading(storeSpec);
        if (store == null)
        {
            if (!json) output.WriteLine($"no captures (no event store at {StoreFactory.Resolve(storeSpec)} yet)");
            return ExitCodes.Ok;
        }
        var rows = Collect(store);
        if (json)
        {
            foreach (var r in rows)
                output.WriteLine(JsonSerializer.Serialize(new { id = r.Id, stream = r.Stream, name = r.Name, format = r.Format, events = r.Events, kernel = r.Kernel, size = r.Size, sha256 = r.Sha256 }));
            return ExitCodes.Ok;
        }
        if (rows.Count == 0)
        {
            output.WriteLine($"no captures in {store.Description}");
            return ExitCodes.Ok;
        }
        var header = new[] { "ID", "NAME", "FORMAT", "EVENTS", "KERNEL" };
        var cells = rows.Select(r => new[] { r.Id, r.Name, r.Format, r.Events.ToString(CultureInfo.InvariantCulture), r.Kernel ?? "-" }).ToList();
        var widths = header.Select((h, i) => Math.Max(h.Length, cells.Max(c => c[i].Length))).ToArray();
        output.WriteLine(Line(header, widths));
        foreach (var c in cells) output.WriteLine(Line(c, widths));
        return ExitCodes.Ok;
    }

    static string Line(string[] cells, int[] widths) =>
        string.Join("  ", cells.Select((c, i) => i == 3 ? c.PadLeft(widths[i]) : c.PadRight(widths[i]))).TrimEnd();

    /// <summary>Embedded stores open without the writer lock. Null when the default store does not exist yet;
    /// a named store that does not exist is a usage error.</summary>
    public static IEventStore? OpenForReading(string? storeSpec)
    {
        var spec = StoreFactory.Resolve(storeSpec);
        if (!StoreFactory.IsPostgres(spec) && !Directory.Exists(Path.Combine(spec, "segments")))
        {
            if (storeSpec != null || Environment.GetEnvironmentVariable(StoreFactory.EnvVar) is { Length: > 0 })
                throw new UsageException($"{spec}: no event store there (create one with `replayer ingest FILE --store {spec}`)");
            return null;
        }
        return StoreFactory.Open(spec, readOnly: true);
    }
}
