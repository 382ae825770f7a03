using System.Globalization;

namespace AscendCC.Runtime.Chat.Jinja;

/// <summary>
/// Builds the template's tree from its tokens: statements (<c>if</c>, <c>for</c>, <c>set</c>,
/// <c>macro</c>, <c>break</c>/<c>continue</c>, <c>filter</c>, <c>generation</c>) and expressions with
/// Jinja's precedence. Unknown filters and tests are refused here, as Jinja refuses them when it
/// compiles, so a template with a typo fails on load rather than on the first conversation that
/// reaches the line.
/// </summary>
internal sealed class JinjaParser
{
    private static readonly HashSet<string> Unsupported = new(StringComparer.Ordinal) { "call", "include", "import", "from", "extends", "block", "with", "autoescape", "do" };

    private readonly List<JinjaToken> _tokens;
    private readonly string _source;
    private int _i;

    private JinjaParser(List<JinjaToken> tokens, string source)
    {
        _tokens = tokens;
        _source = source;
    }

    /// <summary>Parses <paramref name="text"/>; <paramref name="source"/> names the template in errors.</summary>
    public static IReadOnlyList<JinjaNode> Parse(string text, string source)
    {
        var parser = new JinjaParser(JinjaLexer.Tokenize(text, source), source);
        var (body, _) = parser.ParseBody(null);
        return body;
    }

    private JinjaToken Current => _tokens[_i];

    private JinjaToken Next() => _tokens[_i++];

    private ChatTemplateException Error(JinjaToken at, string problem) => new(_source, at.Line, at.Column, problem);

    private JinjaToken Expect(JinjaTokenKind kind, string? value, string what)
    {
        JinjaToken token = Current;
        if (token.Kind != kind || (value is not null && token.Value != value))
        {
            throw Error(token, $"expected {what}, found {token.Describe()}");
        }
        _i++;
        return token;
    }

    private void ExpectBlockEnd(string statement) => Expect(JinjaTokenKind.BlockEnd, null, $"'%}}' to end '{statement}'");

    /// <summary>Nodes up to one of <paramref name="endTags"/> (its name consumed) or, when null, the end of the template.</summary>
    private (List<JinjaNode> Body, string? EndTag) ParseBody(string[]? endTags, JinjaToken? opener = null, string? openerName = null)
    {
        var body = new List<JinjaNode>();
        while (true)
        {
            JinjaToken token = Current;
            switch (token.Kind)
            {
                case JinjaTokenKind.End:
                    if (endTags is not null)
                    {
                        throw Error(opener!.Value, $"'{{% {openerName} %}}' is never closed: expected {string.Join(" or ", endTags.Select(t => $"'{{% {t} %}}'"))} before the end of the template");
                    }
                    return (body, null);
                case JinjaTokenKind.Text:
                    _i++;
                    body.Add(new TextNode(token.Value, token.Line, token.Column));
                    break;
                case JinjaTokenKind.VariableBegin:
                    _i++;
                    JinjaExpr value = ParseExpression();
                    Expect(JinjaTokenKind.VariableEnd, null, "'}}' to end the expression");
                    body.Add(new OutputNode(value, token.Line, token.Column));
                    break;
                case JinjaTokenKind.BlockBegin:
                    _i++;
                    JinjaToken name = Current;
                    if (name.Kind != JinjaTokenKind.Name)
                    {
                        throw Error(name, $"expected a statement name after '{{%', found {name.Describe()}");
                    }
                    if (endTags is not null && endTags.Contains(name.Value))
                    {
                        _i++;
                        return (body, name.Value);
                    }
                    body.Add(ParseStatement(name, token));
                    break;
                default:
                    throw Error(token, $"unexpected {token.Describe()}");
            }
        }
    }

