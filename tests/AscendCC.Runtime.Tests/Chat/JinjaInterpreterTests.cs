using AscendCC.Runtime.Chat;
using AscendCC.Runtime.Chat.Jinja;
using NUnit.Framework;

namespace AscendCC.Runtime.Tests.Chat;

/// <summary>Each construct of the Jinja subset, whitespace control as Hugging Face configures it, and errors with positions.</summary>
public class JinjaInterpreterTests
{
    private static string Render(string template, object? variables = null)
    {
        var scope = new Dictionary<string, object?>(StringComparer.Ordinal);
        if (variables is IDictionary<string, object?> given)
        {
            foreach (var (k, v) in given)
            {
                scope[k] = v;
            }
        }
        return JinjaTemplate.Parse(template, "t.jinja").Render(scope);
    }

    private static Dictionary<string, object?> Vars(params (string Name, object? Value)[] values) => values.ToDictionary(v => v.Name, v => v.Value);

    [TestCase("{{ 'a' ~ 1 ~ none }}", "a1None")]
    [TestCase("{{ 1 + 2 * 3 - 4 / 2 }}", "5.0")]
    [TestCase("{{ 7 // 2 }} {{ -7 // 2 }} {{ 7 % 3 }} {{ -7 % 3 }} {{ 2 ** 10 }}", "3 -4 1 2 1024")]
    [TestCase("{{ 'ab' + 'cd' }} {{ [1] + [2] }} {{ 'x' * 3 }}", "abcd [1, 2] xxx")]
    [TestCase("{{ 1 < 2 < 3 }} {{ 3 > 2 > 2 }} {{ 1 == 1.0 }} {{ 'a' != 'b' }}", "True False True True")]
    [TestCase("{{ 'b' in 'abc' }} {{ 2 not in [1, 2] }} {{ 'k' in {'k': 1} }}", "True False True")]
    [TestCase("{{ true and 'x' }} {{ false or 'y' }} {{ not none }} {{ 0 or [] or 'z' }}", "x y True z")]
    [TestCase("{{ 'yes' if 1 else 'no' }} {{ 'yes' if 0 else 'no' }}[{{ 'only' if false }}]", "yes no[]")]
    [TestCase("{{ [1, 2, 3][1:] }} {{ 'hello'[::-1] }} {{ [1, 2, 3][-1] }} {{ [1, 2, 3, 4][::2] }} {{ 'abc'[:-1] }}", "[2, 3] olleh 3 [1, 3] ab")]
    [TestCase("{{ {'a': 1}['a'] }} {{ {'a': {'b': 2}}.a.b }} {{ (1, 2) }} {{ {'k': 'v'} }}", "1 2 (1, 2) {'k': 'v'}")]
    [TestCase("{{ 1.5 }} {{ 2.0 }} {{ true }} {{ none }} {{ [none, \"it's\", 'a' 'b'] }}", "1.5 2.0 True None [None, \"it's\", 'ab']")]
    public void ExpressionsFollowPython(string template, string expected) => Assert.That(Render(template), Is.EqualTo(expected));

