using System.Globalization;
using System.Text;

namespace Replayer.Formats.Binary;

/// <summary>Kind of a value computed from a print-format argument expression.</summary>
public enum ValueKind : byte { Unknown = 0, Int, Str }

/// <summary>A value of a print argument: an integer (with signedness and, for pointers, the
/// pointed-to size), a string, or Unknown when the expression needs something the capture lacks
/// (the value of a kernel variable, a helper function nobody implements).</summary>
public readonly struct PrintValue
{
    public readonly ulong Bits;
    public readonly string? Str;
    public readonly ValueKind Kind;
    public readonly bool Signed;
    /// <summary>For pointer values, the size of the pointed-to type (for pointer arithmetic); else 0.</summary>
    public readonly int PtrElem;

    public PrintValue(ulong bits, bool signed, int ptrElem = 0)
    {
        Bits = bits; Signed = signed; Kind = ValueKind.Int; PtrElem = ptrElem; Str = null;
    }

    public PrintValue(string s)
    {
        Str = s; Kind = ValueKind.Str; Bits = 0; Signed = false; PtrElem = 0;
    }

    public static readonly PrintValue Unknown = default;
    public bool IsInt => Kind == ValueKind.Int;
    public bool Truthy => Kind == ValueKind.Int ? Bits != 0 : Kind == ValueKind.Str;
}

/// <summary>What an expression evaluates against: the record bytes and the capture's context.</summary>
public interface IRecordContext
{
    ReadOnlySpan<byte> Record { get; }
    bool BigEndian { get; }
    int LongSize { get; }
    /// <summary>Value of a kernel variable (e.g. <c>vmemmap_base</c>) when the caller knows it.</summary>
    bool TryGetSymbolValue(string name, out ulong value);
}

/// <summary>
/// A print-format argument expression (<c>REC-&gt;pfn</c>, <c>__print_symbolic(...)</c>,
/// <c>REC-&gt;flags &amp; 0x1u ? "M" : " "</c>, casts, shifts, masks, ternaries), parsed once per
/// event format and evaluated per record the way libtraceevent and the kernel do.
/// </summary>
public abstract class PrintExpr
{
    public abstract PrintValue Eval(IRecordContext ctx);

    /// <summary>The record field when the expression is a plain <c>REC-&gt;field</c> (possibly cast).</summary>
    public virtual RecordField? PlainField => null;

    public static PrintExpr Parse(string text, EventFormat format) => new Parser(text, format).ParseAll();

    /// <summary>
    /// Adds the record fields the expression reads to <paramref name="fields"/> and says whether its value is
    /// a function of their bytes alone (with the record's byte order): only scalar fields, constants and
    /// operators; no kernel variables, arrays or strings from the record. Such a value can be cached by
    /// those bytes.
    /// </summary>
    internal static bool ReadsOnlyScalars(PrintExpr e, List<RecordField> fields)
    {
        switch (e)
        {
            case Const or UnknownExpr: return true;
            case FieldRef fr:
                if (!fr.Field.IsScalar) return false;
                if (!fields.Contains(fr.Field)) fields.Add(fr.Field);
                return true;
            case Cast c: return ReadsOnlyScalars(c.Inner, fields);
            case Unary u: return ReadsOnlyScalars(u.Operand, fields);
            case Binary b: return ReadsOnlyScalars(b.Left, fields) && ReadsOnlyScalars(b.Right, fields);
            case Ternary t: return ReadsOnlyScalars(t.Cond, fields) && ReadsOnlyScalars(t.IfTrue, fields) && ReadsOnlyScalars(t.IfFalse, fields);
            case Symbolic sy: return ReadsOnlyScalars(sy.Value, fields);
            case Flags fl: return ReadsOnlyScalars(fl.Value, fields);
            default: return false; // Symbol (a kernel variable), Index, anything new
        }
    }

    // ---------------------------------------------------------------- nodes

    internal sealed class Const(PrintValue v) : PrintExpr
    {
        public readonly PrintValue Value = v;
        public override PrintValue Eval(IRecordContext ctx) => Value;
    }

    internal sealed class UnknownExpr(string why) : PrintExpr
    {
        public readonly string Why = why;
        public override PrintValue Eval(IRecordContext ctx) => PrintValue.Unknown;
    }