    private JinjaNode ParseStatement(JinjaToken name, JinjaToken begin)
    {
        _i++;
        switch (name.Value)
        {
            case "if":
                return ParseIf(begin);
            case "for":
                return ParseFor(begin);
            case "set":
                return ParseSet(begin);
            case "macro":
                return ParseMacro(begin);
            case "break":
            case "continue":
                ExpectBlockEnd(name.Value);
                return new LoopControlNode(name.Value == "break", begin.Line, begin.Column);
            case "generation":
            {
                ExpectBlockEnd("generation");
                var (body, _) = ParseBody(["endgeneration"], begin, "generation");
                ExpectBlockEnd("endgeneration");
                return new BlockNode(null, body, begin.Line, begin.Column);
            }
            case "filter":
            {
                JinjaToken filter = Expect(JinjaTokenKind.Name, null, "a filter name");
                CheckFilter(filter);
                ExpectBlockEnd("filter");
                var (body, _) = ParseBody(["endfilter"], begin, "filter");
                ExpectBlockEnd("endfilter");
                return new BlockNode(filter.Value, body, begin.Line, begin.Column);
            }
            default:
                if (Unsupported.Contains(name.Value))
                {
                    throw Error(name, $"'{{% {name.Value} %}}' is not supported by this Jinja subset (chat templates need none of call, include, import, extends, block, with)");
                }
                if (name.Value.StartsWith("end", StringComparison.Ordinal) || name.Value is "elif" or "else")
                {
                    throw Error(name, $"unexpected '{{% {name.Value} %}}': no open block it could close or continue");
                }
                throw Error(name, $"unknown tag '{name.Value}'");
        }
    }

    private IfNode ParseIf(JinjaToken begin)
    {
        var branches = new List<(JinjaExpr, IReadOnlyList<JinjaNode>)>();
        JinjaExpr condition = ParseExpression();
        ExpectBlockEnd("if");
        while (true)
        {
            var (body, end) = ParseBody(["elif", "else", "endif"], begin, "if");
            branches.Add((condition, body));
            if (end == "elif")
            {
                condition = ParseExpression();
                ExpectBlockEnd("elif");
                continue;
            }
            if (end == "else")
            {
                ExpectBlockEnd("else");
                var (elseBody, _) = ParseBody(["endif"], begin, "if");
                ExpectBlockEnd("endif");
                return new IfNode(branches, elseBody, begin.Line, begin.Column);
            }
            ExpectBlockEnd("endif");
            return new IfNode(branches, null, begin.Line, begin.Column);
        }
    }

    private ForNode ParseFor(JinjaToken begin)
    {
        var targets = new List<string> { Expect(JinjaTokenKind.Name, null, "a loop variable").Value };
        while (Current.IsOperator(","))
        {
            _i++;
            targets.Add(Expect(JinjaTokenKind.Name, null, "a loop variable").Value);
        }
        Expect(JinjaTokenKind.Name, "in", "'in'");
        // The iterable is parsed without a conditional: an 'if' after it filters the items.
        JinjaExpr items = ParseOr();
        JinjaExpr? filter = null;
        if (Current.IsName("if"))
        {
            _i++;
            filter = ParseOr();
        }
        if (Current.IsName("recursive"))
        {
            throw Error(Current, "recursive loops are not supported by this Jinja subset");
        }
        ExpectBlockEnd("for");
        var (body, end) = ParseBody(["else", "endfor"], begin, "for");
        List<JinjaNode>? elseBody = null;
        if (end == "else")
        {
            ExpectBlockEnd("else");
            (elseBody, _) = ParseBody(["endfor"], begin, "for");
        }
        ExpectBlockEnd("endfor");
        return new ForNode(targets, items, filter, body, elseBody, begin.Line, begin.Column);
    }

    private JinjaNode ParseSet(JinjaToken begin)
    {
        var targets = new List<string> { Expect(JinjaTokenKind.Name, null, "a variable name").Value };
        string? attribute = null;
        if (Current.IsOperator("."))
        {
            _i++;
            attribute = Expect(JinjaTokenKind.Name, null, "an attribute name").Value;
        }
        while (attribute is null && Current.IsOperator(","))
        {
            _i++;
            targets.Add(Expect(JinjaTokenKind.Name, null, "a variable name").Value);
        }
        if (Current.Kind == JinjaTokenKind.BlockEnd && attribute is null && targets.Count == 1)
        {
            _i++;
            var (body, _) = ParseBody(["endset"], begin, "set");
            ExpectBlockEnd("endset");
            return new SetBlockNode(targets[0], body, begin.Line, begin.Column);
        }
        Expect(JinjaTokenKind.Operator, "=", "'=' in 'set'");
        JinjaExpr value = ParseTupleOrExpression();
        ExpectBlockEnd("set");
        return new SetNode(targets, attribute, value, begin.Line, begin.Column);
    }

