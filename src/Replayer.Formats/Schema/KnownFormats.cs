namespace Replayer.Formats.Schema;

/// <summary>
/// Built-in print formats of the capture vocabulary (kernel-spec §3), used when a capture carries no
/// <c>formats/</c>. Several kernels' variants per event, newest first; the reader picks the one the text fits.
/// </summary>
public static class KnownFormats
{
    const string Print = "ftrace";

    static readonly (string System, string Name, string Fmt, string[] Args)[] Table =
    [
        // migrate (6.12 adds nr_split; older kernels lack the thp counters)
        ("migrate", "mm_migrate_pages", "nr_succeeded=%lu nr_failed=%lu nr_thp_succeeded=%lu nr_thp_failed=%lu nr_thp_split=%lu nr_split=%lu mode=%s reason=%s", []),
        ("migrate", "mm_migrate_pages", "nr_succeeded=%lu nr_failed=%lu nr_thp_succeeded=%lu nr_thp_failed=%lu nr_thp_split=%lu mode=%s reason=%s", []),
        ("migrate", "mm_migrate_pages", "nr_succeeded=%lu nr_failed=%lu mode=%s reason=%s", []),
        ("migrate", "mm_migrate_pages_start", "mode=%s reason=%s", []),
        ("migrate", "set_migration_pte", "addr=%lx, pte=%lx order=%d", []),
        ("migrate", "remove_migration_pte", "addr=%lx, pte=%lx order=%d", []),
        ("thp", "set_migration_pmd", "addr=%lx, pmd=%lx", []),
        ("thp", "remove_migration_pmd", "addr=%lx, pmd=%lx", []),
        // kmem: hex pfns since ~5.17, decimal before (and in 2.6.35)
        ("kmem", "mm_page_alloc", "page=%p pfn=0x%lx order=%d migratetype=%d gfp_flags=%s", []),
        ("kmem", "mm_page_alloc", "page=%p pfn=%lu order=%d migratetype=%d gfp_flags=%s", []),
        ("kmem", "mm_page_free", "page=%p pfn=0x%lx order=%d", []),
        ("kmem", "mm_page_free", "page=%p pfn=%lu order=%d", []),
        ("kmem", "mm_page_free_batched", "page=%p pfn=0x%lx order=0", []),
        ("kmem", "mm_page_free_batched", "page=%p pfn=%lu order=0", []),
        ("kmem", "mm_page_free_direct", "page=%p pfn=%lu order=%d", []),
        ("kmem", "mm_pagevec_free", "page=%p pfn=%lu order=0 cold=%d", []),
        // filemap
        ("filemap", "mm_filemap_add_to_page_cache", "dev %d:%d ino %lx pfn=0x%lx ofs=%lu order=%u", []),
        ("filemap", "mm_filemap_add_to_page_cache", "dev %d:%d ino %lx pfn=0x%lx ofs=%lu", []),
        ("filemap", "mm_filemap_add_to_page_cache", "dev %d:%d ino %lx page=%p pfn=%lu ofs=%lu", []),
        ("filemap", "mm_filemap_delete_from_page_cache", "dev %d:%d ino %lx pfn=0x%lx ofs=%lu order=%u", []),
        ("filemap", "mm_filemap_delete_from_page_cache", "dev %d:%d ino %lx pfn=0x%lx ofs=%lu", []),
        ("filemap", "mm_filemap_delete_from_page_cache", "dev %d:%d ino %lx page=%p pfn=%lu ofs=%lu", []),
        // pagemap
        ("pagemap", "mm_lru_insertion", "folio=%p pfn=0x%lx lru=%d flags=%s%s%s%s%s%s", []),
        ("pagemap", "mm_lru_insertion", "page=%p pfn=0x%lx lru=%d flags=%s%s%s%s%s%s", []),
        ("pagemap", "mm_lru_insertion", "page=%p pfn=%lu lru=%d flags=%s%s%s%s%s%s", []),
        ("pagemap", "mm_lru_activate", "folio=%p pfn=0x%lx", []),
        ("pagemap", "mm_lru_activate", "page=%p pfn=0x%lx", []),
        ("pagemap", "mm_lru_activate", "page=%p pfn=%lu", []),
        // memcg (6.13+)
        ("memcg", "mod_memcg_state", "memcg_id=%llu item=%d val=%d", []),
        ("memcg", "mod_memcg_lruvec_state", "memcg_id=%llu item=%d val=%d", []),
        ("memcg", "count_memcg_events", "memcg_id=%llu item=%d val=%lu", []),
        // ftrace:print (trace_marker writes and trace_printk)
        (Print, "print", "%ps: %s", ["(void *)REC->ip", "REC->buf"]),
    ];

    /// <summary>The built-in schemas, one per event, variants in table order.</summary>
    public static IEnumerable<EventSchema> All() =>
        Table.GroupBy(e => (e.System, e.Name))
             .Select(g => new EventSchema(g.Key.System, g.Key.Name,
                 g.Select(e => PrintTemplate.Parse(e.Fmt, e.Args)).ToList(), SchemaOrigin.BuiltIn));
}