    internal sealed class Symbol(string name) : PrintExpr
    {
        public string Name => name;
        public override PrintValue Eval(IRecordContext ctx) =>
            ctx.TryGetSymbolValue(name, out var v) ? new PrintValue(v, false) : PrintValue.Unknown;
    }

    internal sealed class FieldRef(RecordField f) : PrintExpr
    {
        public readonly RecordField Field = f;
        public override RecordField? PlainField => Field;

        public override PrintValue Eval(IRecordContext ctx) => Read(Field, ctx.Record, ctx.BigEndian);

        public static PrintValue Read(RecordField f, ReadOnlySpan<byte> rec, bool big)
        {
            if (f.IsScalar)
            {
                if (f.Offset + f.Size > rec.Length) return PrintValue.Unknown;
                ulong sv = Endian.Read(rec.Slice(f.Offset, f.Size), f.Size, big);
                if (f.Signed) sv = unchecked((ulong)Endian.SignExtend(sv, f.Size));
                return new PrintValue(sv, f.Signed, f.IsPointer ? 1 : 0);
            }
            if (f.DataLoc || f.RelLoc || f.IsArray)
            {
                if (f.IsString) return new PrintValue(ReadString(f, rec, big));
                if (f.IsArray) return PrintValue.Unknown;
                // A dynamic array used as a number: libtraceevent yields its data offset; unknown here.
                return PrintValue.Unknown;
            }
            if (f.Offset + f.Size > rec.Length || f.Size == 0 || f.Size > 8) return PrintValue.Unknown;
            ulong v = Endian.Read(rec.Slice(f.Offset, f.Size), f.Size, big);
            if (f.Signed) v = unchecked((ulong)Endian.SignExtend(v, f.Size));
            return new PrintValue(v, f.Signed, f.Type.Contains('*') ? 1 : 0);
        }

        public static string ReadString(RecordField f, ReadOnlySpan<byte> rec, bool big)
        {
            ReadOnlySpan<byte> s;
            if (f.DataLoc || f.RelLoc)
            {
                if (f.Offset + 4 > rec.Length) return "";
                uint loc = Endian.U32(rec.Slice(f.Offset, 4), big);
                int off = (int)(loc & 0xffff), len = (int)(loc >> 16);
                if (f.RelLoc) off += f.Offset + f.Size;
                if (off > rec.Length || len > rec.Length - off) return "";
                s = rec.Slice(off, len);
            }
            else
            {
                if (f.Offset > rec.Length) return "";
                int len = f.Size == 0 || f.Offset + f.Size > rec.Length ? rec.Length - f.Offset : f.Size;
                s = rec.Slice(f.Offset, len);
            }
            int z = s.IndexOf((byte)0);
            if (z >= 0) s = s[..z];
            // A trailing newline (trace_marker text) is the line end in every text rendering.
            if (s.Length > 0 && s[^1] == (byte)'\n') s = s[..^1];
            return StringCache.Get(s);
        }
    }

    internal sealed class Index(PrintExpr arr, PrintExpr idx) : PrintExpr
    {
        public override PrintValue Eval(IRecordContext ctx)
        {
            if (arr is not FieldRef fr || !fr.Field.IsArray) return PrintValue.Unknown;
            var i = idx.Eval(ctx);
            if (!i.IsInt) return PrintValue.Unknown;
            var f = fr.Field;
            int es = f.ElementSize;
            if (es is not (1 or 2 or 4 or 8)) return PrintValue.Unknown;
            long at = f.Offset + (long)i.Bits * es;
            if (i.Bits >= (ulong)Math.Max(1, f.ArrayLength) || at + es > ctx.Record.Length) return PrintValue.Unknown;
            ulong v = Endian.Read(ctx.Record.Slice((int)at, es), es, ctx.BigEndian);
            if (f.Signed) v = unchecked((ulong)Endian.SignExtend(v, es));
            return new PrintValue(v, f.Signed);
        }
    }

    internal sealed class Cast(PrintExpr inner, int size, bool signed, int ptrElem, bool isBool) : PrintExpr
    {
        public PrintExpr Inner => inner; public int PtrElem => ptrElem; // for the trace.dat writer's inversion
        public override RecordField? PlainField => inner.PlainField;