    private MacroNode ParseMacro(JinjaToken begin)
    {
        string name = Expect(JinjaTokenKind.Name, null, "a macro name").Value;
        Expect(JinjaTokenKind.Operator, "(", "'(' after the macro name");
        var parameters = new List<(string, JinjaExpr?)>();
        while (!Current.IsOperator(")"))
        {
            if (parameters.Count > 0)
            {
                Expect(JinjaTokenKind.Operator, ",", "',' between macro parameters");
            }
            string parameter = Expect(JinjaTokenKind.Name, null, "a parameter name").Value;
            JinjaExpr? fallback = null;
            if (Current.IsOperator("="))
            {
                _i++;
                fallback = ParseExpression();
            }
            parameters.Add((parameter, fallback));
        }
        _i++;
        ExpectBlockEnd("macro");
        var (body, _) = ParseBody(["endmacro"], begin, "macro");
        ExpectBlockEnd("endmacro");
        return new MacroNode(name, parameters, body, begin.Line, begin.Column);
    }

    private JinjaExpr ParseTupleOrExpression()
    {
        JinjaToken start = Current;
        JinjaExpr first = ParseExpression();
        if (!Current.IsOperator(","))
        {
            return first;
        }
        var items = new List<JinjaExpr> { first };
        while (Current.IsOperator(","))
        {
            _i++;
            items.Add(ParseExpression());
        }
        return new ListExpr(items, true, start.Line, start.Column);
    }

    private JinjaExpr ParseExpression()
    {
        JinjaExpr value = ParseOr();
        while (Current.IsName("if"))
        {
            JinjaToken token = Next();
            JinjaExpr condition = ParseOr();
            JinjaExpr? otherwise = null;
            if (Current.IsName("else"))
            {
                _i++;
                otherwise = ParseExpression();
            }
            value = new ConditionalExpr(condition, value, otherwise, token.Line, token.Column);
        }
        return value;
    }

    private JinjaExpr ParseOr()
    {
        JinjaExpr left = ParseAnd();
        while (Current.IsName("or"))
        {
            JinjaToken token = Next();
            left = new BinaryExpr("or", left, ParseAnd(), token.Line, token.Column);
        }
        return left;
    }

    private JinjaExpr ParseAnd()
    {
        JinjaExpr left = ParseNot();
        while (Current.IsName("and"))
        {
            JinjaToken token = Next();
            left = new BinaryExpr("and", left, ParseNot(), token.Line, token.Column);
        }
        return left;
    }

    private JinjaExpr ParseNot()
    {
        if (Current.IsName("not"))
        {
            JinjaToken token = Next();
            return new UnaryExpr("not", ParseNot(), token.Line, token.Column);
        }
        return ParseCompare();
    }

    private JinjaExpr ParseCompare()
    {
        JinjaExpr left = ParseMath1();
        JinjaExpr? result = null;
        while (true)
        {
            JinjaToken token = Current;
            string? op = token.Kind == JinjaTokenKind.Operator && token.Value is "==" or "!=" or "<" or "<=" or ">" or ">=" ? token.Value
                : token.IsName("in") ? "in"
                : token.IsName("not") && _tokens[_i + 1].IsName("in") ? "not in"
                : null;
            if (op is null)
            {
                return result ?? left;
            }
            _i += op == "not in" ? 2 : 1;
            JinjaExpr right = ParseMath1();
            // a < b < c means a < b and b < c, as in Python.
            var comparison = new BinaryExpr(op, left, right, token.Line, token.Column);
            result = result is null ? comparison : new BinaryExpr("and", result, comparison, token.Line, token.Column);
            left = right;
        }
    }

    private JinjaExpr ParseMath1()
    {
        JinjaExpr left = ParseConcat();
        while (Current.Kind == JinjaTokenKind.Operator && Current.Value is "+" or "-")
        {
            JinjaToken token = Next();
            left = new BinaryExpr(token.Value, left, ParseConcat(), token.Line, token.Column);
        }
        return left;
    }

    private JinjaExpr ParseConcat()
    {
        JinjaExpr left = ParseMath2();
        while (Current.IsOperator("~"))
        {
            JinjaToken token = Next();
            left = new BinaryExpr("~", left, ParseMath2(), token.Line, token.Column);
        }
        return left;
    }

    private JinjaExpr ParseMath2()
    {
        JinjaExpr left = ParsePow();
        while (Current.Kind == JinjaTokenKind.Operator && Current.Value is "*" or "/" or "//" or "%")
        {
            JinjaToken token = Next();
            left = new BinaryExpr(token.Value, left, ParsePow(), token.Line, token.Column);
        }
        return left;
    }

    private JinjaExpr ParsePow()
    {
        JinjaExpr left = ParseUnary(withFilter: true);
        while (Current.IsOperator("**"))
        {
            JinjaToken token = Next();
            left = new BinaryExpr("**", left, ParseUnary(withFilter: true), token.Line, token.Column);
        }
        return left;
    }

