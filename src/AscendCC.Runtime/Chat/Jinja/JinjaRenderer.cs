using System.Text;

namespace AscendCC.Runtime.Chat.Jinja;

/// <summary>
/// Runs a parsed template: statements write to the output, expressions evaluate with Python's
/// semantics (<see cref="JinjaValue"/>). Scopes follow Jinja: a for loop's body and a macro have their
/// own variables (which is why templates use <c>namespace()</c> to carry state out of a loop), an if
/// does not. Errors name the line and column of the innermost expression that failed.
/// </summary>
internal sealed class JinjaRenderer
{
    private enum Flow
    {
        Normal,
        Break,
        Continue,
    }

    private readonly string _source;
    private List<Dictionary<string, object?>> _frames;

    private JinjaRenderer(string source, Dictionary<string, object?> globals)
    {
        _source = source;
        _frames = [globals];
    }

    /// <summary>Renders <paramref name="body"/> with <paramref name="variables"/> (already template values).</summary>
    public static string Render(IReadOnlyList<JinjaNode> body, Dictionary<string, object?> variables, string source)
    {
        var renderer = new JinjaRenderer(source, variables);
        var output = new StringBuilder();
        if (renderer.Execute(body, output) != Flow.Normal)
        {
            throw new ChatTemplateException(source, 0, 0, "'break' or 'continue' outside a loop");
        }
        return output.ToString();
    }

    private ChatTemplateException Error(JinjaNode node, string problem) => new(_source, node.Line, node.Column, problem);

    private Flow Execute(IReadOnlyList<JinjaNode> nodes, StringBuilder output)
    {
        foreach (JinjaNode node in nodes)
        {
            Flow flow = ExecuteNode(node, output);
            if (flow != Flow.Normal)
            {
                return flow;
            }
        }
        return Flow.Normal;
    }

    private Flow ExecuteNode(JinjaNode node, StringBuilder output)
    {
        switch (node)
        {
            case TextNode text:
                output.Append(text.Text);
                return Flow.Normal;
            case OutputNode print:
                output.Append(JinjaValue.ToStr(Evaluate(print.Value)));
                return Flow.Normal;
            case IfNode conditional:
                foreach (var (condition, body) in conditional.Branches)
                {
                    if (JinjaValue.Truthy(Evaluate(condition)))
                    {
                        return Execute(body, output);
                    }
                }
                return conditional.Else is null ? Flow.Normal : Execute(conditional.Else, output);
            case ForNode loop:
                ExecuteFor(loop, output);
                return Flow.Normal;
            case SetNode set:
                ExecuteSet(set);
                return Flow.Normal;
            case SetBlockNode setBlock:
            {
                var captured = new StringBuilder();
                Flow flow = Execute(setBlock.Body, captured);
                _frames[^1][setBlock.Target] = captured.ToString();
                return flow;
            }
            case MacroNode macro:
                _frames[^1][macro.Name] = DefineMacro(macro);
                return Flow.Normal;
            case LoopControlNode control:
                return control.IsBreak ? Flow.Break : Flow.Continue;
            case BlockNode block when block.Filter is null:
                return Execute(block.Body, output);
            case BlockNode block:
            {
                var captured = new StringBuilder();
                Flow flow = Execute(block.Body, captured);
                output.Append(JinjaValue.ToStr(Wrap(block, () => JinjaFilters.Apply(block.Filter!, captured.ToString(), [], new Dictionary<string, object?>()))));
                return flow;
            }
            default:
                throw Error(node, $"cannot run a {node.GetType().Name}");
        }
    }

    private void ExecuteFor(ForNode loop, StringBuilder output)
    {
        IReadOnlyList<object?> source = Wrap(loop.Items, () => JinjaValue.Iterate(Evaluate(loop.Items)));
        var frame = new Dictionary<string, object?>(StringComparer.Ordinal);
        _frames.Add(frame);
        try
        {
            List<object?> items;
            if (loop.Filter is null)
            {
                items = source as List<object?> ?? source.ToList();
            }
            else
            {
                // The filter sees each item under the loop's names; loop.* counts only the items it keeps.
                items = [];
                foreach (object? item in source)
                {
                    Bind(loop, frame, item);
                    if (JinjaValue.Truthy(Evaluate(loop.Filter)))
                    {
                        items.Add(item);
                    }
                }
            }
            if (items.Count == 0)
            {
                if (loop.Else is not null)
                {
                    Execute(loop.Else, output);
                }
                return;
            }
            var info = new JinjaLoop(items);
            frame["loop"] = info;
            for (int i = 0; i < items.Count; i++)
            {
                info.Index0 = i;
                Bind(loop, frame, items[i]);
                if (Execute(loop.Body, output) == Flow.Break)
                {
                    break;
                }
            }
        }
        finally
        {
            _frames.RemoveAt(_frames.Count - 1);
        }
    }

