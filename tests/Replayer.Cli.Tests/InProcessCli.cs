using Replayer.Cli;

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