    [TestCase("{{ '  x  ' | trim }}|{{ 'Ab' | upper }}{{ 'Ab' | lower }}|{{ [1, 2] | length }}{{ 'abc' | count }}", "x|ABab|23")]
    [TestCase("{{ missing | default('d') }} {{ '' | default('e', true) }} {{ 'v' | d('x') }}", "d e v")]
    [TestCase("{{ [3, 4] | first }}{{ [3, 4] | last }} {{ ['a', 'b'] | join(', ') }} {{ 'hello world' | capitalize }} {{ 'hello wORLD' | title }}", "34 a, b Hello world Hello World")]
    [TestCase("{{ 'a-b-c' | replace('-', '+') }} {{ 'a-b-c' | replace('-', '+', 1) }} {{ 3 | string }} {{ '42' | int + 1 }} {{ 'x' | int }}", "a+b+c a+b-c 3 43 0")]
    [TestCase("{% for k, v in {'a': 1, 'b': 2} | items %}{{ k }}={{ v }};{% endfor %}", "a=1;b=2;")]
    [TestCase("{{ {'b': [1, 'é', none, true, 1.5]} | tojson }}", "{\"b\": [1, \"é\", null, true, 1.5]}")]
    [TestCase("{{ {'a': 1, 'b': [2]} | tojson(indent=2) }}", "{\n  \"a\": 1,\n  \"b\": [\n    2\n  ]\n}")]
    [TestCase("{{ msgs | selectattr('role', 'equalto', 'user') | map(attribute='content') | join('|') }}", "u1|u2")]
    [TestCase("{{ msgs | rejectattr('role', 'equalto', 'user') | list | length }} {{ ['a', 'code', 'b'] | reject('equalto', 'code') | join(',') }}", "1 a,b")]
    [TestCase("{{ 'a\nb' | indent(2) }}|{{ [1, 2, 2, 1] | unique | list }}|{{ [3, 1, 2] | sort }}|{{ [1, 2] | reverse | list }}", "a\n  b|[1, 2]|[1, 2, 3]|[2, 1]")]
    public void Filters(string template, string expected)
    {
        var msgs = new List<object?> { new ChatTurn("user", "u1"), new ChatTurn("assistant", "a1"), new ChatTurn("user", "u2") };
        Assert.That(Render(template, Vars(("msgs", msgs))), Is.EqualTo(expected));
    }

    [TestCase("{{ x is defined }}{{ y is defined }}{{ y is undefined }}{{ n is none }}{{ x is not none }}", "TrueFalseTrueTrueTrue")]
    [TestCase("{{ 'a' is string }}{{ d is mapping }}{{ l is iterable }}{{ 'a' is iterable }}{{ l is sequence }}{{ d is string }}", "TrueTrueTrueTrueTrueFalse")]
    [TestCase("{{ 1 is number }}{{ 1.5 is number }}{{ true is boolean }}{{ 1 is boolean }}{{ 1 is integer }}{{ 1.0 is float }}", "TrueTrueTrueFalseTrueTrue")]
    [TestCase("{{ 3 is odd }}{{ 4 is even }}{{ 9 is divisibleby 3 }}{{ 'a' is equalto 'a' }}{{ 2 is == 2 }}{{ 1 is in [1] }}", "TrueTrueTrueTrueTrueTrue")]
    public void Tests(string template, string expected) =>
        Assert.That(Render(template, Vars(("x", 1L), ("n", null), ("d", new Dictionary<string, object?>()), ("l", new List<object?>()))), Is.EqualTo(expected));

    [TestCase("{{ ' a b '.strip() }}|{{ 'xxaxx'.lstrip('x') }}|{{ 'xxaxx'.rstrip('x') }}|{{ 'abc'.startswith('ab') }}{{ 'abc'.endswith(('x', 'c')) }}", "a b|axx|xxa|TrueTrue")]
    [TestCase("{{ 'a b  c'.split() }} {{ 'a,b'.split(',') }} {{ 'hello world'.title() }} {{ 'Ab'.lower() }}{{ 'Ab'.upper() }} {{ 'aa'.replace('a', 'b') }}", "['a', 'b', 'c'] ['a', 'b'] Hello World abAB bb")]
    [TestCase("{{ d.get('k') }} {{ d.get('z', 'no') }} {{ d.items() | list }} {{ d.keys() | list }} {{ d['k'] }} {{ d.k }}", "v no [('k', 'v')] ['k'] v v")]
    public void StringAndDictMethods(string template, string expected) =>
        Assert.That(Render(template, Vars(("d", new Dictionary<string, object?> { ["k"] = "v" }))), Is.EqualTo(expected));