        public override PrintValue Eval(IRecordContext ctx)
        {
            var v = inner.Eval(ctx);
            if (!v.IsInt) return v;
            if (isBool) return new PrintValue(v.Bits != 0 ? 1UL : 0UL, false);
            return new PrintValue(Truncate(v.Bits, size, signed), signed, ptrElem);
        }
    }

    internal static ulong Truncate(ulong v, int size, bool signed) => size switch
    {
        1 => signed ? unchecked((ulong)(sbyte)v) : (byte)v,
        2 => signed ? unchecked((ulong)(short)v) : (ushort)v,
        4 => signed ? unchecked((ulong)(int)v) : (uint)v,
        _ => v,
    };

    internal sealed class Unary(char op, PrintExpr e) : PrintExpr
    {
        public char Op => op; public PrintExpr Operand => e;
        public override PrintValue Eval(IRecordContext ctx)
        {
            var v = e.Eval(ctx);
            if (!v.IsInt) return op == '!' && v.Kind == ValueKind.Str ? new PrintValue(0, false) : PrintValue.Unknown;
            return op switch
            {
                '-' => new PrintValue(unchecked(0 - v.Bits), true),
                '~' => new PrintValue(~v.Bits, v.Signed),
                '!' => new PrintValue(v.Bits == 0 ? 1UL : 0UL, false),
                _ => v,
            };
        }
    }

    internal sealed class Binary(string op, PrintExpr l, PrintExpr r) : PrintExpr
    {
        public string Op => op; public PrintExpr Left => l; public PrintExpr Right => r;

        enum Code : byte { Unknown, AndAlso, OrElse, Add, Sub, Mul, Div, Mod, Shl, Shr, And, Or, Xor, Eq, Ne, Lt, Gt, Le, Ge }

        // The operator decoded once, not compared as a string per record.
        readonly Code _code = op switch
        {
            "&&" => Code.AndAlso, "||" => Code.OrElse, "+" => Code.Add, "-" => Code.Sub, "*" => Code.Mul, "/" => Code.Div,
            "%" => Code.Mod, "<<" => Code.Shl, ">>" => Code.Shr, "&" => Code.And, "|" => Code.Or, "^" => Code.Xor,
            "==" => Code.Eq, "!=" => Code.Ne, "<" => Code.Lt, ">" => Code.Gt, "<=" => Code.Le, ">=" => Code.Ge,
            _ => Code.Unknown,
        };

        public override PrintValue Eval(IRecordContext ctx)
        {
            var code = _code;
            if (code == Code.AndAlso)
            {
                var a0 = l.Eval(ctx);
                if (a0.Kind == ValueKind.Unknown) return a0;
                if (!a0.Truthy) return new PrintValue(0, false);
                var b0 = r.Eval(ctx);
                return b0.Kind == ValueKind.Unknown ? b0 : new PrintValue(b0.Truthy ? 1UL : 0UL, false);
            }
            if (code == Code.OrElse)
            {
                var a0 = l.Eval(ctx);
                if (a0.Kind == ValueKind.Unknown) return a0;
                if (a0.Truthy) return new PrintValue(1, false);
                var b0 = r.Eval(ctx);
                return b0.Kind == ValueKind.Unknown ? b0 : new PrintValue(b0.Truthy ? 1UL : 0UL, false);
            }
            var a = l.Eval(ctx);
            if (!a.IsInt) return PrintValue.Unknown; // the right side cannot change that (evaluating has no effects)
            var b = r.Eval(ctx);
            if (!b.IsInt) return PrintValue.Unknown;
            bool sg = a.Signed && b.Signed;
            ulong x = a.Bits, y = b.Bits;
            switch (code)
            {
                case Code.Add:
                    if (a.PtrElem > 1) return new PrintValue(unchecked(x + y * (ulong)a.PtrElem), false, a.PtrElem);
                    if (b.PtrElem > 1) return new PrintValue(unchecked(y + x * (ulong)b.PtrElem), false, b.PtrElem);
                    return new PrintValue(unchecked(x + y), sg);
                case Code.Sub:
                    if (a.PtrElem > 1 && b.PtrElem == 0) return new PrintValue(unchecked(x - y * (ulong)a.PtrElem), false, a.PtrElem);
                    return new PrintValue(unchecked(x - y), sg);
                case Code.Mul: return new PrintValue(unchecked(x * y), sg);
                case Code.Div:
                    if (y == 0) return PrintValue.Unknown;
                    return sg ? new PrintValue(unchecked((ulong)((long)x / (long)y)), true) : new PrintValue(x / y, false);
                case Code.Mod:
                    if (y == 0) return PrintValue.Unknown;
                    return sg ? new PrintValue(unchecked((ulong)((long)x % (long)y)), true) : new PrintValue(x % y, false);
                case Code.Shl: return new PrintValue(y >= 64 ? 0 : x << (int)y, a.Signed);
                case Code.Shr:
                    if (y >= 64) return new PrintValue(a.Signed && (long)x < 0 ? ulong.MaxValue : 0, a.Signed);
                    return a.Signed ? new PrintValue(unchecked((ulong)((long)x >> (int)y)), true) : new PrintValue(x >> (int)y, false);
                case Code.And: return new PrintValue(x & y, sg);
                case Code.Or: return new PrintValue(x | y, sg);
                case Code.Xor: return new PrintValue(x ^ y, sg);
                case Code.Eq: return Bool(x == y);
                case Code.Ne: return Bool(x != y);
                case Code.Lt: return Bool(sg ? (long)x < (long)y : x < y);
                case Code.Gt: return Bool(sg ? (long)x > (long)y : x > y);
                case Code.Le: return Bool(sg ? (long)x <= (long)y : x <= y);
                case Code.Ge: return Bool(sg ? (long)x >= (long)y : x >= y);
            }
            return PrintValue.Unknown;
        }

