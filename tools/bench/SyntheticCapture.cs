using Replayer.Core;

namespace Replayer.Bench;

/// <summary>
/// Synthesizes a realistic 6.1 migration capture (the per-page event cycle of traces/6.1-ext4-large:
/// alloc, try_to_migrate, set/remove_migration_pte, rmap add/remove, lruvec_stat, move_to_new_folio,
/// migrate_mapping, memcg_migrate, uncharge, free) for store benchmarks when no text reader is available.
/// </summary>
public static class SyntheticCapture
{
    static EventField H(string n, ulong v) => EventField.U64(n, v, FieldStyle.Hex);
    static EventField P(string n, ulong v) => EventField.U64(n, v, FieldStyle.Pointer);
    static EventField B(string n, ulong v) => EventField.U64(n, v, FieldStyle.BareHex);
    static EventField D(string n, ulong v) => EventField.U64(n, v);
    static EventField S(string n, long v) => EventField.S64(n, v);

    public static TraceEvent[] Generate(int count, int seed = 42)
    {
        var rng = new Random(seed);
        var list = new List<TraceEvent>(count + 32);
        const ulong vm = 0xffb6b5d840000000, memcg = 0xff446fa3c1bde000, mapping = 0xff446fa3c24c19e8;
        const ulong vma1 = 0xff446fa3c2befab0, vma2 = 0xff446fa3c2befd10;
        long ts = 25_000_000_000;
        ulong line = 13, page = 0;
        ulong oldPfn = 0x31e2, newPfn = 0x10ffb7;
        while (list.Count < count)
        {
            ulong oldp = vm + oldPfn * 64, newp = vm + newPfn * 64, idx = page & 0xffff;
            ulong addr = 0x7f6d36272000 + (page << 12);
            int cpu = (int)(page / 4096 % 2);
            TraceEvent E(string name, string? probe, string flags, params EventField[] f)
            {
                ts += 1000 + rng.Next(4000);
                return new TraceEvent { Timestamp = ts, Cpu = cpu, Pid = 401, Comm = "migwl", Name = name, Probe = probe, Flags = flags, Fields = f, Source = (long)line++ };
            }
            EventField[] Folio(ulong flags, ulong map, int mapcount, int refcount, ulong cg) =>
                [H("vm", vm), H("flags", flags), H("mapping", map), H("index", idx), S("mapcount", mapcount), S("refcount", refcount), H("memcg", cg)];
            list.Add(E("kmem:mm_page_alloc", null, ".....", P("page", newp), H("pfn", newPfn), D("order", 0), D("migratetype", 1), EventField.Str("gfp_flags", "GFP_HIGHUSER_MOVABLE|__GFP_COMP|__GFP_THISNODE")));
            list.Add(E("rt:try_to_migrate", "try_to_migrate+0x0/0x110", ".....", [H("folio", oldp), H("ttu_flags", 0), .. Folio(0xfffffc0020005, mapping, 1, 4, memcg)]));
            foreach (var vma in new[] { vma1, vma2 })
            {
                list.Add(E("migrate:set_migration_pte", null, "...1.", B("addr", addr), B("pte", 0xdffdffffff9c3800 - (page << 9)), D("order", 0)));
                list.Add(E("rt:rmap_remove", "page_remove_rmap+0x0/0x520", "...1.", [H("page", oldp), H("vma", vma), D("compound", 0), .. Folio(0xfffffc0020005, mapping, vma == vma1 ? 1 : 0, 4, memcg)]));
            }
            list.Add(E("rt:lruvec_stat", "__mod_lruvec_page_state+0x0/0x140", "...1.", [H("ptr", oldp), D("idx", 18), S("val", -1), .. Folio(0xfffffc0020005, mapping, -1, 3, memcg)]));
            list.Add(E("rt:move_to_new_folio", "move_to_new_folio+0x0/0x140", ".....", H("dst", newp), H("src", oldp), D("mode", 2)));
            list.Add(E("rt:migrate_mapping", "folio_migrate_mapping+0x0/0x560", ".....", H("mapping", mapping), H("newf", newp), H("oldf", oldp), D("extra", 0), H("oflags", 0xfffffc0020005), H("omapping", mapping), H("oindex", idx), S("omapcount", -1), S("orefcount", 2), H("omemcg", memcg)));
            list.Add(E("rt:migrate_mapping_ret", "migrate_folio_extra+0x24/0x70 <- folio_migrate_mapping", ".....", S("ret", 0)));
            list.Add(E("rt:memcg_migrate", "mem_cgroup_migrate+0x0/0x160", ".....", [H("old", oldp), H("new", newp), H("vm", vm), H("po", 0xff446fa3c0000000), H("flags", 0xfffffc0020005), H("mapping", mapping), H("index", idx), S("mapcount", -1), S("refcount", 1), H("memcg", memcg), H("nflags", 0x57ffffc0020005), H("nmapping", mapping), H("nindex", idx), S("nmapcount", -1), S("nrefcount", 2), H("nmemcg", 0)]));
            list.Add(E("rt:move_to_new_folio_ret", "migrate_pages_batch+0x462/0xc70 <- move_to_new_folio", ".....", S("ret", 0)));
            list.Add(E("pagemap:mm_lru_insertion", null, "d..2.", B("folio", newp), H("pfn", newPfn), D("lru", 2), EventField.Str("flags", " f  d ")));
            list.Add(E("rt:__mem_cgroup_uncharge_list", "__mem_cgroup_uncharge_list+0x0/0xa0", "...1.", H("arg", 0xff6a378940173950)));
            foreach (var vma in new[] { vma1, vma2 })
            {
                list.Add(E("rt:file_rmap_add", "page_add_file_rmap+0x0/0x2f0", "...1.", [H("page", newp), H("vma", vma), D("compound", 0), .. Folio(0x57ffffc0020015, mapping, vma == vma1 ? -1 : 0, 3, memcg)]));
                if (vma == vma1)
                    list.Add(E("rt:lruvec_stat", "__mod_lruvec_page_state+0x0/0x140", "...1.", [H("ptr", newp), D("idx", 18), S("val", 1), .. Folio(0x57ffffc0020015, mapping, 0, 3, memcg)]));
                list.Add(E("migrate:remove_migration_pte", null, "...1.", B("addr", addr), B("pte", 0x800000010ffb7025 + (page << 12)), D("order", 0)));
            }
            list.Add(E("rt:memcg_uncharge", "__mem_cgroup_uncharge+0x0/0xc0", ".....", [H("folio", oldp), .. Folio(0xfffffc0020004, 0, -1, 0, memcg)]));
            list.Add(E("kmem:mm_page_free", null, ".....", P("page", oldp), H("pfn", oldPfn), D("order", 0)));
            page++; oldPfn++; newPfn++;
            if (rng.Next(64) == 0) { oldPfn += (ulong)rng.Next(1, 100); newPfn += (ulong)rng.Next(1, 100); }
        }
        return list.GetRange(0, count).ToArray();
    }
}
