using Replayer.Cli;
using Replayer.Core;
using Replayer.Formats;

namespace Replayer.Cli.Tests;

/// <summary>Runs <see cref="Program.Main"/> in-process with the console captured, under a timeout.
/// Tests that use it belong to the "console" collection (the console is process-wide).</summary>
public static class InProcessCli
{
    public static (int Code, string Out, string Err) Run(params string[] args)
    {
        var o = new StringWriter();
        var e = new StringWriter();
        var (oldOut, oldErr) = (Console.Out, Console.Error);
        Console.SetOut(o);
        Console.SetError(e);
        try
        {
            var task = Task.Run(() => Program.Main(args));
            if (!task.Wait(TimeSpan.FromMinutes(2))) Assert.Fail("replayer " + string.Join(' ', args) + " hung");
            return (task.Result, o.ToString(), e.ToString());
        }
        finally
        {
            Console.SetOut(oldOut);
            Console.SetError(oldErr);
        }
    }
}

/// <summary>Reads a trace file the way the CLI does (strictly) into a list, for comparing outputs.</summary>
public static class TraceFiles
{
    public static List<TraceEvent> ReadAll(string path)
    {
        using var r = TraceOpener.Open(path, new TraceOpenOptions { Strict = true });
        var l = new List<TraceEvent>();
        while (r.Read() is { } ev) l.Add(ev);
        return l;
    }

    /// <summary>How many events a strict read of the file gives (without keeping them).</summary>
    public static long Count(string path)
    {
        using var r = TraceOpener.Open(path, new TraceOpenOptions { Strict = true });
        long n = 0;
        while (r.Read() != null) n++;
        return n;
    }
}
