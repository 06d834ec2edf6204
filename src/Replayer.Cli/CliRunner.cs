using Replayer.Core;

namespace Replayer.Cli;

/// <summary>Exit codes and the one-line error policy shared by every command.</summary>
public static class ExitCodes
{
    public const int Ok = 0;
    /// <summary><c>check</c>: the audit has findings.</summary>
    public const int Findings = 1;
    /// <summary>Bad input or bad usage: one line on stderr naming where and what.</summary>
    public const int InputError = 2;
    /// <summary>An internal error (a bug): still one line, never a stack trace unless REPLAYER_DEBUG=1.</summary>
    public const int Internal = 3;
}

public static class CliRunner
{
    public static int Run(Func<int> body)
    {
        try
        {
            return body();
        }
        catch (Exception e) when (Unwrap(e) is TraceInputException tie)
        {
            Console.Error.WriteLine("replayer: " + tie.Message);
            return ExitCodes.InputError;
        }
        catch (Exception e) when (Unwrap(e) is UsageException ue)
        {
            Console.Error.WriteLine("replayer: " + ue.Message);
            return ExitCodes.InputError;
        }
        catch (Exception e) when (Unwrap(e) is IOException or UnauthorizedAccessException)
        {
            Console.Error.WriteLine("replayer: " + OneLine(Unwrap(e).Message));
            return ExitCodes.InputError;
        }
        catch (Exception e)
        {
            if (Environment.GetEnvironmentVariable("REPLAYER_DEBUG") == "1")
                Console.Error.WriteLine(e.ToString());
            else
                Console.Error.WriteLine($"replayer: internal error: {Unwrap(e).GetType().Name}: {OneLine(Unwrap(e).Message)} (set REPLAYER_DEBUG=1 for details)");
            return ExitCodes.Internal;
        }
    }

    static Exception Unwrap(Exception e)
    {
        while (e is AggregateException { InnerException: { } inner }) e = inner;
        while (e is System.Reflection.TargetInvocationException { InnerException: { } inner2 }) e = inner2;
        return e;
    }

    static string OneLine(string s) => s.Replace('\n', ' ').Replace('\r', ' ');
}

/// <summary>Wrong use of a command (missing file, unknown format name): exit 2, one line.</summary>
public sealed class UsageException(string message) : Exception(message);