    private void Bind(ForNode loop, Dictionary<string, object?> frame, object? item)
    {
        if (loop.Targets.Count == 1)
        {
            frame[loop.Targets[0]] = item;
            return;
        }
        IReadOnlyList<object?> parts = Wrap(loop, () => JinjaValue.Iterate(item));
        if (parts.Count != loop.Targets.Count)
        {
            throw Error(loop, $"cannot unpack {parts.Count} values into {loop.Targets.Count} loop variables ({string.Join(", ", loop.Targets)})");
        }
        for (int i = 0; i < parts.Count; i++)
        {
            frame[loop.Targets[i]] = parts[i];
        }
    }

    private void ExecuteSet(SetNode set)
    {
        object? value = Evaluate(set.Value);
        if (set.Attribute is { } attribute)
        {
            if (Lookup(set.Targets[0]) is not JinjaNamespace ns)
            {
                throw Error(set, $"cannot assign attribute '{attribute}' on '{set.Targets[0]}': it is not a namespace() object");
            }
            ns.Values[attribute] = value;
            return;
        }
        if (set.Targets.Count == 1)
        {
            _frames[^1][set.Targets[0]] = value;
            return;
        }
        IReadOnlyList<object?> parts = Wrap(set, () => JinjaValue.Iterate(value));
        if (parts.Count != set.Targets.Count)
        {
            throw Error(set, $"cannot unpack {parts.Count} values into {set.Targets.Count} names ({string.Join(", ", set.Targets)})");
        }
        for (int i = 0; i < parts.Count; i++)
        {
            _frames[^1][set.Targets[i]] = parts[i];
        }
    }

    private JinjaFunction DefineMacro(MacroNode macro) => new(macro.Name, (args, kwargs) =>
    {
        if (args.Count > macro.Parameters.Count)
        {
            throw new JinjaError($"macro '{macro.Name}' takes {macro.Parameters.Count} arguments, {args.Count} given");
        }
        var frame = new Dictionary<string, object?>(StringComparer.Ordinal);
        for (int i = 0; i < macro.Parameters.Count; i++)
        {
            var (name, fallback) = macro.Parameters[i];
            frame[name] = i < args.Count ? args[i]
                : kwargs.TryGetValue(name, out object? given) ? given
                : fallback is null ? JinjaUndefined.Named(name)
                : Evaluate(fallback);
        }
        foreach (string key in kwargs.Keys)
        {
            if (!macro.Parameters.Any(p => p.Name == key))
            {
                throw new JinjaError($"macro '{macro.Name}' takes no keyword argument '{key}'");
            }
        }
        // A macro sees the template's top-level names and its parameters, not its caller's locals.
        List<Dictionary<string, object?>> saved = _frames;
        _frames = [saved[0], frame];
        try
        {
            var output = new StringBuilder();
            Execute(macro.Body, output);
            return output.ToString();
        }
        finally
        {
            _frames = saved;
        }
    });

    private object? Lookup(string name)
    {
        for (int i = _frames.Count - 1; i >= 0; i--)
        {
            if (_frames[i].TryGetValue(name, out object? value))
            {
                return value;
            }
        }
        return JinjaUndefined.Named(name);
    }

    /// <summary>Runs <paramref name="body"/>, giving an error without a position the position of <paramref name="node"/>.</summary>
    private T Wrap<T>(JinjaNode node, Func<T> body)
    {
        try
        {
            return body();
        }
        catch (JinjaError e)
        {
            throw new ChatTemplateException(_source, node.Line, node.Column, e.Message);
        }
    }

    private T Wrap<T>(JinjaExpr expr, Func<T> body)
    {
        try
        {
            return body();
        }
        catch (JinjaError e)
        {
            throw new ChatTemplateException(_source, expr.Line, expr.Column, e.Message);
        }
        catch (JinjaRaise r)
        {
            throw new ChatTemplateRaisedException(_source, expr.Line, expr.Column, r.Message);
        }
    }

