using Replayer.Core.Domain;

namespace Replayer.Replay.Invariants;

/// <summary>
/// I5 (6.x): an anon_vma pinned for migration (<c>folio_get_anon_vma</c> return) must not be
/// freed (<c>kmem_cache_free</c> of it) before it is unpinned (<c>__put_anon_vma</c>/<c>put_anon_vma</c>).
/// The Debian 6.x captures do not probe these functions: the verdict there is "not checkable".
/// </summary>
public sealed class AnonVmaLifetime : IInvariant
{
    public string Id => "anon-vma-lifetime";
    public string Title => "anon_vma not freed while pinned for migration (I5)";
    public bool AppliesTo(Era era) => era.IsModern();

    public IEnumerable<Requirement> Requires(Era era)
    {
        yield return new Requirement(DomainKind.FunctionReturn, "folio_get_anon_vma", "kretprobe folio_get_anon_vma");
        yield return new Requirement(DomainKind.AnonVma, "__put_anon_vma", "kprobe __put_anon_vma");
        yield return new Requirement(DomainKind.Generic, null, "kmem:kmem_cache_free");
    }

    readonly Dictionary<ulong, (int Pins, DomainEvent First)> _pinned = [];

    public void Before(DomainEvent e, ReplayContext ctx)
    {
        switch (e)
        {
            case DataLossEvent:
                _pinned.Clear();
                break;
            case FunctionReturnEvent { Function: "folio_get_anon_vma" } r when r.Ret != 0:
            {
                ulong av = unchecked((ulong)r.Ret);
                _pinned[av] = _pinned.TryGetValue(av, out var c) ? (c.Pins + 1, c.First) : (1, r);
                break;
            }
            case AnonVmaEvent { Op: AnonVmaOp.Unpin } u:
                if (_pinned.TryGetValue(u.AnonVmaPtr, out var p))
                {
                    if (p.Pins > 1) _pinned[u.AnonVmaPtr] = (p.Pins - 1, p.First); else _pinned.Remove(u.AnonVmaPtr);
                }
                break;
            case GenericEvent g when g.Raw.Name.EndsWith("kmem_cache_free", StringComparison.Ordinal):
            {
                if (g.Raw.U64("ptr") is not { } ptr) break;
                ctx.Checked(this);
                if (_pinned.Remove(ptr, out var pin))
                    ctx.Report(this, ReplayContext.MakeFinding(g, $"anon_vma 0x{ptr:x} freed while pinned for migration", [], null, [pin.First, g]));
                break;
            }
        }
    }
}
