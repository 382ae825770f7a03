using System.Globalization;
using System.Text;

namespace AscendCC.Runtime.Chat.Jinja;

/// <summary>
/// Splits template text into tokens, applying whitespace control as Hugging Face configures Jinja:
/// <c>trim_blocks</c> (the first newline after a block or comment tag is dropped), <c>lstrip_blocks</c>
/// (spaces and tabs before a block or comment tag at the start of a line are dropped, unless the tag
/// opens with <c>+</c>), and <c>-</c> on a tag (all whitespace on that side is dropped).
/// </summary>
internal sealed class JinjaLexer
{
    private static readonly string[] Operators =
        ["//", "**", "==", "!=", "<=", ">=", "+", "-", "*", "/", "%", "~", "<", ">", "=", "(", ")", "[", "]", "{", "}", ",", ".", ":", "|"];

    private readonly string _text;
    private readonly string _source;
    private readonly List<JinjaToken> _tokens = [];
    private readonly int[] _lineStarts;
    private int _pos;

    private JinjaLexer(string text, string source)
    {
        // Jinja's keep_trailing_newline is off (Hugging Face leaves it so): one newline ending the template is dropped.
        _text = text.EndsWith("\r\n", StringComparison.Ordinal) ? text[..^2] : text.EndsWith('\n') ? text[..^1] : text;
        _source = source;
        var starts = new List<int> { 0 };
        for (int i = 0; i < text.Length; i++)
        {
            if (text[i] == '\n')
            {
                starts.Add(i + 1);
            }
        }
        _lineStarts = starts.ToArray();
    }

    /// <summary>Tokenizes <paramref name="text"/>; <paramref name="source"/> names the template in errors.</summary>
    public static List<JinjaToken> Tokenize(string text, string source)
    {
        var lexer = new JinjaLexer(text, source);
        lexer.Run();
        return lexer._tokens;
    }

    private (int Line, int Column) Where(int pos)
    {
        int line = Array.BinarySearch(_lineStarts, pos);
        if (line < 0)
        {
            line = ~line - 1;
        }
        return (line + 1, pos - _lineStarts[line] + 1);
    }

    private ChatTemplateException Error(int pos, string problem)
    {
        var (line, column) = Where(pos);
        return new ChatTemplateException(_source, line, column, problem);
    }

    private void Emit(JinjaTokenKind kind, string value, int pos)
    {
        var (line, column) = Where(pos);
        _tokens.Add(new JinjaToken(kind, value, line, column));
    }

    private void Run()
    {
        while (_pos < _text.Length)
        {
            int tag = FindTagStart(_pos);
            if (tag < 0)
            {
                Emit(JinjaTokenKind.Text, _text[_pos..], _pos);
                break;
            }
            char kind = _text[tag + 1];
            char modifier = tag + 2 < _text.Length ? _text[tag + 2] : '\0';
            string data = _text[_pos..tag];
            if (modifier == '-')
            {
                data = data.TrimEnd();
            }
            else if (modifier != '+' && kind is '%' or '#')
            {
                data = LstripBlock(data, _pos);
            }
            if (data.Length > 0)
            {
                Emit(JinjaTokenKind.Text, data, _pos);
            }
            int inner = tag + 2 + (modifier is '-' or '+' ? 1 : 0);
            if (kind == '#')
            {
                int close = _text.IndexOf("#}", inner, StringComparison.Ordinal);
                if (close < 0)
                {
                    throw Error(tag, "comment '{#' is never closed with '#}'");
                }
                AfterTag(close + 2, stripAfter: close > inner && _text[close - 1] == '-', block: true);
                continue;
            }
            if (kind == '%' && IsRawBlock(inner, out int rawBodyStart))
            {
                LexRaw(tag, rawBodyStart);
                continue;
            }
            Emit(kind == '{' ? JinjaTokenKind.VariableBegin : JinjaTokenKind.BlockBegin, kind == '{' ? "{{" : "{%", tag);
            LexInside(inner, kind == '{' ? "}}" : "%}", tag);
        }
        Emit(JinjaTokenKind.End, "", _text.Length);
    }

    private int FindTagStart(int from)
    {
        for (int i = _text.IndexOf('{', from); i >= 0 && i + 1 < _text.Length; i = _text.IndexOf('{', i + 1))
        {
            if (_text[i + 1] is '{' or '%' or '#')
            {
                return i;
            }
        }
        return -1;
    }

