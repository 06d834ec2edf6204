using CsCheck;
using Replayer.Core;
using Replayer.Core.Domain;

namespace Replayer.Core.Tests;

/// <summary>Captures nobody has seen: whatever fields an event of the vocabulary carries, decoding never
/// throws and never drops it (a typed event or a GenericEvent wrapping it, same header).</summary>
public class DecoderRobustnessTests
{
    static readonly string[] Names =
    [
        "kmem:mm_page_alloc", "kmem:mm_page_free", "kmem:mm_page_free_batched", "kmem:mm_page_free_direct", "kmem:mm_pagevec_free",
        "filemap:mm_filemap_add_to_page_cache", "filemap:mm_filemap_delete_from_page_cache", "migrate:mm_migrate_pages_start",
        "migrate:mm_migrate_pages", "migrate:set_migration_pte", "migrate:remove_migration_pte", "thp:set_migration_pmd",
        "memcg:mod_memcg_lruvec_state", "memcg:count_memcg_events", "ftrace:print", "replayer:data_loss", "pagemap:mm_lru_insertion",
        "rt:file_rmap_add", "rt:lruvec_stat", "rt:memcg_migrate", "rt:move_to_new_folio_ret", "rt:mem_cgroup_prepare_migration",
        "rt:mem_cgroup_end_migration", "rt:anon_vma_free", "rt:__put_anon_vma", "rt:try_to_unmap", "rt:unknown_probe",
    ];
    static readonly string[] FieldNames =
    [
        "pfn", "page", "order", "dev", "dev_major", "dev_minor", "ino", "ofs", "index", "addr", "pte", "pmd", "nr_succeeded", "nr_failed",
        "memcg_id", "item", "val", "buf", "lost", "vm", "folio", "nr", "mapcount", "memcg", "mapping", "idx", "ptr", "old", "new",
        "dst", "src", "newf", "oldf", "ret", "rc", "newpage", "oldpage", "anon_vma", "ttu_flags", "flags", "mode", "reason",
    ];
    static readonly string[] Probes = ["page_add_file_rmap+0x0/0x2f0", "ffffffff998e79d0", "a+0x1/0x2 <- b", " <- ", "+", "(", "()", "x <- y+0x0/0x1", ""];

    static readonly Gen<EventField> Field =
        from n in Gen.Int[0, FieldNames.Length - 1]
        from k in Gen.Int[0, 2]
        from v in Gen.ULong
        from t in Gen.String[Gen.Char.AlphaNumeric, 0, 8]
        select k switch
        {
            0 => EventField.U64(FieldNames[n], v, FieldStyle.Hex),
            1 => EventField.S64(FieldNames[n], (long)v),
            _ => EventField.Str(FieldNames[n], n % 3 == 0 ? t + ":" + t : t),
        };

    static readonly Gen<TraceEvent> Event =
        from name in Gen.Int[0, Names.Length - 1]
        from fields in Field.Array[0, 12]
        from probe in Gen.Int[-1, Probes.Length - 1]
        from pid in Gen.Int[0, 1000]
        from src in Gen.Long[1, 1_000_000]
        select new TraceEvent { Name = Names[name], Fields = fields, Probe = probe < 0 ? null : Probes[probe], Pid = pid, Source = src, Timestamp = src * 10 };

    [Fact]
    public void Decoding_never_throws_and_keeps_every_event()
    {
        var resolver = new ProbeResolver();
        resolver.AddDefinitions("p:rt/file_rmap_add page_add_file_rmap\np:rt/lruvec_stat __mod_lruvec_page_state\np:rt/memcg_migrate mem_cgroup_migrate\nr:rt/move_to_new_folio_ret move_to_new_folio ret=$retval");
        Event.Array[1, 40].Sample(events =>
        {
            var d = new DomainDecoder(resolver);
            foreach (var e in events)
            {
                var x = d.Decode(e);
                Assert.Equal((e.Timestamp, e.Pid, e.Source, e.Name), (x.Timestamp, x.Pid, x.Source, x.Name));
                if (x is GenericEvent g) Assert.Same(e, g.Raw);
            }
        }, seed: new PCG(3, 99).ToString(), iter: 400, threads: 1);
    }
}
