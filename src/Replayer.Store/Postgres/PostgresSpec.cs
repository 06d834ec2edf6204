using System.Text;
using Npgsql;

namespace Replayer.Store.Postgres;

/// <summary>
/// Parses how a user names a PostgreSQL store: a URL <c>postgres://user:pass@host:port/db?schema=s</c>
/// (<c>postgresql://</c> too; <c>?host=/run/postgresql</c> for a unix socket), an Npgsql connection string
/// (<c>Host=…;Username=…</c>) or a libpq key=value string (<c>host=… port=… user=… dbname=…</c>).
/// A password not in the spec comes from <c>PGPASSWORD</c> or <c>~/.pgpass</c> (Npgsql reads both).
/// The password never appears in <see cref="Redacted"/> or in messages built with <see cref="Redact"/>.
/// </summary>
public sealed class PostgresSpec
{
    public required string ConnectionString { get; init; }
    public required string Redacted { get; init; }
    public required string Schema { get; init; }
    public string? Password { get; init; }

    public const string DefaultSchema = "replayer";

    public static bool LooksLikePostgres(string spec)
    {
        var s = spec.TrimStart();
        return s.StartsWith("postgres://", StringComparison.OrdinalIgnoreCase) || s.StartsWith("postgresql://", StringComparison.OrdinalIgnoreCase)
            || (s.Contains('=') && !s.Contains('/') && !s.Contains('\\')) // key=value (paths have slashes; a socket dir goes in host=… which has one)
            || System.Text.RegularExpressions.Regex.IsMatch(s, @"^\s*(host|hostaddr|port|dbname|user|username|database|server)\s*=", System.Text.RegularExpressions.RegexOptions.IgnoreCase);
    }