    private JinjaExpr ParseUnary(bool withFilter)
    {
        JinjaToken token = Current;
        JinjaExpr node;
        if (token.Kind == JinjaTokenKind.Operator && token.Value is "-" or "+")
        {
            _i++;
            node = new UnaryExpr(token.Value, ParseUnary(withFilter: false), token.Line, token.Column);
        }
        else
        {
            node = ParsePostfix(ParsePrimary());
        }
        return withFilter ? ParseFilters(node) : node;
    }

    private JinjaExpr ParsePrimary()
    {
        JinjaToken token = Next();
        switch (token.Kind)
        {
            case JinjaTokenKind.Name:
                return token.Value switch
                {
                    "true" or "True" => new LiteralExpr(true, token.Line, token.Column),
                    "false" or "False" => new LiteralExpr(false, token.Line, token.Column),
                    "none" or "None" => new LiteralExpr(null, token.Line, token.Column),
                    _ => new NameExpr(token.Value, token.Line, token.Column),
                };
            case JinjaTokenKind.String:
                string text = token.Value;
                // Adjacent string literals are one string, as in Python.
                while (Current.Kind == JinjaTokenKind.String)
                {
                    text += Next().Value;
                }
                return new LiteralExpr(text, token.Line, token.Column);
            case JinjaTokenKind.Integer:
                return long.TryParse(token.Value, NumberStyles.None, CultureInfo.InvariantCulture, out long integer)
                    ? new LiteralExpr(integer, token.Line, token.Column)
                    : throw Error(token, $"integer {token.Value} is too large");
            case JinjaTokenKind.Float:
                return new LiteralExpr(double.Parse(token.Value, NumberStyles.Float, CultureInfo.InvariantCulture), token.Line, token.Column);
            case JinjaTokenKind.Operator when token.Value == "(":
            {
                if (Current.IsOperator(")"))
                {
                    _i++;
                    return new ListExpr([], true, token.Line, token.Column);
                }
                JinjaExpr first = ParseExpression();
                if (Current.IsOperator(")"))
                {
                    _i++;
                    return first;
                }
                var items = new List<JinjaExpr> { first };
                while (Current.IsOperator(","))
                {
                    _i++;
                    if (Current.IsOperator(")"))
                    {
                        break;
                    }
                    items.Add(ParseExpression());
                }
                Expect(JinjaTokenKind.Operator, ")", "')' to close '('");
                return new ListExpr(items, true, token.Line, token.Column);
            }
            case JinjaTokenKind.Operator when token.Value == "[":
            {
                var items = new List<JinjaExpr>();
                while (!Current.IsOperator("]"))
                {
                    if (items.Count > 0)
                    {
                        Expect(JinjaTokenKind.Operator, ",", "',' or ']' in the list");
                        if (Current.IsOperator("]"))
                        {
                            break;
                        }
                    }
                    items.Add(ParseExpression());
                }
                _i++;
                return new ListExpr(items, false, token.Line, token.Column);
            }
            case JinjaTokenKind.Operator when token.Value == "{":
            {
                var items = new List<(JinjaExpr, JinjaExpr)>();
                while (!Current.IsOperator("}"))
                {
                    if (items.Count > 0)
                    {
                        Expect(JinjaTokenKind.Operator, ",", "',' or '}' in the dict");
                        if (Current.IsOperator("}"))
                        {
                            break;
                        }
                    }
                    JinjaExpr key = ParseExpression();
                    Expect(JinjaTokenKind.Operator, ":", "':' after a dict key");
                    items.Add((key, ParseExpression()));
                }
                _i++;
                return new DictExpr(items, token.Line, token.Column);
            }
            default:
                throw Error(token, $"expected a value, found {token.Describe()}");
        }
    }

    private JinjaExpr ParsePostfix(JinjaExpr node)
    {
        while (true)
        {
            JinjaToken token = Current;
            if (token.IsOperator("."))
            {
                _i++;
                JinjaToken name = Next();
                node = name.Kind switch
                {
                    JinjaTokenKind.Name => new AttributeExpr(node, name.Value, token.Line, token.Column),
                    JinjaTokenKind.Integer => new ItemExpr(node, new LiteralExpr(long.Parse(name.Value, CultureInfo.InvariantCulture), name.Line, name.Column), token.Line, token.Column),
                    _ => throw Error(name, $"expected an attribute name after '.', found {name.Describe()}"),
                };
            }
            else if (token.IsOperator("["))
            {
                _i++;
                node = ParseSubscript(node, token);
            }
            else if (token.IsOperator("("))
            {
                _i++;
                // A call is reported where its callee starts: raise_exception(...) at 'raise_exception'.
                node = new CallExpr(node, ParseArguments(), node.Line, node.Column);
            }
            else
            {
                return node;
            }
        }
    }