    /// <summary>lstrip_blocks: drops the spaces and tabs that alone precede a tag on its line.</summary>
    private string LstripBlock(string data, int dataStart)
    {
        int newline = data.LastIndexOf('\n');
        bool lineStart = newline >= 0 || dataStart == 0 || _text[dataStart - 1] == '\n';
        if (!lineStart)
        {
            return data;
        }
        for (int i = newline + 1; i < data.Length; i++)
        {
            if (data[i] is not (' ' or '\t'))
            {
                return data;
            }
        }
        return data[..(newline + 1)];
    }

    /// <summary>Moves past a closing tag: '-' drops all following whitespace, trim_blocks one newline after a block.</summary>
    private void AfterTag(int pos, bool stripAfter, bool block)
    {
        if (stripAfter)
        {
            while (pos < _text.Length && char.IsWhiteSpace(_text[pos]))
            {
                pos++;
            }
        }
        else if (block)
        {
            if (pos < _text.Length && _text[pos] == '\n')
            {
                pos++;
            }
            else if (pos + 1 < _text.Length && _text[pos] == '\r' && _text[pos + 1] == '\n')
            {
                pos += 2;
            }
        }
        _pos = pos;
    }

    private bool IsRawBlock(int inner, out int bodyStart)
    {
        int i = inner;
        while (i < _text.Length && char.IsWhiteSpace(_text[i]))
        {
            i++;
        }
        bodyStart = 0;
        if (string.CompareOrdinal(_text, i, "raw", 0, 3) != 0 || (i + 3 < _text.Length && char.IsLetterOrDigit(_text[i + 3])))
        {
            return false;
        }
        int close = _text.IndexOf("%}", i + 3, StringComparison.Ordinal);
        if (close < 0 || _text[(i + 3)..close].Trim().TrimEnd('-').Length != 0)
        {
            return false;
        }
        bodyStart = close + 2;
        return true;
    }

    private void LexRaw(int tag, int bodyStart)
    {
        bool stripBodyStart = _text[bodyStart - 3] == '-';
        int search = bodyStart;
        while (true)
        {
            int end = _text.IndexOf("{%", search, StringComparison.Ordinal);
            if (end < 0)
            {
                throw Error(tag, "'{% raw %}' is never closed with '{% endraw %}'");
            }
            int j = end + 2;
            bool stripBefore = j < _text.Length && _text[j] == '-';
            if (j < _text.Length && _text[j] is '-' or '+')
            {
                j++;
            }
            while (j < _text.Length && char.IsWhiteSpace(_text[j]))
            {
                j++;
            }
            if (string.CompareOrdinal(_text, j, "endraw", 0, 6) == 0)
            {
                int close = _text.IndexOf("%}", j, StringComparison.Ordinal);
                if (close < 0)
                {
                    throw Error(end, "'{% endraw' is never closed with '%}'");
                }
                int start = bodyStart;
                if (stripBodyStart)
                {
                    while (start < end && char.IsWhiteSpace(_text[start]))
                    {
                        start++;
                    }
                }
                string body = _text[start..end];
                body = stripBefore ? body.TrimEnd() : LstripBlock(body, start);
                if (body.Length > 0)
                {
                    Emit(JinjaTokenKind.Text, body, start);
                }
                AfterTag(close + 2, stripAfter: _text[close - 1] == '-', block: true);
                return;
            }
            search = end + 2;
        }
    }