    public static PostgresSpec Parse(string spec)
    {
        ArgumentNullException.ThrowIfNull(spec);
        var b = new NpgsqlConnectionStringBuilder();
        string schema = DefaultSchema;
        var s = spec.Trim();
        if (s.StartsWith("postgres://", StringComparison.OrdinalIgnoreCase) || s.StartsWith("postgresql://", StringComparison.OrdinalIgnoreCase))
        {
            int schemeEnd = s.IndexOf("://", StringComparison.Ordinal) + 3;
            var rest = s[schemeEnd..];
            string? query = null;
            int q = rest.IndexOf('?');
            if (q >= 0) { query = rest[(q + 1)..]; rest = rest[..q]; }
            string path = "";
            int slash = rest.IndexOf('/');
            if (slash >= 0) { path = rest[(slash + 1)..]; rest = rest[..slash]; }
            int at = rest.LastIndexOf('@');
            if (at >= 0)
            {
                var userinfo = rest[..at];
                rest = rest[(at + 1)..];
                int colon = userinfo.IndexOf(':');
                if (colon >= 0)
                {
                    b.Username = Uri.UnescapeDataString(userinfo[..colon]);
                    b.Password = Uri.UnescapeDataString(userinfo[(colon + 1)..]);
                }
                else b.Username = Uri.UnescapeDataString(userinfo);
            }
            if (rest.Length > 0)
            {
                string host = rest;
                if (host.StartsWith('['))
                {
                    int close = host.IndexOf(']');
                    if (close < 0) throw new ArgumentException("bad IPv6 host in PostgreSQL URL");
                    var h6 = host[1..close];
                    var after = host[(close + 1)..];
                    b.Host = h6;
                    if (after.StartsWith(':')) b.Port = ParsePort(after[1..]);
                }
                else
                {
                    int colon = host.LastIndexOf(':');
                    if (colon >= 0) { b.Port = ParsePort(host[(colon + 1)..]); host = host[..colon]; }
                    b.Host = Uri.UnescapeDataString(host);
                }
            }
            if (path.Length > 0) b.Database = Uri.UnescapeDataString(path);
            if (query != null)
                foreach (var kv in query.Split('&', StringSplitOptions.RemoveEmptyEntries))
                {
                    int eq = kv.IndexOf('=');
                    var k = Uri.UnescapeDataString(eq < 0 ? kv : kv[..eq]);
                    var v = eq < 0 ? "" : Uri.UnescapeDataString(kv[(eq + 1)..]);
                    ApplyLibpqKey(b, k, v, ref schema);
                }
        }
        else if (s.Contains(';') || !s.Contains(' '))
        {
            // Npgsql style; also handles a single key=value.
            foreach (var part in s.Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
            {
                int eq = part.IndexOf('=');
                if (eq < 0) throw new ArgumentException($"connection string part without '=': {Excerpt(part, b.Password)}");
                var k = part[..eq].Trim();
                var v = part[(eq + 1)..].Trim();
                if (k.Equals("schema", StringComparison.OrdinalIgnoreCase)) { schema = v; continue; }
                if (IsLibpqKey(k)) ApplyLibpqKey(b, k, v, ref schema);
                else
                {
                    try { b[k] = v; }
                    catch (ArgumentException) { throw new ArgumentException($"unknown connection string keyword '{k}'"); }
                }
            }
        }
        else
        {
            foreach (var (k, v) in ParseLibpq(s)) ApplyLibpqKey(b, k, v, ref schema);
        }

        if (string.IsNullOrEmpty(b.Password) && Environment.GetEnvironmentVariable("PGPASSWORD") is { Length: > 0 } envPw)
            b.Password = envPw;
        if (string.IsNullOrEmpty(b.Host)) b.Host = Environment.GetEnvironmentVariable("PGHOST") is { Length: > 0 } h ? h : "localhost";
        if (string.IsNullOrEmpty(b.Username) && Environment.GetEnvironmentVariable("PGUSER") is { Length: > 0 } u) b.Username = u;
        if (string.IsNullOrEmpty(b.Database) && Environment.GetEnvironmentVariable("PGDATABASE") is { Length: > 0 } d) b.Database = d;
        if (!System.Text.RegularExpressions.Regex.IsMatch(schema, "^[a-z_][a-z0-9_]{0,62}$"))
            throw new ArgumentException($"schema name '{schema}' must be lower-case letters, digits and '_'");
        b.Enlist = false;
        var password = string.IsNullOrEmpty(b.Password) ? null : b.Password;
        return new PostgresSpec
        {
            ConnectionString = b.ConnectionString,
            Password = password,
            Schema = schema,
            Redacted = $"postgres://{(string.IsNullOrEmpty(b.Username) ? "" : Uri.EscapeDataString(b.Username) + (password != null ? ":***" : "") + "@")}{b.Host}:{b.Port}/{b.Database}{(schema != DefaultSchema ? "?schema=" + schema : "")}",
        };
    }

    static int ParsePort(string p) =>
        int.TryParse(p, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var n) && n is > 0 and < 65536
            ? n : throw new ArgumentException($"bad port '{p}' in PostgreSQL URL");

    static bool IsLibpqKey(string k) => k.ToLowerInvariant() is "host" or "hostaddr" or "port" or "dbname" or "user" or "password" or "sslmode" or "application_name" or "connect_timeout" or "schema";

    static void ApplyLibpqKey(NpgsqlConnectionStringBuilder b, string k, string v, ref string schema)
    {
        switch (k.ToLowerInvariant())
        {
            case "host": case "hostaddr": b.Host = v; break;
            case "port": b.Port = ParsePort(v); break;
            case "dbname": case "database": b.Database = v; break;
            case "user": case "username": b.Username = v; break;
            case "password": b.Password = v; break;
            case "sslmode": b.SslMode = Enum.Parse<SslMode>(v.Replace("-", ""), ignoreCase: true); break;
            case "application_name": b.ApplicationName = v; break;
            case "connect_timeout": b.Timeout = int.Parse(v, System.Globalization.CultureInfo.InvariantCulture); break;
            case "schema": schema = v; break;
            default:
                try { b[k] = v; }
                catch (ArgumentException) { throw new ArgumentException($"unknown connection parameter '{k}'"); }
                break;
        }
    }

    /// <summary>libpq <c>key=value key='quoted value'</c>.</summary>
    static IEnumerable<(string, string)> ParseLibpq(string s)
    {
        int i = 0;
        while (i < s.Length)
        {
            while (i < s.Length && char.IsWhiteSpace(s[i])) i++;
            if (i >= s.Length) yield break;
            int eq = s.IndexOf('=', i);
            if (eq < 0) throw new ArgumentException("libpq connection string part without '='");
            var key = s[i..eq].Trim();
            i = eq + 1;
            while (i < s.Length && char.IsWhiteSpace(s[i])) i++;
            var sb = new StringBuilder();
            if (i < s.Length && s[i] == '\'')
            {
                i++;
                while (i < s.Length && s[i] != '\'')
                {
                    if (s[i] == '\\' && i + 1 < s.Length) i++;
                    sb.Append(s[i++]);
                }
                i++;
            }
            else
                while (i < s.Length && !char.IsWhiteSpace(s[i])) sb.Append(s[i++]);
            yield return (key, sb.ToString());
        }
    }

    static string Excerpt(string part, string? password) => password is { Length: > 0 } ? part.Replace(password, "***") : part;

    /// <summary>Removes the password (raw and URL-escaped) from a message.</summary>
    public string Redact(string message)
    {
        if (Password is not { Length: > 0 } pw) return message;
        return message.Replace(pw, "***").Replace(Uri.EscapeDataString(pw), "***");
    }
}