        static PrintValue Bool(bool b) => new(b ? 1UL : 0UL, true);
    }

    internal sealed class Ternary(PrintExpr c, PrintExpr a, PrintExpr b) : PrintExpr
    {
        public PrintExpr Cond => c; public PrintExpr IfTrue => a; public PrintExpr IfFalse => b;
        public override PrintValue Eval(IRecordContext ctx)
        {
            var cv = c.Eval(ctx);
            if (cv.Kind == ValueKind.Unknown) return cv;
            return cv.Truthy ? a.Eval(ctx) : b.Eval(ctx);
        }
    }

    internal sealed class Symbolic(PrintExpr value, (ulong Value, string Name)[] table) : PrintExpr
    {
        public PrintExpr Value => value; public (ulong Value, string Name)[] Table => table;
        public override PrintValue Eval(IRecordContext ctx)
        {
            var v = value.Eval(ctx);
            if (!v.IsInt) return PrintValue.Unknown;
            foreach (var (val, name) in table)
                if (val == v.Bits) return new PrintValue(name);
            return new PrintValue(StringCache.Hex(v.Bits));
        }
    }

    internal sealed class Flags(PrintExpr value, string delim, (ulong Value, string Name)[] table) : PrintExpr
    {
        public PrintExpr Value => value; public string Delim => delim; public (ulong Value, string Name)[] Table => table;

        // Rendered values in a direct-mapped cache of immutable entries: no lock, safe to race (a lost update
        // is a miss), no allocation on a hit.
        sealed class Entry(ulong value, string text)
        {
            public readonly ulong Value = value;
            public readonly string Text = text;
        }

        readonly Entry?[] _cache = new Entry?[256];

        public override PrintValue Eval(IRecordContext ctx)
        {
            var v = value.Eval(ctx);
            if (!v.IsInt) return PrintValue.Unknown;
            ulong val = v.Bits;
            int slot = (int)((val ^ val >> 17 ^ val >> 31) * 0x9E3779B97F4A7C15UL >> 56);
            var hit = _cache[slot];
            if (hit != null && hit.Value == val) return new PrintValue(hit.Text);
            var s = Render(val);
            _cache[slot] = new Entry(val, s);
            return new PrintValue(s);
        }

