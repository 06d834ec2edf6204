using Replayer.Core;
using Replayer.Store;

namespace Replayer.Store.Tests;

/// <summary>Varied canonical events (every field type and style, probes, flags, odd strings).</summary>
public static class TestEvents
{
    static readonly string[] Names = ["kmem:mm_page_alloc", "rt:file_rmap_add", "migrate:set_migration_pte", "ftrace:print", SyntheticEvents.DataLoss];

    public static TraceEvent[] Make(int count, int seed = 1, long sourceBase = 1)
    {
        var rng = new Random(seed);
        var a = new TraceEvent[count];
        for (int i = 0; i < count; i++)
        {
            int k = rng.Next(Names.Length);
            EventField[] fields = k switch
            {
                0 => [EventField.U64("page", (ulong)rng.NextInt64(), FieldStyle.Pointer), EventField.U64("pfn", (ulong)rng.Next(1 << 20), FieldStyle.Hex), EventField.U64("order", (ulong)rng.Next(4)), EventField.Str("gfp_flags", "GFP_KERNEL|__GFP_ZERO")],
                1 => [EventField.U64("page", (ulong)rng.NextInt64(), FieldStyle.Hex), EventField.S64("mapcount", rng.Next(-1, 3)), EventField.U64("memcg", 0xff446fa3c1bde000, FieldStyle.Hex)],
                2 => [EventField.U64("addr", (ulong)rng.NextInt64(), FieldStyle.BareHex), EventField.U64("order", 0)],
                3 => [EventField.Str("buf", "migwl: iter " + rng.Next(10) + " move_pages -> node1 begin \u00e9\n")],
                _ => [EventField.U64("lost", (ulong)rng.Next(1000))],
            };
            a[i] = new TraceEvent
            {
                Timestamp = 25_000_000_000 + i * 1000L + rng.Next(1000), Cpu = rng.Next(2), Pid = 401 + rng.Next(3), Comm = rng.Next(4) == 0 ? "kworker/0:1H" : "migwl",
                Name = Names[k], Fields = fields, Probe = k == 1 ? "page_add_file_rmap+0x0/0x2f0" : null, Flags = k == 4 ? null : "...1.",
                Source = sourceBase + i,
            };
        }
        return a;
    }

    public static EventBatch Batch(int count, int seed = 1, long sourceBase = 1) => EventBatch.Of(Make(count, seed, sourceBase));

    public static void AssertSame(TraceEvent expected, TraceEvent actual)
    {
        Assert.Equal(expected, actual);
        Assert.Equal(expected.Source, actual.Source);
        Assert.Equal(expected.Fields.Select(f => (f.Kind, f.Text)), actual.Fields.Select(f => (f.Kind, f.Text)));
    }

    public static async Task<List<ResolvedEvent>> ToListAsync(this IAsyncEnumerable<ResolvedEvent> e)
    {
        var l = new List<ResolvedEvent>();
        await foreach (var x in e) l.Add(x);
        return l;
    }

    public static async Task<List<T>> ToListAsync<T>(this IAsyncEnumerable<T> e)
    {
        var l = new List<T>();
        await foreach (var x in e) l.Add(x);
        return l;
    }
}