    private object? Evaluate(JinjaExpr expr) => Wrap(expr, () => EvaluateCore(expr));

    private object? EvaluateCore(JinjaExpr expr)
    {
        switch (expr)
        {
            case LiteralExpr literal:
                return literal.Value;
            case NameExpr name:
                return Lookup(name.Name);
            case ListExpr list:
            {
                var items = list.Items.Select(Evaluate).ToList();
                return list.IsTuple ? new JinjaTuple(items) : items;
            }
            case DictExpr dict:
            {
                var result = new Dictionary<string, object?>(StringComparer.Ordinal);
                foreach (var (key, value) in dict.Items)
                {
                    result[JinjaValue.ToStr(Evaluate(key))] = Evaluate(value);
                }
                return result;
            }
            case AttributeExpr attribute:
                return JinjaMethods.GetAttribute(Evaluate(attribute.Target), attribute.Name);
            case ItemExpr item:
                return JinjaMethods.GetItem(Evaluate(item.Target), Evaluate(item.Index));
            case SliceExpr slice:
                return JinjaMethods.Slice(Evaluate(slice.Target), EvaluateOptional(slice.Start), EvaluateOptional(slice.Stop), EvaluateOptional(slice.Step));
            case CallExpr call:
            {
                object? function = Evaluate(call.Function);
                var (positional, keywords) = EvaluateArguments(call.Arguments);
                return function switch
                {
                    JinjaFunction f => f.Invoke(positional, keywords),
                    JinjaUndefined u => throw new JinjaError(u.Description),
                    _ => throw new JinjaError($"'{JinjaValue.TypeName(function)}' object is not callable"),
                };
            }
            case FilterExpr filter:
            {
                object? value = Evaluate(filter.Value);
                var (positional, keywords) = EvaluateArguments(filter.Arguments);
                return JinjaFilters.Apply(filter.Name, value, positional, keywords);
            }
            case TestExpr test:
            {
                object? value = Evaluate(test.Value);
                var (positional, _) = EvaluateArguments(test.Arguments);
                return JinjaTests.Run(test.Name, value, positional) != test.Negated;
            }
            case UnaryExpr unary:
            {
                object? operand = Evaluate(unary.Operand);
                return unary.Operator switch
                {
                    "not" => !JinjaValue.Truthy(operand),
                    "-" => operand switch
                    {
                        double d => (object)(-d),
                        long or bool => -JinjaValue.ToLong(operand),
                        JinjaUndefined u => throw new JinjaError(u.Description),
                        _ => throw new JinjaError($"bad operand type for unary -: '{JinjaValue.TypeName(operand)}'"),
                    },
                    _ => JinjaValue.IsNumber(operand) ? operand is double ? operand : (object)JinjaValue.ToLong(operand)
                        : throw new JinjaError(operand is JinjaUndefined u ? u.Description : $"bad operand type for unary +: '{JinjaValue.TypeName(operand)}'"),
                };
            }
            case BinaryExpr binary:
                return EvaluateBinary(binary);
            case ConditionalExpr conditional:
                return JinjaValue.Truthy(Evaluate(conditional.Condition)) ? Evaluate(conditional.Then)
                    : conditional.Otherwise is null ? new JinjaUndefined("the conditional expression has no else branch") : Evaluate(conditional.Otherwise);
            default:
                throw new JinjaError($"cannot evaluate a {expr.GetType().Name}");
        }
    }

    private object? EvaluateOptional(JinjaExpr? expr) => expr is null ? null : Evaluate(expr);

    private (List<object?> Positional, Dictionary<string, object?> Keywords) EvaluateArguments(JinjaArguments arguments)
    {
        var positional = arguments.Positional.Select(Evaluate).ToList();
        var keywords = new Dictionary<string, object?>(StringComparer.Ordinal);
        foreach (var (name, value) in arguments.Keywords)
        {
            keywords[name] = Evaluate(value);
        }
        return (positional, keywords);
    }

