namespace Replayer.Gen.Sim;

/// <summary>SplitMix64: a tiny PRNG whose output depends only on the seed (never on the runtime),
/// so a fixed seed gives byte-identical traces on every machine and .NET version.</summary>
public sealed class Rng
{
    ulong _s;
    public Rng(ulong seed) => _s = seed ^ 0x5DEECE66DUL;

    public ulong Next()
    {
        ulong z = _s += 0x9E3779B97F4A7C15UL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }

    /// <summary>Uniform in [0, n).</summary>
    public int Int(int n) => n <= 1 ? 0 : (int)(Next() % (ulong)n);

    /// <summary>Uniform in [lo, hi] (inclusive).</summary>
    public int Range(int lo, int hi) => lo + Int(hi - lo + 1);

    public bool Chance(double p) => (Next() >> 11) * (1.0 / (1UL << 53)) < p;

    public T Pick<T>(IReadOnlyList<T> xs) => xs[Int(xs.Count)];

    public void Shuffle<T>(IList<T> xs)
    {
        for (int i = xs.Count - 1; i > 0; i--)
        {
            int j = Int(i + 1);
            (xs[i], xs[j]) = (xs[j], xs[i]);
        }
    }
}
