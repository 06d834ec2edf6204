using MessagePack;

namespace Replayer.Replay;

public enum Severity : byte { Info = 0, Warning = 1, Error = 2 }

/// <summary>One event cited as evidence: where it is in the input and what it said.</summary>
[MessagePackObject]
public sealed record EvidenceEvent
{
    /// <summary>Line number (text) or byte offset (binary) of the event in its source.</summary>
    [Key(0)] public long Source { get; init; }
    [Key(1)] public long Timestamp { get; init; }
    [Key(2)] public int Cpu { get; init; }
    [Key(3)] public int Pid { get; init; }
    [Key(4)] public string Name { get; init; } = "";
    /// <summary>One-line rendering of the domain event.</summary>
    [Key(5)] public string Text { get; init; } = "";
}

/// <summary>A violation of an invariant, with its evidence.</summary>
[MessagePackObject]
public sealed record Finding
{
    [Key(0)] public string InvariantId { get; init; } = "";
    [Key(1)] public Severity Severity { get; init; } = Severity.Error;
    [Key(2)] public long Timestamp { get; init; }
    [Key(3)] public int Cpu { get; init; }
    [Key(4)] public int Pid { get; init; }
    [Key(5)] public ulong[] Pfns { get; init; } = [];
    /// <summary>memcg_data pointer (6.x) or memcg id (seed era), when one is involved.</summary>
    [Key(6)] public ulong? Memcg { get; init; }
    /// <summary>One line.</summary>
    [Key(7)] public string Explanation { get; init; } = "";
    [Key(8)] public EvidenceEvent[] Evidence { get; init; } = [];
    [Key(9)] public string? StateBefore { get; init; }
    [Key(10)] public string? StateAfter { get; init; }
}

public enum VerdictStatus : byte { Pass = 0, Fail = 1, NotCheckable = 2, NotApplicable = 3 }

[MessagePackObject]
public sealed record InvariantVerdict
{
    [Key(0)] public string InvariantId { get; init; } = "";
    [Key(1)] public VerdictStatus Status { get; init; }
    /// <summary>Why not checkable / not applicable, or a note on partial coverage (pages skipped as unknown).</summary>
    [Key(2)] public string? Reason { get; init; }
    [Key(3)] public int Findings { get; init; }
    /// <summary>How many times the check ran (pages, windows, migrations…).</summary>
    [Key(4)] public long Checked { get; init; }
    /// <summary>How many times it was skipped because state was unknown.</summary>
    [Key(5)] public long SkippedUnknown { get; init; }
}

/// <summary>FILE_MAPPED of one memcg over the capture, in pages.</summary>
[MessagePackObject]
public sealed record MemcgSummary
{
    [Key(0)] public ulong Memcg { get; init; }
    /// <summary>Net change as the counter events report it.</summary>
    [Key(1)] public long CounterDelta { get; init; }
    /// <summary>Net change as the page states imply it (mapcount 0↔1 transitions of pages charged to it).</summary>
    [Key(2)] public long ImpliedDelta { get; init; }
    /// <summary>From <c>memory.stat.*.{before,after}</c> beside the capture (bytes/4096), when matched.</summary>
    [Key(3)] public long? GroundTruthDelta { get; init; }
    [Key(4)] public string? Cgroup { get; init; }
    /// <summary>True when data loss makes the deltas unreliable.</summary>
    [Key(5)] public bool Tainted { get; init; }
}

/// <summary>The result of one audit run: serializable (MessagePack) so it can be appended to the
/// store as stream <c>audit-&lt;capture id&gt;</c>.</summary>
[MessagePackObject]
public sealed record AuditResult
{
    [Key(0)] public string Source { get; init; } = "";
    [Key(1)] public Era Era { get; init; }
    [Key(2)] public bool EraForced { get; init; }
    [Key(3)] public long Events { get; init; }
    [Key(4)] public long DataLossEvents { get; init; }
    [Key(5)] public Finding[] Findings { get; init; } = [];
    [Key(6)] public InvariantVerdict[] Verdicts { get; init; } = [];
    [Key(7)] public MemcgSummary[] Memcgs { get; init; } = [];
    [Key(8)] public string? KernelRelease { get; init; }
}
