namespace Replayer.Gen;

public static class GenMain
{
    public static int Run(string[] args)
    {
        Console.Error.WriteLine("usage: replayer-gen <scenario> [--seed N] [-o FILE]  (scenarios are added by the seed-era generator work)");
        return 2;
    }
}