        string Render(ulong val)
        {
            var sb = new StringBuilder();
            bool printed = false;
            ulong rest = val;
            foreach (var (fv, name) in table)
            {
                if (rest == 0 && fv == 0 && !printed) { sb.Append(name); printed = true; break; }
                if (fv != 0 && (rest & fv) == fv)
                {
                    if (printed) sb.Append(delim);
                    sb.Append(name);
                    printed = true;
                    rest &= ~fv;
                }
            }
            if (rest != 0)
            {
                if (printed) sb.Append(delim);
                sb.Append("0x").Append(rest.ToString("x", CultureInfo.InvariantCulture));
            }
            return string.Intern(sb.ToString());
        }
    }

    // ---------------------------------------------------------------- parser

    sealed class Parser
    {
        readonly List<(char Kind, string Text)> _t = new(); // Kind: i=ident, n=number, s=string, c=char, o=operator
        readonly EventFormat _fmt;
        int _p;

        public Parser(string text, EventFormat fmt)
        {
            _fmt = fmt;
            Tokenize(text);
        }

        public PrintExpr ParseAll()
        {
            try
            {
                var e = Expr();
                if (_p != _t.Count) return new UnknownExpr("trailing tokens");
                return e;
            }
            catch (FormatException ex)
            {
                return new UnknownExpr(ex.Message);
            }
        }

        void Tokenize(string s)
        {
            int i = 0;
            while (i < s.Length)
            {
                char c = s[i];
                if (char.IsWhiteSpace(c)) { i++; continue; }
                int st = i;
                if (char.IsLetter(c) || c == '_')
                {
                    while (i < s.Length && (char.IsLetterOrDigit(s[i]) || s[i] == '_')) i++;
                    _t.Add(('i', s[st..i]));
                }
                else if (char.IsDigit(c))
                {
                    while (i < s.Length && (char.IsLetterOrDigit(s[i]))) i++;
                    _t.Add(('n', s[st..i]));
                }
                else if (c == '"')
                {
                    var sb = new StringBuilder();
                    i++;
                    while (i < s.Length && s[i] != '"')
                    {
                        if (s[i] == '\\' && i + 1 < s.Length) { i++; sb.Append(s[i] switch { 'n' => '\n', 't' => '\t', _ => s[i] }); }
                        else sb.Append(s[i]);
                        i++;
                    }
                    i++;
                    // Adjacent string literals concatenate.
                    if (_t.Count > 0 && _t[^1].Kind == 's') _t[^1] = ('s', _t[^1].Text + sb);
                    else _t.Add(('s', sb.ToString()));
                }
                else if (c == '\'')
                {
                    i++;
                    char v = i < s.Length ? s[i] : '\0';
                    if (v == '\\' && i + 1 < s.Length) { i++; v = s[i] switch { 'n' => '\n', 't' => '\t', '0' => '\0', _ => s[i] }; }
                    i++;
                    if (i < s.Length && s[i] == '\'') i++;
                    _t.Add(('n', ((int)v).ToString(CultureInfo.InvariantCulture)));
                }
                else
                {
                    string two = i + 1 < s.Length ? s.Substring(i, 2) : "";
                    if (two is "->" or "&&" or "||" or "==" or "!=" or "<=" or ">=" or "<<" or ">>")
                    {
                        _t.Add(('o', two));
                        i += 2;
                    }
                    else
                    {
                        _t.Add(('o', c.ToString()));
                        i++;
                    }
                }
            }
        }

        bool IsOp(string op) => _p < _t.Count && _t[_p].Kind == 'o' && _t[_p].Text == op;
        bool IsOpAt(int p, string op) => p < _t.Count && _t[p].Kind == 'o' && _t[p].Text == op;

        void Expect(string op)
        {
            if (!IsOp(op)) throw new FormatException("expected " + op);
            _p++;
        }

        PrintExpr Expr() => Ternary_();

        PrintExpr Ternary_()
        {
            var c = BinaryLevel(0);
            if (IsOp("?"))
            {
                _p++;
                var a = Expr();
                Expect(":");
                var b = Ternary_();
                return new Ternary(c, a, b);
            }
            return c;
        }

        static readonly string[][] Levels =
        [
            ["||"], ["&&"], ["|"], ["^"], ["&"], ["==", "!="], ["<", ">", "<=", ">="], ["<<", ">>"], ["+", "-"], ["*", "/", "%"],
        ];