    [Test]
    public void ForLoopsExposeLoopAndFilterAndElseAndLoopControls()
    {
        Assert.That(Render("{% for x in items %}{{ loop.index0 }}{{ loop.index }}{{ loop.first }}{{ loop.last }}{{ loop.length }};{% endfor %}", Vars(("items", new[] { "a", "b" }))),
            Is.EqualTo("01TrueFalse2;12FalseTrue2;"));
        Assert.That(Render("{% for x in [1, 2, 3, 4] if x is even %}{{ x }}{{ loop.last }}{% endfor %}"), Is.EqualTo("2False4True"));
        Assert.That(Render("{% for x in [] %}x{% else %}empty{% endfor %}"), Is.EqualTo("empty"));
        Assert.That(Render("{% for x in [1, 2, 3, 4] %}{% if x == 2 %}{% continue %}{% endif %}{% if x == 4 %}{% break %}{% endif %}{{ x }}{% endfor %}"), Is.EqualTo("13"));
        Assert.That(Render("{% for x in undefined_list %}x{% endfor %}ok"), Is.EqualTo("ok"), "an undefined iterates as empty");
        Assert.That(Render("{% for i in range(3) %}{{ i }}{% endfor %}{% for i in range(1, 7, 2) %}{{ i }}{% endfor %}"), Is.EqualTo("012135"));
    }

    [Test]
    public void SetScopesFollowJinjaAndNamespacesCarryStateOutOfLoops()
    {
        Assert.That(Render("{% set x = 1 %}{% if true %}{% set x = 2 %}{% endif %}{{ x }}"), Is.EqualTo("2"), "if has no scope");
        Assert.That(Render("{% set x = 1 %}{% for i in [1] %}{% set x = 2 %}{% endfor %}{{ x }}"), Is.EqualTo("1"), "a loop's set stays in the loop");
        Assert.That(Render("{% set ns = namespace(found=false) %}{% for i in [1, 2] %}{% if i == 2 %}{% set ns.found = true %}{% endif %}{% endfor %}{{ ns.found }}"), Is.EqualTo("True"));
        Assert.That(Render("{% set a, b = 1, 2 %}{{ a }}{{ b }}{% set c %}x{{ a }}{% endset %}[{{ c }}]"), Is.EqualTo("12[x1]"));
        Assert.That(Render("{% macro greet(name, punct='!') %}Hi {{ name }}{{ punct }}{% endmacro %}{{ greet('a') }} {{ greet('b', punct='?') }}"), Is.EqualTo("Hi a! Hi b?"));
    }

    [Test]
    public void WhitespaceControlMatchesHuggingFacesTrimAndLstripBlocks()
    {
        // trim_blocks: the newline after a block tag goes; lstrip_blocks: indentation before a block tag goes.
        Assert.That(Render("{% if true %}\n    a\n    {% endif %}\nb"), Is.EqualTo("    a\nb"));
        // An expression tag keeps its newline and indentation.
        Assert.That(Render("  {{ 'x' }}\ny"), Is.EqualTo("  x\ny"));
        // '-' strips all whitespace on its side, newlines included.
        Assert.That(Render("a  \n  {{- 'b' -}}  \n  c"), Is.EqualTo("abc"));
        Assert.That(Render("a\n{%- if true -%}\n  b  \n{%- endif %}\nc"), Is.EqualTo("abc"));
        // '+' keeps the indentation lstrip_blocks would drop; a comment is trimmed like a block.
        Assert.That(Render("  {%+ if true %}x{% endif %}\n  {# note #}\ny"), Is.EqualTo("  xy"));
        Assert.That(Render("{% raw %}\n{{ not rendered }}\n{% endraw %}"), Is.EqualTo("\n{{ not rendered }}\n"), "raw text is kept as written");
        // keep_trailing_newline is off: one newline ending the template is dropped.
        Assert.That(Render("{{ 'x' }}\n{{ 'y' }}\n"), Is.EqualTo("x\ny"));
    }

    [Test]
    public void JsonValuesKeepTheirPythonTypes()
    {
        using var doc = System.Text.Json.JsonDocument.Parse("""{"n": 1, "f": 1.5, "l": [true, null, "s"]}""");
        Assert.That(Render("{{ d.n }} {{ d.f }} {{ d.l }} {{ d.n is integer }} {{ d | tojson }}", Vars(("d", doc.RootElement.Clone()))),
            Is.EqualTo("1 1.5 [True, None, 's'] True {\"n\": 1, \"f\": 1.5, \"l\": [true, null, \"s\"]}"));
    }

