using Replayer.Core.Domain;

namespace Replayer.Replay.Invariants;

/// <summary>I4 (6.x): <c>try_to_migrate(folio)</c> must never see <c>folio-&gt;mapping == NULL</c>
/// (the <c>!src-&gt;mapping</c> branch must have skipped the unmap).</summary>
public sealed class UnmapNullMapping : IInvariant
{
    public string Id => "unmap-null-mapping";
    public string Title => "no unmap of a mapping==NULL page for migration (I4)";
    public bool AppliesTo(Era era) => era.IsModern();

    public IEnumerable<Requirement> Requires(Era era)
    {
        yield return new Requirement(DomainKind.Unmap, "try_to_migrate", "kprobe try_to_migrate (with mapping=+24(%di))");
    }

    public void Before(DomainEvent e, ReplayContext ctx)
    {
        if (e is not UnmapEvent { ForMigration: true } u) return;
        if (u.Page.Mapping is not { } mapping) { ctx.Skip(this); return; }
        ctx.Checked(this);
        if (mapping != 0) return;
        var st = u.Page.HasPfn ? ctx.State.PageOrNull(u.Page.Pfn)?.ToString() : null;
        ctx.Report(this, ReplayContext.MakeFinding(u, $"try_to_migrate on pfn 0x{u.Page.Pfn:x} whose mapping is NULL",
            u.Page.HasPfn ? [u.Page.Pfn] : [], u.Page.Memcg, [u], st, st));
    }
}