        PrintExpr BinaryLevel(int level)
        {
            if (level == Levels.Length) return UnaryExpr();
            var l = BinaryLevel(level + 1);
            while (_p < _t.Count && _t[_p].Kind == 'o' && Array.IndexOf(Levels[level], _t[_p].Text) >= 0)
            {
                string op = _t[_p++].Text;
                var r = BinaryLevel(level + 1);
                l = Fold(new Binary(op, l, r));
            }
            return l;
        }

        static readonly NullContext Null = new();

        /// <summary>Constant-folds an expression without record references (flag tables are full of them).</summary>
        static PrintExpr Fold(PrintExpr e)
        {
            if (e is Const || NullContext.Touched(e)) return e;
            var v = e.Eval(Null);
            return v.Kind == ValueKind.Unknown ? e : new Const(v);
        }

        PrintExpr UnaryExpr()
        {
            if (_p >= _t.Count) throw new FormatException("unexpected end");
            var (k, t) = _t[_p];
            if (k == 'o')
            {
                switch (t)
                {
                    case "-" or "~" or "!" or "+":
                        _p++;
                        var inner = UnaryExpr();
                        return t == "+" ? inner : Fold1(new Unary(t[0], inner));
                    case "&" or "*":
                        _p++;
                        UnaryExpr();
                        return new UnknownExpr("address-of/dereference");
                    case "(":
                        if (TryCast(out var cast)) return cast;
                        break;
                }
            }
            return Postfix();
        }

        static PrintExpr Fold1(PrintExpr e) => Fold(e);

        bool TryCast(out PrintExpr result)
        {
            // '(' type-words [*...] ')' operand
            result = null!;
            int p = _p + 1;
            var words = new List<string>();
            int stars = 0;
            while (p < _t.Count && (_t[p].Kind == 'i' || IsOpAt(p, "*")))
            {
                if (_t[p].Kind == 'i') words.Add(_t[p].Text); else stars++;
                p++;
            }
            if (words.Count == 0 || !IsOpAt(p, ")")) return false;
            if (!LooksLikeType(words, stars)) return false;
            // Must be followed by an operand, not a binary operator.
            int after = p + 1;
            if (after >= _t.Count) return false;
            var nt = _t[after];
            if (nt.Kind == 'o' && nt.Text is not ("(" or "-" or "~" or "!" or "&" or "*")) return false;
            _p = after;
            var operand = UnaryExpr();
            result = MakeCast(operand, words, stars);
            return true;
        }

        static readonly HashSet<string> TypeWords = new(StringComparer.Ordinal)
        {
            "unsigned", "signed", "int", "long", "short", "char", "void", "bool", "_Bool", "struct", "const", "volatile", "enum", "union",
            "u8", "u16", "u32", "u64", "s8", "s16", "s32", "s64", "__u8", "__u16", "__u32", "__u64", "__s8", "__s16", "__s32", "__s64",
            "size_t", "ssize_t", "loff_t", "pid_t", "gfp_t", "dev_t", "ino_t", "sector_t", "pgoff_t", "uint", "ulong",
        };

        static bool LooksLikeType(List<string> words, int stars)
        {
            if (words.Contains("struct") || words.Contains("union") || words.Contains("enum")) return true;
            foreach (var w in words)
                if (!TypeWords.Contains(w) && !w.EndsWith("_t", StringComparison.Ordinal)) return false;
            return true;
        }

        PrintExpr MakeCast(PrintExpr operand, List<string> words, int stars)
        {
            if (stars > 0)
            {
                int elem = 1;
                if (stars == 1)
                {
                    int si = words.IndexOf("struct");
                    if (si >= 0 && si + 1 < words.Count)
                        elem = words[si + 1] == "page" ? 64 : 0; // sizeof(struct page) on x86_64; other structs unknown
                    else elem = ScalarSize(words, out _);
                }
                else elem = 8;
                if (elem == 0) return new UnknownExpr("pointer to struct of unknown size");
                return new Cast(operand, 8, false, elem, false);
            }
            if (words.Contains("bool") || words.Contains("_Bool")) return new Cast(operand, 1, false, 0, true);
            if (words.Contains("struct") || words.Contains("union")) return new UnknownExpr("struct value");
            int size = ScalarSize(words, out bool signed);
            return new Cast(operand, size, signed, 0, false);
        }

