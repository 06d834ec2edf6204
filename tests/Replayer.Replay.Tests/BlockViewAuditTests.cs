using MessagePack;
using Replayer.Core;
using Replayer.Replay;
using Replayer.TestKit;

namespace Replayer.Replay.Tests;

/// <summary>
/// Auditing rows of reused blocks gives exactly the audit of the same events as objects: the decoder reads
/// a row in place and keeps nothing of it (a block is refilled after every few rows here, so anything kept
/// by reference would change under the audit).
/// </summary>
public class BlockViewAuditTests
{
    public static IEnumerable<object[]> Inputs() =>
        Captures.Traces().Select(t => new object[] { Captures.PathOf((string)t[0], (string)t[1]) })
            .Concat(Directory.GetDirectories(Repo.Trace("synthetic")).Order(StringComparer.Ordinal)
                .Select(d => new object[] { Path.Combine(d, "trace.txt") }))
            .Concat(Directory.GetDirectories(Repo.Traces, "vmcap-*").Order(StringComparer.Ordinal)
                .Select(d => new object[] { Path.Combine(d, "trace.txt.zst") }));

    static IEnumerable<EventView> AsReusedBlockRows(IEnumerable<TraceEvent> events, int size)
    {
        var block = new EventBlock(2);
        using var it = events.GetEnumerator();
        while (true)
        {
            block.Clear();
            while (block.Count < size && it.MoveNext()) block.Add(it.Current);
            if (block.Count == 0) yield break;
            for (int i = 0; i < block.Count; i++) yield return block[i];
        }
    }

    [Theory]
    [MemberData(nameof(Inputs))]
    public void Audit_of_block_rows_equals_audit_of_objects(string path)
    {
        Assert.True(File.Exists(path), path);
        var options = new AuditOptions { TracePath = path };
        var objects = Replay.Audit.Run(Captures.Read(path), options, out _);
        var rows = Replay.Audit.Run(AsReusedBlockRows(Captures.Read(path), 5), options, out _);
        Assert.True(objects.Events > 0, path + ": no events audited");
        Assert.Equal(MessagePackSerializer.SerializeToJson(objects), MessagePackSerializer.SerializeToJson(rows));
    }
}