    private JinjaExpr ParseSubscript(JinjaExpr target, JinjaToken open)
    {
        JinjaExpr? start = Current.IsOperator(":") ? null : ParseExpression();
        if (!Current.IsOperator(":"))
        {
            Expect(JinjaTokenKind.Operator, "]", "']' to close '['");
            return new ItemExpr(target, start!, open.Line, open.Column);
        }
        _i++;
        JinjaExpr? stop = Current.IsOperator(":") || Current.IsOperator("]") ? null : ParseExpression();
        JinjaExpr? step = null;
        if (Current.IsOperator(":"))
        {
            _i++;
            step = Current.IsOperator("]") ? null : ParseExpression();
        }
        Expect(JinjaTokenKind.Operator, "]", "']' to close the slice");
        return new SliceExpr(target, start, stop, step, open.Line, open.Column);
    }

    /// <summary>Arguments after '(' up to and including ')'.</summary>
    private JinjaArguments ParseArguments()
    {
        var positional = new List<JinjaExpr>();
        var keywords = new List<(string, JinjaExpr)>();
        while (!Current.IsOperator(")"))
        {
            if (positional.Count + keywords.Count > 0)
            {
                Expect(JinjaTokenKind.Operator, ",", "',' or ')' in the arguments");
                if (Current.IsOperator(")"))
                {
                    break;
                }
            }
            if (Current.Kind == JinjaTokenKind.Name && _tokens[_i + 1].IsOperator("="))
            {
                string name = Next().Value;
                _i++;
                keywords.Add((name, ParseExpression()));
            }
            else if (keywords.Count > 0)
            {
                throw Error(Current, "a positional argument follows a keyword argument");
            }
            else
            {
                positional.Add(ParseExpression());
            }
        }
        _i++;
        return new JinjaArguments(positional, keywords);
    }

    private JinjaExpr ParseFilters(JinjaExpr node)
    {
        while (true)
        {
            JinjaToken token = Current;
            if (token.IsOperator("|"))
            {
                _i++;
                JinjaToken name = Expect(JinjaTokenKind.Name, null, "a filter name after '|'");
                CheckFilter(name);
                JinjaArguments arguments = JinjaArguments.None;
                if (Current.IsOperator("("))
                {
                    _i++;
                    arguments = ParseArguments();
                }
                node = new FilterExpr(node, name.Value, arguments, name.Line, name.Column);
            }
            else if (token.IsName("is"))
            {
                _i++;
                bool negated = false;
                if (Current.IsName("not"))
                {
                    _i++;
                    negated = true;
                }
                JinjaToken name = Current;
                string test;
                if (name.Kind == JinjaTokenKind.Name)
                {
                    test = name.Value;
                }
                else if (name.Kind == JinjaTokenKind.Operator && name.Value is "==" or "!=" or "<" or "<=" or ">" or ">=")
                {
                    test = name.Value;
                }
                else
                {
                    throw Error(name, $"expected a test name after 'is', found {name.Describe()}");
                }
                _i++;
                if (!JinjaTests.IsKnown(test))
                {
                    throw Error(name, $"unknown test '{test}'");
                }
                JinjaArguments arguments = JinjaArguments.None;
                JinjaToken after = Current;
                if (after.IsOperator("("))
                {
                    _i++;
                    arguments = ParseArguments();
                }
                else if (after.Kind is JinjaTokenKind.String or JinjaTokenKind.Integer or JinjaTokenKind.Float
                    || (after.Kind == JinjaTokenKind.Operator && after.Value is "[" or "{")
                    || (after.Kind == JinjaTokenKind.Name && after.Value is not ("else" or "or" or "and" or "if" or "in" or "not" or "is")))
                {
                    arguments = new JinjaArguments([ParsePostfix(ParsePrimary())], []);
                }
                node = new TestExpr(node, test, arguments, negated, name.Line, name.Column);
            }
            else
            {
                return node;
            }
        }
    }

    private void CheckFilter(JinjaToken name)
    {
        if (!JinjaFilters.IsKnown(name.Value))
        {
            throw Error(name, $"unknown filter '{name.Value}'");
        }
    }
}
