using Replayer.Core;
using Replayer.Core.Domain;

namespace Replayer.Replay;

public sealed class AuditOptions
{
    /// <summary>Force the era instead of detecting it.</summary>
    public Era? Era { get; init; }
    /// <summary>Path of the trace (to find <c>kprobe_events.txt</c>, <c>uname.txt</c>, <c>formats/</c> beside it).</summary>
    public string? TracePath { get; init; }
    public CaptureHeader? Header { get; init; }
    /// <summary>The capture context stored with an ingested capture: when set it is used instead of the files
    /// beside <see cref="TracePath"/> (kprobe definitions, uname, formats), so the disk plays no part.</summary>
    public CaptureFiles? Context { get; init; }
    /// <summary>Events buffered to detect the era from the event set when no release is known.</summary>
    public int DetectionWindow { get; init; } = 50_000;
    public Action<DomainEvent, ReplayState>? Applied { get; init; }
    /// <summary>Invariants to run (default: all found by reflection).</summary>
    public IEnumerable<IInvariant>? Invariants { get; init; }
    /// <summary>Read and decode on a second thread while the caller's thread replays. Only for event sources without
    /// side effects that <see cref="Applied"/> observes: the source runs ahead of the replay, on another thread.</summary>
    public bool DecodeAhead { get; init; }
}

/// <summary>Decode → detect era → replay → audit.</summary>
public static class Audit
{
    public static ProbeResolver ResolverFor(string? tracePath) => tracePath == null ? new ProbeResolver() : ProbeResolver.ForTrace(tracePath);

    /// <summary>Short names of the events the capture declares (its <c>formats/</c> folder).</summary>
    public static IEnumerable<string> DeclaredEvents(string? tracePath)
    {
        if (tracePath == null) yield break;
        var dir = Path.GetDirectoryName(Path.GetFullPath(tracePath));
        var formats = dir == null ? null : Path.Combine(dir, "formats");
        if (formats == null || !Directory.Exists(formats)) yield break;
        foreach (var sys in Directory.GetDirectories(formats))
            foreach (var ev in Directory.GetDirectories(sys))
                yield return Path.GetFileName(sys) + ":" + Path.GetFileName(ev);
    }

    public static IEnumerable<DomainEvent> Decode(IEnumerable<TraceEvent> events, DomainDecoder decoder) =>
        Decode(events.Select(e => new EventView(e)), decoder);

    /// <summary>Decodes views (e.g. rows of reused blocks): each is decoded before the next is asked for.</summary>
    public static IEnumerable<DomainEvent> Decode(IEnumerable<EventView> events, DomainDecoder decoder)
    {
        foreach (var e in events) yield return decoder.Decode(e);
    }

    public static AuditResult Run(IEnumerable<TraceEvent> events, AuditOptions? options = null) =>
        Run(events, options ?? new AuditOptions(), out _);

    public static AuditResult Run(IEnumerable<TraceEvent> events, AuditOptions options, out ReplayEngine engine) =>
        Run(events.Select(e => new EventView(e)), options, out engine);

    /// <summary>The audit of events given as views (see <see cref="EventBlockReading.Views"/>): the same
    /// result as <see cref="Run(IEnumerable{TraceEvent}, AuditOptions, out ReplayEngine)"/> on the same events.</summary>
    public static AuditResult Run(IEnumerable<EventView> events, AuditOptions options, out ReplayEngine engine)
    {
        var decoder = new DomainDecoder(options.Context?.Resolver() ?? ResolverFor(options.TracePath));
        return RunDecoded(DecodeAhead(Decode(events, decoder), options.DecodeAhead), options, decoder.Probes, out engine);
    }

    /// <summary>
    /// Reading and decoding on one thread, replay on the caller's: a two-stage pipeline with a bounded queue of
    /// decoded batches, in order. The source (a reader, a store enumeration, views of its blocks) is only ever
    /// used by the decoding thread, and that thread has stopped before this enumeration ends, so the caller may
    /// dispose the source right after. An exception of the source or the decoder is rethrown here as it was.
    /// </summary>
    static IEnumerable<DomainEvent> DecodeAhead(IEnumerable<DomainEvent> decoded, bool enabled)
    {
        if (!enabled || Environment.ProcessorCount < 2)
        {
            foreach (var d in decoded) yield return d;
            yield break;
        }
        const int BatchSize = 2048;
        using var queue = new System.Collections.Concurrent.BlockingCollection<DomainEvent[]>(boundedCapacity: 16);
        using var stop = new CancellationTokenSource();
        System.Runtime.ExceptionServices.ExceptionDispatchInfo? failure = null;
        var producer = Task.Factory.StartNew(() =>
        {
            try
            {
                var batch = new DomainEvent[BatchSize];
                int n = 0;
                foreach (var d in decoded)
                {
                    batch[n++] = d;
                    if (n == BatchSize)
                    {
                        queue.Add(batch, stop.Token);
                        batch = new DomainEvent[BatchSize];
                        n = 0;
                    }
                }
                if (n > 0) queue.Add(batch[..n], stop.Token);
            }
            catch (OperationCanceledException) when (stop.IsCancellationRequested) { }
            catch (Exception e) { failure = System.Runtime.ExceptionServices.ExceptionDispatchInfo.Capture(e); }
            finally { queue.CompleteAdding(); }
        }, CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);
        try
        {
            foreach (var batch in queue.GetConsumingEnumerable())
                foreach (var d in batch) yield return d;
            producer.Wait();
            failure?.Throw();
        }
        finally
        {
            // the consumer stopped early (an exception, or it had enough): stop the producer and wait for it,
            // so that nobody touches the source once we return
            stop.Cancel();
            try { producer.Wait(); } catch (AggregateException) { }
        }
    }

    public static AuditResult RunDecoded(IEnumerable<DomainEvent> events, AuditOptions options, ProbeResolver? probes, out ReplayEngine engine)
    {
        string? release = options.Context != null ? (options.Header?.KernelRelease is { Length: > 0 } hr ? hr : options.Context.Uname)
            : options.TracePath != null ? Eras.ReleaseFor(options.TracePath, options.Header) : options.Header?.KernelRelease;
        Era era = options.Era ?? Eras.FromRelease(release);
        using var it = events.GetEnumerator();
        var buffered = new List<DomainEvent>();
        bool more = true;
        if (era == Era.Unknown)
        {
            while (buffered.Count < options.DetectionWindow && (more = it.MoveNext())) buffered.Add(it.Current);
            era = Eras.FromEvents(buffered);
            if (era == Era.Unknown) era = Era.Linux61;
        }
        var declaredFunctions = probes?.Definitions.Values.Select(d => d.Function) ?? [];
        engine = new ReplayEngine(era, null, options.Invariants, declaredFunctions, options.Context?.DeclaredEvents() ?? DeclaredEvents(options.TracePath)) { Applied = options.Applied };
        foreach (var e in buffered) engine.Feed(e);
        if (more) while (it.MoveNext()) engine.Feed(it.Current);
        return engine.Finish(options.TracePath ?? "", options.Era != null, release);
    }
}
