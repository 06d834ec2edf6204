using System.CommandLine;
using Replayer.Store;
using Replayer.Store.Embedded;

namespace Replayer.Cli.Commands;

/// <summary><c>replayer store verify [--store DIR|URL]</c>: checks every checksum, frame and index entry.</summary>
public static class StoreCommand
{
    public static Command Create()
    {
        var store = IngestCommand.StoreOption();
        var verify = new Command("verify", "Check every checksum, frame and index entry; name the file and byte offset of any damage (exit 1 when damaged)") { store };
        verify.SetAction(pr => CliRunner.Run(() => Verify(pr.GetValue(store), Console.Out)));
        var cmd = new Command("store", "Event store maintenance") { verify };
        return cmd;
    }

    public static int Verify(string? storeSpec, TextWriter output)
    {
        using var store = LsCommand.OpenForReading(storeSpec)
            ?? throw new UsageException($"{StoreFactory.Resolve(storeSpec)}: no event store there yet");
        if (store is EmbeddedEventStore { RecoveryLog.Count: > 0 } emb)
            foreach (var line in emb.RecoveryLog) output.WriteLine("note: " + line);
        var report = store.VerifyAsync().GetAwaiter().GetResult();
        foreach (var n in report.Notes) output.WriteLine("note: " + n);
        foreach (var p in report.Problems) output.WriteLine("damage: " + p);
        output.WriteLine($"{store.Description}: {(report.Ok ? "ok" : report.Problems.Count + " problem(s)")}: {report.Streams} stream(s), {report.Batches} batch(es), {report.Events} event(s), {report.Bytes} byte(s) checked");
        return report.Ok ? ExitCodes.Ok : ExitCodes.Findings;
    }
}