    [Test]
    public void UndefinedIsFalsyAndEmptyButAnAttributeOfItIsAnError()
    {
        Assert.That(Render("[{{ nothing }}]{% if nothing %}x{% endif %}{{ nothing | length }}{{ d.missing }}{{ d.missing is defined }}", Vars(("d", new Dictionary<string, object?>()))),
            Is.EqualTo("[]0False"));
        var e = Assert.Throws<ChatTemplateException>(() => Render("line one\n  {{ nothing.role }}"))!;
        Assert.That(e.Message, Is.EqualTo("t.jinja: line 2, column 13: 'nothing' is undefined"));
        Assert.That((e.Line, e.Column), Is.EqualTo((2, 13)));
        Assert.That(Render("{{ n.attr is defined }}", Vars(("n", null))), Is.EqualTo("False"), "an attribute of none is undefined, not an error");
    }

    [TestCase("{{ x | frobnicate }}", "t.jinja: line 1, column 8: unknown filter 'frobnicate'")]
    [TestCase("a\n{% if x is shiny %}{% endif %}", "t.jinja: line 2, column 12: unknown test 'shiny'")]
    [TestCase("{% if x %}\nno end", "t.jinja: line 1, column 1: '{% if %}' is never closed: expected '{% elif %}' or '{% else %}' or '{% endif %}' before the end of the template")]
    [TestCase("{{ 'a' + }}", "t.jinja: line 1, column 10: expected a value, found '}}'")]
    [TestCase("ok\n  {% endfor %}", "t.jinja: line 2, column 6: unexpected '{% endfor %}': no open block it could close or continue")]
    [TestCase("{% call foo() %}{% endcall %}", "t.jinja: line 1, column 4: '{% call %}' is not supported by this Jinja subset (chat templates need none of call, include, import, extends, block, with)")]
    [TestCase("{{ 'open", "t.jinja: line 1, column 4: string literal is never closed")]
    [TestCase("{{ x", "t.jinja: line 1, column 1: '{{' is never closed with '}}'")]
    [TestCase("{% frob %}", "t.jinja: line 1, column 4: unknown tag 'frob'")]
    public void SyntaxErrorsNameTheSourceLineAndColumn(string template, string message)
    {
        var e = Assert.Throws<ChatTemplateException>(() => JinjaTemplate.Parse(template, "t.jinja"))!;
        Assert.That(e.Message, Is.EqualTo(message));
    }

    [Test]
    public void RuntimeErrorsNameTheExpression()
    {
        Assert.That(Assert.Throws<ChatTemplateException>(() => Render("{{ 'a' + 1 }}"))!.Message, Is.EqualTo("t.jinja: line 1, column 8: unsupported operand types for +: 'str' and 'int'"));
        Assert.That(Assert.Throws<ChatTemplateException>(() => Render("{% set ns = 1 %}{% set ns.x = 2 %}"))!.Message, Does.Contain("line 1, column 17: cannot assign attribute 'x' on 'ns': it is not a namespace() object"));
    }

    [Test]
    public void RaiseExceptionSurfacesTheTemplatesMessage()
    {
        var e = Assert.Throws<ChatTemplateRaisedException>(() => Render("\n{{ raise_exception('Only user and assistant roles are supported!') }}"))!;
        Assert.That(e.TemplateMessage, Is.EqualTo("Only user and assistant roles are supported!"));
        Assert.That(e.Message, Is.EqualTo("t.jinja: line 2, column 4: the template refused the conversation: Only user and assistant roles are supported!"));
    }

    [Test]
    public void StrftimeNowReadsTheInjectedClock()
    {
        var template = ChatTemplate.FromText("{{ strftime_now('%d %b %Y') }}|{{ strftime_now('%Y-%m-%d %H:%M %A %B %-d') }}");
        template.Clock = new FixedClock(new DateTimeOffset(2026, 3, 5, 14, 7, 0, TimeSpan.Zero));
        Assert.That(template.Render([], false), Is.EqualTo("05 Mar 2026|2026-03-05 14:07 Thursday March 5"));
    }

    private sealed class FixedClock(DateTimeOffset now) : TimeProvider
    {
        public override DateTimeOffset GetUtcNow() => now;

        public override TimeZoneInfo LocalTimeZone => TimeZoneInfo.Utc;
    }
}