        static int ScalarSize(List<string> words, out bool signed)
        {
            signed = !words.Contains("unsigned");
            foreach (var w in words)
            {
                switch (w)
                {
                    case "u8" or "__u8": signed = false; return 1;
                    case "s8" or "__s8": signed = true; return 1;
                    case "u16" or "__u16": signed = false; return 2;
                    case "s16" or "__s16": signed = true; return 2;
                    case "u32" or "__u32" or "gfp_t" or "uint" or "dev_t": signed = false; return 4;
                    case "s32" or "__s32" or "pid_t": signed = true; return 4;
                    case "u64" or "__u64" or "size_t" or "sector_t" or "pgoff_t" or "ino_t" or "ulong": signed = false; return 8;
                    case "s64" or "__s64" or "ssize_t" or "loff_t": signed = true; return 8;
                    case "void": signed = false; return 8;
                }
            }
            if (words.Contains("char")) return 1;
            if (words.Contains("short")) return 2;
            if (words.Contains("long")) return 8;
            if (words.Contains("int") || words.Contains("unsigned") || words.Contains("signed") || words.Contains("enum")) return 4;
            signed = false;
            return 8; // typedef'd kernel type of unknown width (e.g. 'unsigned long' typedefs)
        }

        PrintExpr Postfix()
        {
            var e = Primary();
            while (true)
            {
                if (IsOp("["))
                {
                    _p++;
                    var idx = Expr();
                    Expect("]");
                    e = new Index(e, idx);
                }
                else if (IsOp("->") || IsOp("."))
                {
                    _p++;
                    if (_p >= _t.Count || _t[_p].Kind != 'i') throw new FormatException("member name");
                    _p++;
                    e = new UnknownExpr("member access");
                }
                else return e;
            }
        }

        PrintExpr Primary()
        {
            if (_p >= _t.Count) throw new FormatException("unexpected end");
            var (k, t) = _t[_p++];
            switch (k)
            {
                case 'n': return new Const(ParseNumber(t));
                case 's': return new Const(new PrintValue(t));
                case 'o' when t == "(":
                {
                    var e = Expr();
                    Expect(")");
                    return e;
                }
                case 'i':
                    if (t == "REC")
                    {
                        Expect("->");
                        if (_p >= _t.Count || _t[_p].Kind != 'i') throw new FormatException("field name");
                        string name = _t[_p++].Text;
                        var f = _fmt.Field(name);
                        return f == null ? new UnknownExpr("no field " + name) : new FieldRef(f);
                    }
                    if (IsOp("(")) return Call(t);
                    if (t is "true") return new Const(new PrintValue(1, false));
                    if (t is "false" or "NULL") return new Const(new PrintValue(0, false));
                    return new Symbol(t);
            }
            throw new FormatException("unexpected " + t);
        }

        List<PrintExpr> Args()
        {
            Expect("(");
            var list = new List<PrintExpr>();
            if (IsOp(")")) { _p++; return list; }
            while (true)
            {
                list.Add(Expr());
                if (IsOp(",")) { _p++; continue; }
                Expect(")");
                return list;
            }
        }

        (ulong, string)[] Table()
        {
            var list = new List<(ulong, string)>();
            while (IsOp(","))
            {
                _p++;
                Expect("{");
                var v = Expr().Eval(Null);
                Expect(",");
                var nameExpr = Expr().Eval(Null);
                Expect("}");
                // A table may end with a { 0, NULL } sentinel: no name, not an entry.
                if (nameExpr.Kind != ValueKind.Str) continue;
                if (!v.IsInt) throw new FormatException("non-constant symbol value");
                list.Add((v.Bits, string.Intern(nameExpr.Str!)));
            }
            return list.ToArray();
        }

        PrintExpr Call(string fn)
        {
            switch (fn)
            {
                case "__print_symbolic":
                case "__print_symbolic_u64":
                {
                    Expect("(");
                    var v = Expr();
                    var table = Table();
                    Expect(")");
                    return new Symbolic(v, table);
                }
                case "__print_flags":
                case "__print_flags_u64":
                {
                    Expect("(");
                    var v = Expr();
                    Expect(",");
                    if (_p >= _t.Count || _t[_p].Kind != 's') throw new FormatException("flags delimiter");
                    string delim = _t[_p++].Text;
                    var table = Table();
                    Expect(")");
                    return new Flags(v, delim, table);
                }
                case "__get_str":
                case "__get_rel_str":
                {
                    Expect("(");
                    if (_p >= _t.Count || _t[_p].Kind != 'i') throw new FormatException("field name");
                    var f = _fmt.Field(_t[_p++].Text);
                    Expect(")");
                    return f == null ? new UnknownExpr("no field") : new FieldRef(f);
                }
                default:
                    Args();
                    return new UnknownExpr("function " + fn);
            }
        }