    /// <summary>Tokens of an expression or statement up to its closing <paramref name="close"/>.</summary>
    private void LexInside(int pos, string close, int tagStart)
    {
        int depth = 0;
        while (true)
        {
            while (pos < _text.Length && char.IsWhiteSpace(_text[pos]))
            {
                pos++;
            }
            if (pos >= _text.Length)
            {
                throw Error(tagStart, $"'{(close == "}}" ? "{{" : "{%")}' is never closed with '{close}'");
            }
            if (depth == 0 && _text[pos] == '-' && string.CompareOrdinal(_text, pos + 1, close, 0, 2) == 0)
            {
                Emit(close == "}}" ? JinjaTokenKind.VariableEnd : JinjaTokenKind.BlockEnd, close, pos);
                AfterTag(pos + 3, stripAfter: true, block: close == "%}");
                return;
            }
            if (depth == 0 && string.CompareOrdinal(_text, pos, close, 0, 2) == 0)
            {
                Emit(close == "}}" ? JinjaTokenKind.VariableEnd : JinjaTokenKind.BlockEnd, close, pos);
                AfterTag(pos + 2, stripAfter: false, block: close == "%}");
                return;
            }
            char c = _text[pos];
            if (c is '\'' or '"')
            {
                pos = LexString(pos);
            }
            else if (char.IsDigit(c))
            {
                pos = LexNumber(pos);
            }
            else if (char.IsLetter(c) || c == '_')
            {
                int start = pos;
                while (pos < _text.Length && (char.IsLetterOrDigit(_text[pos]) || _text[pos] == '_'))
                {
                    pos++;
                }
                Emit(JinjaTokenKind.Name, _text[start..pos], start);
            }
            else
            {
                string? op = Operators.FirstOrDefault(o => string.CompareOrdinal(_text, pos, o, 0, o.Length) == 0);
                if (op is null)
                {
                    throw Error(pos, $"unexpected character '{c}'");
                }
                depth += op is "(" or "[" or "{" ? 1 : op is ")" or "]" or "}" ? -1 : 0;
                if (depth < 0)
                {
                    throw Error(pos, $"unexpected '{op}' (nothing open to close)");
                }
                Emit(JinjaTokenKind.Operator, op, pos);
                pos += op.Length;
            }
        }
    }

    private int LexString(int start)
    {
        char quote = _text[start];
        var value = new StringBuilder();
        int pos = start + 1;
        while (true)
        {
            if (pos >= _text.Length)
            {
                throw Error(start, "string literal is never closed");
            }
            char c = _text[pos];
            if (c == quote)
            {
                Emit(JinjaTokenKind.String, value.ToString(), start);
                return pos + 1;
            }
            if (c == '\\' && pos + 1 < _text.Length)
            {
                char e = _text[pos + 1];
                pos += 2;
                switch (e)
                {
                    case 'n': value.Append('\n'); break;
                    case 't': value.Append('\t'); break;
                    case 'r': value.Append('\r'); break;
                    case '0': value.Append('\0'); break;
                    case 'b': value.Append('\b'); break;
                    case 'f': value.Append('\f'); break;
                    case '\\': value.Append('\\'); break;
                    case '\'': value.Append('\''); break;
                    case '"': value.Append('"'); break;
                    case '\n': break;
                    case 'u' when pos + 4 <= _text.Length && int.TryParse(_text.AsSpan(pos, 4), NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out int u):
                        value.Append((char)u);
                        pos += 4;
                        break;
                    case 'x' when pos + 2 <= _text.Length && int.TryParse(_text.AsSpan(pos, 2), NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out int x):
                        value.Append((char)x);
                        pos += 2;
                        break;
                    default:
                        // Python keeps an unknown escape as written, backslash included.
                        value.Append('\\').Append(e);
                        break;
                }
                continue;
            }
            value.Append(c);
            pos++;
        }
    }

    private int LexNumber(int start)
    {
        int pos = start;
        bool isFloat = false;
        while (pos < _text.Length && (char.IsDigit(_text[pos]) || _text[pos] == '_'))
        {
            pos++;
        }
        if (pos + 1 < _text.Length && _text[pos] == '.' && char.IsDigit(_text[pos + 1]))
        {
            isFloat = true;
            pos++;
            while (pos < _text.Length && char.IsDigit(_text[pos]))
            {
                pos++;
            }
        }
        if (pos < _text.Length && _text[pos] is 'e' or 'E')
        {
            int e = pos + 1;
            if (e < _text.Length && _text[e] is '+' or '-')
            {
                e++;
            }
            if (e < _text.Length && char.IsDigit(_text[e]))
            {
                isFloat = true;
                pos = e;
                while (pos < _text.Length && char.IsDigit(_text[pos]))
                {
                    pos++;
                }
            }
        }
        Emit(isFloat ? JinjaTokenKind.Float : JinjaTokenKind.Integer, _text[start..pos].Replace("_", "", StringComparison.Ordinal), start);
        return pos;
    }
}
