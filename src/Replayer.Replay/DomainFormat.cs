using System.Globalization;
using Replayer.Core;
using Replayer.Core.Domain;

namespace Replayer.Replay;

/// <summary>One-line renderings of domain events for evidence and <c>history</c>.</summary>
public static class DomainFormat
{
    static string P(PageRef p) => p.HasPfn ? "0x" + p.Pfn.ToString("x", CultureInfo.InvariantCulture) : "ptr:0x" + p.Ptr.ToString("x", CultureInfo.InvariantCulture);
    static string M(ulong? m) => m is { } v ? "0x" + v.ToString("x", CultureInfo.InvariantCulture) : "?";

    public static string Short(DomainEvent e)
    {
        string body = e switch
        {
            PageAllocEvent a => $"alloc pfn={P(a.Page)} order={a.Order}",
            PageFreeEvent f => $"free{(f.Free == FreeKind.FreeBatched ? "(batched)" : "")} pfn={P(f.Page)} order={f.Order}",
            PageCacheEvent c => $"{(c.Add ? "page-cache add" : "page-cache delete")} pfn={P(c.Page)} dev {c.DevMajor}:{c.DevMinor} ino {c.Ino:x} index {c.Index}",
            MigratePagesStartEvent s => $"migrate_pages start mode={s.Mode} reason={s.Reason}",
            MigratePagesEndEvent m => $"migrate_pages end succeeded={m.Succeeded} failed={m.Failed} thp_succeeded={m.ThpSucceeded} thp_failed={m.ThpFailed} mode={m.Mode} reason={m.Reason}",
            MigrationPteEvent p => $"{(p.Set ? "set" : "remove")}_migration_{(p.Pmd ? "pmd" : "pte")} addr=0x{p.Addr:x} pfn=0x{p.Pfn:x} order={p.Order}",
            MemcgStatEvent s => $"memcg {s.Class} id={s.MemcgId} item={s.Item} val={s.Val}",
            MemcgMigrateEvent m => $"{m.Function} old={P(m.Old)} (memcg {M(m.Old.Memcg)}) new={P(m.New)} (memcg {M(m.New.Memcg)})",
            RmapAddEvent r => $"{r.Function} page={P(r.Page)} mapcount={r.Page.Mapcount?.ToString() ?? "?"} nr={r.Nr} memcg={M(r.Page.Memcg)}",
            RmapRemoveEvent r => $"{r.Function} page={P(r.Page)} mapcount={r.Page.Mapcount?.ToString() ?? "?"} nr={r.Nr} memcg={M(r.Page.Memcg)}",
            LruvecStatEvent l => $"{l.Function} page={P(l.Page)} idx={l.Item} val={l.Val} memcg={M(l.Page.Memcg)}",
            UnmapEvent u => $"{u.Function} page={P(u.Page)} mapping={M(u.Page.Mapping)}",
            MoveToNewFolioEvent m => $"{m.Function} dst={P(m.Dst)} src={P(m.Src)}",
            MigrateMappingEvent m => $"{m.Function} new={P(m.New)} old={P(m.Old)}",
            MigrateFolioMoveEvent m => $"{m.Function} src={P(m.Src)} dst={P(m.Dst)}",
            MigrateFolioUndoSrcEvent u => $"{u.Function} src={P(u.Src)}",
            RemoveMigrationPtesEvent r => $"{r.Function} src={P(r.Src)} dst={P(r.Dst)}",
            MemcgUnchargeEvent u => $"{u.Function} folio={P(u.Folio)} memcg={M(u.Folio.Memcg)}",
            MemcgUnchargeBatchEvent b => $"{b.Function} arg=0x{b.Arg:x}",
            FunctionReturnEvent r => $"{r.Function} returned {r.Ret}",
            PrepareMigrationEvent p => $"{p.Function} page={P(p.Page)} newpage={(p.NewPage is { } n ? P(n) : "-")} anon={p.Anon} pcflags=0x{p.PcFlags:x} memcg=0x{p.Memcg:x}",
            CommitChargeEvent c => $"{c.Function} page={P(c.Page)} memcg=0x{c.Memcg:x} ctype={c.Ctype} pcflags=0x{c.PcFlags:x}",
            EndMigrationEvent em => $"{em.Function} mem=0x{em.Mem:x} old={P(em.OldPage)} new={P(em.NewPage)} oldmapping=0x{em.OldMapping:x}",
            UnchargeCommonEvent u => $"{u.Function} page={P(u.Page)} ctype={u.Ctype} pcflags=0x{u.PcFlags:x} memcg=0x{u.Memcg:x} mapcount={u.Mapcount}",
            UnchargePageEvent u => $"{u.Function} page={P(u.Page)} pcflags=0x{u.PcFlags:x} mapcount={u.Mapcount}",
            UpdateFileMappedEvent u => $"{u.Function} page={P(u.Page)} val={u.Val} pcflags=0x{u.PcFlags:x} memcg=0x{u.Memcg:x}",
            AnonVmaEvent a => $"{a.Function} anon_vma=0x{a.AnonVmaPtr:x}" + (a.Page is { } ap ? " page=" + P(ap) : ""),
            PutbackLruPageEvent p => $"{p.Function} page={P(p.Page)}",
            MoveToNewPageEvent m => $"{m.Function} newpage={P(m.NewPage)} page={P(m.Page)}",
            MarkerEvent m => "marker: " + m.Text,
            DataLossEvent d => $"DATA LOSS ({d.Lost} events)",
            GenericEvent g => g.Raw.ToString(),
            _ => e.ToString(),
        };
        return $"{TraceEvent.FormatTimestamp(e.Timestamp)} [{e.Cpu:D3}] {e.Comm}-{e.Pid} line {e.Source}: {body}";
    }
}
