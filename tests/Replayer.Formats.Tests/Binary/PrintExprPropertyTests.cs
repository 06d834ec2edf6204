using System.Buffers.Binary;
using CsCheck;
using Replayer.Formats.Binary;

namespace Replayer.Formats.Tests.Binary;

/// <summary>
/// The print-argument evaluator against C semantics (as libtraceevent computes them, in 64 bits) for
/// random field values: shifts, masks, casts (truncation and sign extension), ternaries, unary
/// operators, signed comparisons, __print_symbolic and __print_flags.
/// </summary>
public class PrintExprPropertyTests
{
    const string Format = """
        name: synth
        ID: 1
        format:
        	field:unsigned short common_type;	offset:0;	size:2;	signed:0;
        	field:unsigned char common_flags;	offset:2;	size:1;	signed:0;
        	field:unsigned char common_preempt_count;	offset:3;	size:1;	signed:0;
        	field:int common_pid;	offset:4;	size:4;	signed:1;

        	field:u64 a;	offset:8;	size:8;	signed:0;
        	field:s32 b;	offset:16;	size:4;	signed:1;
        	field:u8 c;	offset:20;	size:1;	signed:0;
        	field:unsigned long flags;	offset:24;	size:8;	signed:0;

        print fmt: "a=%llu", REC->a
        """;

    static readonly EventFormat Fmt = EventFormat.Parse(Format.Replace("\r", ""), "test", "synth", 0);

    static readonly (string Expr, Func<ulong, int, byte, ulong, object> Expected)[] Cases =
    [
        ("REC->a << 12", (a, b, c, f) => a << 12),
        ("REC->a >> 20", (a, b, c, f) => a >> 20),
        ("((unsigned int) ((REC->a) >> 20))", (a, b, c, f) => (ulong)(uint)(a >> 20)),
        ("((unsigned int) ((REC->a) & ((1U << 20) - 1)))", (a, b, c, f) => a & 0xFFFFF),
        ("(int)REC->a", (a, b, c, f) => (ulong)(long)(int)a),
        ("(u8)REC->a", (a, b, c, f) => (ulong)(byte)a),
        ("(short)REC->a", (a, b, c, f) => (ulong)(long)(short)a),
        ("REC->a != -1UL ? REC->a : 0", (a, b, c, f) => a != ulong.MaxValue ? a : 0UL),
        ("REC->b < 0 ? -REC->b : REC->b", (a, b, c, f) => (ulong)Math.Abs((long)b)),
        ("REC->b >> 3", (a, b, c, f) => (ulong)((long)b >> 3)),
        ("REC->c ? 1 : 2", (a, b, c, f) => c != 0 ? 1UL : 2UL),
        ("!REC->c", (a, b, c, f) => c == 0 ? 1UL : 0UL),
        ("~REC->a", (a, b, c, f) => ~a),
        ("REC->a % 7 + REC->a / 3", (a, b, c, f) => a % 7 + a / 3),
        ("(REC->b * 3) >> 1", (a, b, c, f) => (ulong)(((long)b * 3) >> 1)),
        ("REC->a & 0x0001u ? \"M\" : \" \"", (a, b, c, f) => (a & 1) != 0 ? "M" : " "),
        ("REC->b > -5 && REC->c <= 200 || REC->a == 0", (a, b, c, f) => (b > -5 && c <= 200) || a == 0 ? 1UL : 0UL),
        ("__print_symbolic(REC->c, {0, \"zero\"}, {1, \"one\"}, {255, \"max\"})",
            (a, b, c, f) => c switch { 0 => "zero", 1 => "one", 255 => "max", _ => "0x" + c.ToString("x") }),
        ("__print_flags(REC->flags, \"|\", {1, \"A\"}, {2, \"B\"}, {0xc, \"CD\"}, { 0, ((void *)0) })", (a, b, c, f) => Flags(f)),
    ];

    static string Flags(ulong f)
    {
        var parts = new List<string>();
        ulong rest = f;
        foreach (var (v, n) in new[] { (1UL, "A"), (2UL, "B"), (0xcUL, "CD") })
            if ((rest & v) == v) { parts.Add(n); rest &= ~v; }
        if (rest != 0) parts.Add("0x" + rest.ToString("x"));
        return string.Join("|", parts);
    }

    [Fact]
    public void Expressions_evaluate_like_C()
    {
        var exprs = Cases.Select(c => PrintExpr.Parse(c.Expr, Fmt)).ToArray();
        var ctx = new RecordContext(false, 8, null);
        var rec = new byte[32];
        var gen = Gen.Select(Gen.ULong, Gen.Int, Gen.Byte, Gen.ULong[0, 0x3f]);
        gen.Sample((a, b, c, f) =>
        {
            BinaryPrimitives.WriteUInt64LittleEndian(rec.AsSpan(8), a);
            BinaryPrimitives.WriteInt32LittleEndian(rec.AsSpan(16), b);
            rec[20] = c;
            BinaryPrimitives.WriteUInt64LittleEndian(rec.AsSpan(24), f);
            ctx.Set(rec, 0, rec.Length);
            for (int i = 0; i < Cases.Length; i++)
            {
                var v = exprs[i].Eval(ctx);
                var want = Cases[i].Expected(a, b, c, f);
                if (want is string s) Assert.True(v.Kind == ValueKind.Str && v.Str == s, $"{Cases[i].Expr} with a={a} b={b} c={c} f={f}: got {v.Str ?? v.Bits.ToString()}, want {s}");
                else Assert.True(v.IsInt && v.Bits == (ulong)want, $"{Cases[i].Expr} with a={a} b={b} c={c} f={f}: got {(v.IsInt ? v.Bits.ToString() : v.Kind.ToString())}, want {want}");
            }
        }, seed: "0000000000B1", iter: 2000, threads: 1);
    }

    [Theory]
    [InlineData("vmemmap_base")]                       // a kernel variable whose value the capture lacks
    [InlineData("jiffies_to_msecs(REC->a)")]           // a helper nobody implements
    [InlineData("REC->missing")]                       // a field the format does not have
    [InlineData("REC->a +")]                           // malformed
    public void Unknowable_expressions_are_unknown_not_guessed(string expr)
    {
        var ctx = new RecordContext(false, 8, null);
        ctx.Set(new byte[32], 0, 32);
        Assert.Equal(ValueKind.Unknown, PrintExpr.Parse(expr, Fmt).Eval(ctx).Kind);
    }
}