    private object? EvaluateBinary(BinaryExpr binary)
    {
        object? left = Evaluate(binary.Left);
        switch (binary.Operator)
        {
            case "and":
                return JinjaValue.Truthy(left) ? Evaluate(binary.Right) : left;
            case "or":
                return JinjaValue.Truthy(left) ? left : Evaluate(binary.Right);
        }
        object? right = Evaluate(binary.Right);
        switch (binary.Operator)
        {
            case "==": return JinjaValue.PyEquals(left, right);
            case "!=": return !JinjaValue.PyEquals(left, right);
            case "<": return JinjaValue.Compare(left, right, "<") < 0;
            case "<=": return JinjaValue.Compare(left, right, "<=") <= 0;
            case ">": return JinjaValue.Compare(left, right, ">") > 0;
            case ">=": return JinjaValue.Compare(left, right, ">=") >= 0;
            case "in": return JinjaValue.Contains(right, left);
            case "not in": return !JinjaValue.Contains(right, left);
            case "~": return JinjaValue.ToStr(left) + JinjaValue.ToStr(right);
        }
        if (left is JinjaUndefined lu)
        {
            throw new JinjaError(lu.Description);
        }
        if (right is JinjaUndefined ru)
        {
            throw new JinjaError(ru.Description);
        }
        string op = binary.Operator;
        if (op == "+")
        {
            switch (left)
            {
                case string ls when right is string rs:
                    return ls + rs;
                case List<object?> ll when right is List<object?> rl:
                    return ll.Concat(rl).ToList();
                case JinjaTuple lt when right is JinjaTuple rt:
                    return new JinjaTuple(lt.Concat(rt).ToList());
            }
        }
        if (op == "*" && (left is string or List<object?>) && right is long or bool)
        {
            return Repeat(left, JinjaValue.ToLong(right));
        }
        if (op == "*" && (right is string or List<object?>) && left is long or bool)
        {
            return Repeat(right, JinjaValue.ToLong(left));
        }
        if (!JinjaValue.IsNumber(left) || !JinjaValue.IsNumber(right))
        {
            throw new JinjaError($"unsupported operand types for {op}: '{JinjaValue.TypeName(left)}' and '{JinjaValue.TypeName(right)}'");
        }
        bool floating = left is double || right is double;
        switch (op)
        {
            case "+": return floating ? JinjaValue.ToDouble(left) + JinjaValue.ToDouble(right) : (object)(JinjaValue.ToLong(left) + JinjaValue.ToLong(right));
            case "-": return floating ? JinjaValue.ToDouble(left) - JinjaValue.ToDouble(right) : (object)(JinjaValue.ToLong(left) - JinjaValue.ToLong(right));
            case "*": return floating ? JinjaValue.ToDouble(left) * JinjaValue.ToDouble(right) : (object)(JinjaValue.ToLong(left) * JinjaValue.ToLong(right));
            case "/":
                return JinjaValue.ToDouble(right) == 0 ? throw new JinjaError("division by zero") : JinjaValue.ToDouble(left) / JinjaValue.ToDouble(right);
            case "//":
                if (JinjaValue.ToDouble(right) == 0)
                {
                    throw new JinjaError("integer division or modulo by zero");
                }
                return floating ? Math.Floor(JinjaValue.ToDouble(left) / JinjaValue.ToDouble(right)) : (object)FloorDiv(JinjaValue.ToLong(left), JinjaValue.ToLong(right));
            case "%":
                if (JinjaValue.ToDouble(right) == 0)
                {
                    throw new JinjaError("integer division or modulo by zero");
                }
                if (floating)
                {
                    double a = JinjaValue.ToDouble(left), b = JinjaValue.ToDouble(right);
                    return (object)(a - (b * Math.Floor(a / b)));
                }
                long x = JinjaValue.ToLong(left), y = JinjaValue.ToLong(right);
                return x - (y * FloorDiv(x, y));
            default:
                return floating || JinjaValue.ToLong(right) < 0
                    ? Math.Pow(JinjaValue.ToDouble(left), JinjaValue.ToDouble(right))
                    : (object)(long)Math.Pow(JinjaValue.ToLong(left), JinjaValue.ToLong(right));
        }
    }

    private static long FloorDiv(long a, long b) => (a / b) - ((a % b != 0) && ((a < 0) != (b < 0)) ? 1 : 0);

    private static object Repeat(object value, long times)
    {
        if (times * (value is string s ? s.Length : ((List<object?>)value).Count) > 10_000_000)
        {
            throw new JinjaError("the repeated value would be too large");
        }
        return value is string text
            ? string.Concat(Enumerable.Repeat(text, (int)Math.Max(0, times)))
            : Enumerable.Repeat((List<object?>)value, (int)Math.Max(0, times)).SelectMany(l => l).ToList();
    }
}
