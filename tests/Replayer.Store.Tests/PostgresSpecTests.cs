using Replayer.Store;
using Replayer.Store.Postgres;

namespace Replayer.Store.Tests;

public sealed class PostgresSpecTests
{
    [Fact]
    public void Url_is_parsed_and_the_password_is_redacted()
    {
        var s = PostgresSpec.Parse("postgres://alice:s3cr%40t@db.example:6543/traces?schema=cap&sslmode=disable");
        Assert.Equal("s3cr@t", s.Password);
        Assert.Equal("cap", s.Schema);
        Assert.Contains("Host=db.example", s.ConnectionString);
        Assert.Contains("Port=6543", s.ConnectionString);
        Assert.Contains("Database=traces", s.ConnectionString);
        Assert.Contains("Username=alice", s.ConnectionString);
        Assert.Equal("postgres://alice:***@db.example:6543/traces?schema=cap", s.Redacted);
        Assert.DoesNotContain("s3cr", s.Redacted);
        Assert.Equal("login failed for *** and ***", s.Redact("login failed for s3cr@t and s3cr%40t"));
    }

    [Fact]
    public void Key_value_forms_are_parsed()
    {
        var npg = PostgresSpec.Parse("Host=/tmp/pg;Port=5433;Username=bob;Password=pw1;Database=d;schema=x1");
        Assert.Equal("pw1", npg.Password);
        Assert.Equal("x1", npg.Schema);
        Assert.Contains("Host=/tmp/pg", npg.ConnectionString);
        Assert.DoesNotContain("pw1", npg.Redacted);

        var libpq = PostgresSpec.Parse("host=127.0.0.1 port=5434 user=carol password='p w' dbname=e");
        Assert.Equal("p w", libpq.Password);
        Assert.Contains("Port=5434", libpq.ConnectionString);
        Assert.Equal("replayer", libpq.Schema);
        Assert.Equal("postgres://carol:***@127.0.0.1:5434/e", libpq.Redacted);
    }

    [Theory]
    [InlineData("postgres://u@h/db", true)]
    [InlineData("postgresql://h/db", true)]
    [InlineData("host=localhost dbname=x", true)]
    [InlineData("Host=/run/postgresql;Database=x", true)]
    [InlineData("/home/me/.local/share/replayer/store", false)]
    [InlineData("./store", false)]
    [InlineData("store", false)]
    public void Store_specs_are_told_apart(string spec, bool postgres) => Assert.Equal(postgres, StoreFactory.IsPostgres(spec));

    [Fact]
    public async Task A_wrong_password_fails_without_echoing_it()
    {
        var real = PostgresSpec.Parse(PostgresConformanceTests.ServerSpec());
        var b = new Npgsql.NpgsqlConnectionStringBuilder(real.ConnectionString) { Password = "Wr0ngPassw0rd-xyz" };
        var spec = $"postgres://{b.Username}:Wr0ngPassw0rd-xyz@{b.Host}:{b.Port}/{b.Database}";
        var ex = await Assert.ThrowsAsync<StoreConnectionException>(() => PostgresEventStore.OpenAsync(spec));
        Assert.DoesNotContain("Wr0ngPassw0rd", ex.Message);
        Assert.DoesNotContain("Wr0ngPassw0rd", ex.ToString());
        Assert.Contains("***", ex.Message);
    }

    [Fact]
    public async Task Schema_is_created_on_first_use_with_a_version_and_reused_after()
    {
        var schema = "t_" + Guid.NewGuid().ToString("N")[..12];
        var spec = PostgresConformanceTests.WithSchema(PostgresConformanceTests.ServerSpec(), schema);
        await using (var s = await PostgresEventStore.OpenAsync(spec))
            await s.AppendAsync("a", ExpectedRevision.NoStream, TestEvents.Batch(3));
        await using (var s = await PostgresEventStore.OpenAsync(spec))
        {
            Assert.Equal(3UL, (await s.GetStreamInfoAsync("a"))!.EventCount);
            var real = PostgresSpec.Parse(spec);
            await using var conn = new Npgsql.NpgsqlConnection(real.ConnectionString);
            await conn.OpenAsync();
            await using var cmd = new Npgsql.NpgsqlCommand($"SELECT version FROM \"{schema}\".schema_version", conn);
            Assert.Equal(PostgresEventStore.SchemaVersion, (int)(await cmd.ExecuteScalarAsync())!);
            await s.DropSchemaAsync();
        }
    }
}
