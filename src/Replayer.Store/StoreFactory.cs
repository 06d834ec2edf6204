using Replayer.Store.Embedded;
using Replayer.Store.Postgres;

namespace Replayer.Store;

/// <summary>Opens the store a user names: <c>--store</c>, else <c>$REPLAYER_STORE</c>, else the default directory.</summary>
public static class StoreFactory
{
    public const string EnvVar = "REPLAYER_STORE";

    /// <summary><c>~/.local/share/replayer/store</c> (XDG_DATA_HOME respected).</summary>
    public static string DefaultDirectory
    {
        get
        {
            var xdg = Environment.GetEnvironmentVariable("XDG_DATA_HOME");
            var home = Environment.GetEnvironmentVariable("HOME") is { Length: > 0 } h ? h : Environment.GetFolderPath(Environment.SpecialFolder.UserProfile, Environment.SpecialFolderOption.DoNotVerify);
            var baseDir = !string.IsNullOrEmpty(xdg) && Path.IsPathRooted(xdg) ? xdg : Path.Combine(home, ".local", "share");
            return Path.Combine(baseDir, "replayer", "store");
        }
    }

    /// <summary>The spec in effect: the argument, else <c>$REPLAYER_STORE</c>, else <see cref="DefaultDirectory"/>.</summary>
    public static string Resolve(string? spec) =>
        !string.IsNullOrWhiteSpace(spec) ? spec
        : Environment.GetEnvironmentVariable(EnvVar) is { Length: > 0 } env ? env
        : DefaultDirectory;

    public static bool IsPostgres(string spec) => PostgresSpec.LooksLikePostgres(spec);

    /// <summary>Opens an embedded store (a directory; created if missing, unless read-only) or a PostgreSQL
    /// store (URL or key=value connection string). Read-only applies to the embedded store: it takes no
    /// writer lock, so it works while another process writes.</summary>
    public static IEventStore Open(string? spec, bool readOnly = false)
    {
        var s = Resolve(spec);
        if (IsPostgres(s)) return PostgresEventStore.Open(s);
        return EmbeddedEventStore.Open(s, new EmbeddedStoreOptions { ReadOnly = readOnly });
    }
}