        static PrintValue ParseNumber(string t)
        {
            string s = t.TrimEnd('u', 'U', 'l', 'L');
            bool unsignedSuffix = t.Length != s.Length && t[s.Length..].Contains('u', StringComparison.OrdinalIgnoreCase);
            ulong v;
            bool ok;
            if (s.StartsWith("0x", StringComparison.OrdinalIgnoreCase))
                ok = ulong.TryParse(s.AsSpan(2), NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out v);
            else if (s.Length > 1 && s[0] == '0')
            {
                v = 0; ok = true;
                foreach (char c in s.AsSpan(1))
                {
                    if (c < '0' || c > '7') { ok = false; break; }
                    v = v * 8 + (ulong)(c - '0');
                }
            }
            else ok = ulong.TryParse(s, NumberStyles.None, CultureInfo.InvariantCulture, out v);
            if (!ok) throw new FormatException("number " + t);
            bool longSuffix = t.Contains('l', StringComparison.OrdinalIgnoreCase);
            // C: an unsuffixed int constant that fits in int is an int; 'u' makes it unsigned.
            bool signed = !unsignedSuffix;
            if (!longSuffix && !unsignedSuffix && v > int.MaxValue) signed = v <= long.MaxValue;
            if (!longSuffix && unsignedSuffix && v <= uint.MaxValue) return new PrintValue(v, false);
            return new PrintValue(v, signed);
        }
    }

    /// <summary>A context with no record: used to fold constants at parse time. Records whether a
    /// record or symbol was consulted (then the expression is not constant).</summary>
    sealed class NullContext : IRecordContext
    {
        [ThreadStatic] static bool _touched;
        public ReadOnlySpan<byte> Record { get { _touched = true; return default; } }
        public bool BigEndian => false;
        public int LongSize => 8;
        public bool TryGetSymbolValue(string name, out ulong value) { _touched = true; value = 0; return false; }

        public static bool Touched(PrintExpr e)
        {
            _touched = false;
            e.Eval(new NullContext());
            return _touched;
        }
    }
}

/// <summary>Interns short strings decoded from records (comm names, symbolic values) without a
/// per-event allocation once seen.</summary>
public static class StringCache
{
    static readonly Dictionary<int, string[]> _byHash = new();
    static readonly System.Collections.Concurrent.ConcurrentDictionary<ulong, string> _hex = new();

    public static string Get(ReadOnlySpan<byte> utf8)
    {
        if (utf8.Length == 0) return "";
        if (utf8.Length > 64) return Encoding.UTF8.GetString(utf8);
        int h = HashCode.Combine(utf8.Length);
        var hc = new HashCode();
        hc.AddBytes(utf8);
        h = hc.ToHashCode();
        lock (_byHash)
        {
            if (_byHash.TryGetValue(h, out var arr))
                foreach (var s in arr)
                    if (Matches(s, utf8)) return s;
            var n = string.Intern(Encoding.UTF8.GetString(utf8));
            if (_byHash.Count < 1 << 16)
                _byHash[h] = arr == null ? [n] : [.. arr, n];
            return n;
        }
    }

    static bool Matches(string s, ReadOnlySpan<byte> utf8)
    {
        if (s.Length != utf8.Length) return Encoding.UTF8.GetByteCount(s) == utf8.Length && Encoding.UTF8.GetString(utf8) == s;
        for (int i = 0; i < s.Length; i++)
            if (s[i] != utf8[i]) return false;
        return true;
    }

    public static string Hex(ulong v)
    {
        if (_hex.TryGetValue(v, out var s)) return s;
        s = "0x" + v.ToString("x", CultureInfo.InvariantCulture);
        if (_hex.Count < 4096) _hex.TryAdd(v, s);
        return s;
    }
}
