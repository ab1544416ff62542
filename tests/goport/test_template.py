"""Go text/template + sprig subset (engine.goport.template): expected outputs are Go's, from the text/template and
sprig documentation, Go's exec/parse behaviour and Argo Events' params_test.go / filter tests."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from sensorium.engine.goport.template import (
    EMPTY_OUTPUTS,
    Limits,
    TemplateError,
    TemplateExecError,
    TemplateLimitError,
    TemplateParseError,
    TemplateUnsupportedError,
    compile_template,
)

CLOCK = datetime(2024, 3, 5, 14, 7, 9, 123456, tzinfo=UTC)


def render(text: str, data: Any = None, **kw: Any) -> str:
    return compile_template(text, **kw).render(data, clock=lambda: CLOCK)


def exec_error(text: str, data: Any = None) -> str:
    with pytest.raises(TemplateExecError) as info:
        render(text, data)
    return str(info.value)


def parse_error(text: str) -> str:
    with pytest.raises(TemplateParseError) as info:
        compile_template(text)
    return str(info.value)


EVENT = {  # the event of Argo's TestResolveParamValue, plus a few fields
    "name": {"first": "fake", "last": "user"}, "reviews": 8, "rating": 4.5, "isActive": True,
    "isVerified": False, "countries": ["ca", "us", "mx"],
    "body": {"message": "hello world", "name": "Jo  Doe\tJr"}, "big": 1234567, "nothing": None,
}
CONTEXT = {"id": "1", "source": "webhook-gateway", "specversion": "1.0", "type": "webhook",
           "datacontenttype": "application/json", "subject": "example-1", "time": "2024-03-05T14:07:09Z"}


# -- Argo Events' own template cases ------------------------------------------------------------------------------
@pytest.mark.parametrize(("text", "data", "expected"), [
    ("{{ .Input.name.first }}", EVENT, "fake"),  # params_test: get first name with template
    ("{{ upper .Input.name.first }}", EVENT, "FAKE"),  # get capitalized first name with template
    ("{{ .Input.subject }}", CONTEXT, "example-1"),  # get subject with template
    ('{{ .Input.subject | replace "-" "_" }}', CONTEXT, "example_1"),  # get formatted subject with template
    ("{{ .Input.name.non_exist }}", EVENT, "<no value>"),  # data template fails over to data key
    ("{{ .Input.body.message | title }}", EVENT, "Hello World"),  # examples/sensors/trigger-with-template.yaml
    ("{{ .Input.subject | title }}", CONTEXT, "Example-1"),
    ("{{ .Input.body.name | nospace | lower }}-", EVENT, "jodoejr-"),
    ("Hi {{.Input.body.name}},\n\n\tHello There.", {"Input": {"body": {"name": "Obi"}}},
     "Hi Obi,\n\n\tHello There."),  # examples/sensors/email-trigger.yaml
])
def test_argo_parameter_templates(text: str, data: dict[str, Any], expected: str) -> None:
    assert render(text, {"Input": data} if data in (EVENT, CONTEXT) else data) == expected


@pytest.mark.parametrize(("text", "value", "expected"), [
    ("{{ b64dec .Input }}", "aGVsbG8gd29ybGQ=", "hello world"),  # filter_data_test base64 cases
    ("{{ b64dec .Input | upper }}", "aGVsbG8gd29ybGQ=", "HELLO WORLD"),
    ("{{ b64dec .Input }}", "My4xNA==", "3.14"),
    ("{{ b64dec .Input }}", "aGVsbG8gd29ybGQ", "illegal base64 data at input byte 12"),  # no padding: error text
    ("{{ .Input }}", "1.0", "1.0"),  # the filter input is gjson's String(): always a Go string
])
def test_argo_data_filter_templates(text: str, value: str, expected: str) -> None:
    assert render(text, {"Input": value}) == expected


def test_argo_invalid_template_is_a_parse_error_argo_fails_over() -> None:
    assert parse_error("{{ no }}") == 'template: param:1: function "no" not defined'


def test_empty_outputs_are_argo_failures() -> None:
    assert render("{{ .Input.x }}", {"Input": {}}) in EMPTY_OUTPUTS
    assert render("{{ .Input.x }}", {"Input": {"x": ""}}) in EMPTY_OUTPUTS


# -- Go %v of JSON values ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("number", "expected"), [
    (12, "12"), (1234567, "1.234567e+06"), (0.1, "0.1"), (1e21, "1e+21"), (123456, "123456"),
    (1000000, "1e+06"), (100000, "100000"), (1.5, "1.5"), (-2, "-2"), (0, "0"), (-0.0, "-0"), (1e-5, "1e-05"),
    (0.0001, "0.0001"), (0.00012345, "0.00012345"), (123456789, "1.23456789e+08"), (3.0, "3"),
    (12345678901234567890, "1.2345678901234567e+19"), (2.5e-10, "2.5e-10"), (1e100, "1e+100"),
    (999999.5, "999999.5"), (1.7976931348623157e308, "1.7976931348623157e+308"),
])
def test_numbers_print_as_go_float64(number: float, expected: str) -> None:
    assert render("{{ .Input }}", {"Input": number}) == expected


@pytest.mark.parametrize(("value", "expected"), [
    ({"b": [1, 2], "a": 1, "c": {"d": None}}, "map[a:1 b:[1 2] c:map[d:<nil>]]"),
    ([1, "two", None, {"k": "v"}, [], {}], "[1 two <nil> map[k:v] [] map[]]"),
    (True, "true"), (False, "false"), ("text", "text"), ({}, "map[]"), ([], "[]"),
    ({"z": 1e21, "y": 1234567}, "map[y:1.234567e+06 z:1e+21]"),
])
def test_collections_print_like_fmt(value: Any, expected: str) -> None:
    assert render("{{ .Input }}", {"Input": value}) == expected


@pytest.mark.parametrize(("text", "expected"), [
    ("{{ .Input.missing }}", "<no value>"), ("{{ .Input.missing.deeper }}", "<no value>"),
    ("{{ .Input.nothing }}", "<no value>"),  # a JSON null printed at the top (the nil interface digs down)
    ("{{ index .Input \"missing\" }}", "<no value>"), ("{{ print .Input.missing }}", "<nil>"),
    ("{{ .Input.nothing | toJson }}", "null"), ("{{ .Missing }}", "<no value>"),
    ("{{ $ }}", "map[Input:map[nothing:<nil>]]"),
])
def test_missing_and_nil(text: str, expected: str) -> None:
    assert render(text, {"Input": {"nothing": None}}) == expected


def test_nil_then_field_is_an_error_missing_is_not() -> None:
    assert exec_error("{{ .Input.nothing.x }}", {"Input": {"nothing": None}}).endswith(
        "nil pointer evaluating interface {}.x")
    assert exec_error("{{ .Input.x }}", {"Input": "a string"}) == (
        'template: param:1:9: executing "param" at <.Input.x>: can\'t evaluate field x in type interface {}')


def test_data_is_copied_and_ints_become_float64() -> None:
    data = {"Input": {"m": {"a": 1}, "t": (1, 2)}}
    assert render('{{ $_ := set .Input.m "b" 2 }}{{ .Input.m }} {{ .Input.t }} {{ printf "%T" .Input.m.a }}',
                  data) == "map[a:1 b:2] [1 2] float64"
    assert data["Input"]["m"] == {"a": 1}
    with pytest.raises(TemplateExecError, match="not JSON-like"):
        render("{{ . }}", {"Input": object()})


# -- syntax -------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("text", "expected"), [
    ("{{23 -}} < {{- 45}}", "23<45"), ("a  {{- /* comment */ -}}  b", "ab"), ("a {{/* c */}} b", "a  b"),
    ("x\n  {{- 1 }}\n", "x1\n"), ("{{ `raw\\n` }}", "raw\\n"), ('{{ "tab\\there\\u00e9\\x41" }}', "tab\there\u00e9A"),
    ("{{ 'a' }} {{ '\\n' }}", "97 10"), ("{{ 0x1F }} {{ 0o17 }} {{ 017 }} {{ 0b101 }} {{ 1_000 }}", "31 15 15 5 1000"),
    ("{{ 1.0 }} {{ 1e3 }} {{ .5 }} {{ -2 }} {{ +3 }}", "1 1000 0.5 -2 3"), ("{{ true }} {{ false }}", "true false"),
    ("{{ . }}", "map[Input:x]"), ("{{ (print 1 2) }}", "1 2"), ("{{ (dict \"a\" 1).a }}", "1"),
    ("{{\n.Input\n}}", "x"), ("{{- .Input -}}", "x"), ("{{ .Input | printf \"%s!\" }}", "x!"),
])
def test_syntax(text: str, expected: str) -> None:
    assert render(text, {"Input": "x"}) == expected


@pytest.mark.parametrize("text", [  # the text/template documentation examples: all print "output" quoted
    '{{"\\"output\\""}}', "{{`\"output\"`}}", '{{printf "%q" "output"}}', '{{"output" | printf "%q"}}',
    '{{printf "%q" (print "out" "put")}}', '{{"put" | printf "%s%s" "out" | printf "%q"}}',
    '{{"output" | printf "%s" | printf "%q"}}', '{{with "output"}}{{printf "%q" .}}{{end}}',
    '{{with $x := "output" | printf "%q"}}{{$x}}{{end}}', '{{with $x := "output"}}{{printf "%q" $x}}{{end}}',
    '{{with $x := "output"}}{{$x | printf "%q"}}{{end}}',
])
def test_go_documentation_pipelines(text: str) -> None:
    assert render(text) == '"output"'


# -- control structures ---------------------------------------------------------------------------------------------
L = {"l": [1, 2, 3], "m": {"b": 2, "a": 1}, "e": [], "s": ["x", "y"]}


@pytest.mark.parametrize(("text", "expected"), [
    ("{{ if .l }}yes{{ end }}", "yes"), ("{{ if .e }}yes{{ else }}no{{ end }}", "no"),
    ("{{ if .nope }}a{{ else if .m }}b{{ else }}c{{ end }}", "b"),
    ("{{ if 0 }}a{{ else if \"\" }}b{{ else }}c{{ end }}", "c"),
    ("{{ with .m }}{{ .a }}{{ end }}", "1"), ("{{ with .nope }}x{{ else }}none{{ end }}", "none"),
    ("{{ with .nope }}x{{ else with .s }}{{ index . 1 }}{{ end }}", "y"),
    ("{{ range .l }}<{{ . }}>{{ end }}", "<1><2><3>"),
    ("{{ range $i, $v := .s }}{{ $i }}={{ $v }};{{ end }}", "0=x;1=y;"),
    ("{{ range $k, $v := .m }}{{ $k }}:{{ $v }} {{ end }}", "a:1 b:2 "), ("{{ range .m }}{{ . }}{{ end }}", "12"),
    ("{{ range .e }}x{{ else }}empty{{ end }}", "empty"), ("{{ range .nope }}x{{ else }}none{{ end }}", "none"),
    ("{{ range 3 }}{{ . }}{{ end }}", "012"), ("{{ range $i := 2 }}{{ $i }}{{ end }}", "01"),
    ("{{ range .l }}{{ if eq . 2.0 }}{{ break }}{{ end }}{{ . }}{{ end }}", "1"),
    ("{{ range .l }}{{ if eq . 2.0 }}{{ continue }}{{ end }}{{ . }}{{ end }}", "13"),
    ("{{ range .s }}{{ $.m.a }}{{ end }}", "11"), ("{{ $x := 0.0 }}{{ range .l }}{{ $x = . }}{{ end }}{{ $x }}", "3"),
    ("{{ $x := 1 }}{{ if true }}{{ $x := 2 }}{{ $x }}{{ end }}{{ $x }}", "21"),
    ("{{ $x := 1 }}{{ $x = 5 }}{{ $x }}", "5"),
    ("{{ range $v := .s }}{{ $v }}{{ end }}", "xy"), ("{{ if $x := .m.b }}{{ $x }}{{ end }}", "2"),
    ("{{ range $i, $v := .l }}{{ if $i }},{{ end }}{{ $v }}{{ end }}", "1,2,3"),
])
def test_control(text: str, expected: str) -> None:
    assert render(text, L) == expected


# -- builtins -------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("text", "expected"), [
    ("{{ and 1 0 }} {{ and 1 2 }} {{ or 0 \"\" }} {{ or 0 3 }} {{ not 0 }} {{ not .l }}", "0 2  3 true false"),
    ("{{ and .nope (index .nope 1) }}", "<no value>"),  # short-circuit: index is never called
    ("{{ or .m.a (fail \"no\") }}", "1"),
    ("{{ len \"héllo\" }} {{ len .l }} {{ len .m }}", "6 3 2"), ("{{ index .l 1 }} {{ index .m \"b\" }}", "2 2"),
    ("{{ index \"abc\" 1 }}", "98"), ("{{ index (list (list 1 2)) 0 1 }}", "2"), ("{{ index .l }}", "[1 2 3]"),
    ("{{ eq 1 2 3 1 }} {{ eq \"a\" \"a\" }} {{ ne 1 2 }} {{ eq .nope .nope }} {{ eq .nope \"x\" }}",
     "true true true true false"),
    ("{{ lt 1.5 2.5 }} {{ le 2 2 }} {{ gt \"b\" \"a\" }} {{ ge 1 2 }} {{ lt (index \"a\" 0) 98 }}",
     "true true true false true"),
    ("{{ print 1 2 \"a\" 3 \"b\" \"c\" }}", "1 2a3bc"), ("{{ println 1 \"a\" }}", "1 a\n"),
    ("{{ print nil }}", "<nil>"),
    ('{{ html "<script>alert(\\"XSS\\");</script>" }}', "&lt;script&gt;alert(&#34;XSS&#34;);&lt;/script&gt;"),
    ("{{ html \"a&b'c\" 1 }}", "a&amp;b&#39;c1"), ('{{ js "It\'d be <b>=\\"x\\"</b>\\n" }}',
                                                  "It\\'d be \\u003Cb\\u003E\\u003D\\\"x\\\"\\u003C/b\\u003E\\u000A"),
    ('{{ urlquery "http://www.example.org/ a+b" }}', "http%3A%2F%2Fwww.example.org%2F+a%2Bb"),
    ("{{ slice .l 1 }} {{ slice .l 1 2 }}", "[2 3] [2]"),  # sprig's slice (it replaces Go's)
])
def test_builtins(text: str, expected: str) -> None:
    assert render(text, L) == expected


@pytest.mark.parametrize(("text", "message"), [
    ("{{ eq .l 1 }}", "error calling eq: incompatible types for comparison: []interface {} and int"),
    ("{{ eq .l .m }}", "error calling eq: non-comparable types [%!s(float64=1) %!s(float64=2) %!s(float64=3)]: "
                       "[]interface {}, map[string]interface {}: map[a:1 b:2]"),
    ("{{ eq 1 1.0 }}", "error calling eq: incompatible types for comparison: int and float64"),
    ("{{ eq .m.a 1 }}", "error calling eq: incompatible types for comparison: float64 and int"),  # JSON: float64
    ('{{ lt "a" 1 }}', "error calling lt: incompatible types for comparison: string and int"),
    ("{{ lt true false }}", "error calling lt: invalid type for comparison"),
    ("{{ lt .l 1 }}", "error calling lt: invalid type for comparison"),
    ("{{ eq .m .m }}", "error calling eq: non-comparable type map[a:%!s(float64=1) b:%!s(float64=2)]: "
                       "map[string]interface {}"),
    ("{{ index .l 5 }}", "error calling index: index out of range: 5"),
    ("{{ index .l 3 }}", "error calling index: reflect: slice index out of range"),
    ("{{ index .l 1.0 }}", "error calling index: cannot index slice/array with type float64"),
    ("{{ index .m 1 }}", "error calling index: value has type int; should be string"),
    ("{{ index .nope 1 }}", "error calling index: index of untyped nil"),
    ("{{ index 1 1 }}", "error calling index: can't index item of type int"),
    ("{{ len 3 }}", "error calling len: len of type int"),
    ("{{ len .nope }}", "error calling len: reflect: call of reflect.Value.Type on zero Value"),
    ("{{ eq }}", "wrong number of args for eq: want at least 1 got 0"),
    ("{{ eq 1 }}", "error calling eq: missing argument for comparison"),
    ("{{ not 1 2 }}", "wrong number of args for not: want 1 got 2"),
    ("{{ printf 1 }}", "expected string; found 1"),
    ('{{ mustFromJson "[1e400]" }}',
     "error calling mustFromJson: json: cannot unmarshal number 1e400 into Go value of type float64"),
])
def test_builtin_errors(text: str, message: str) -> None:
    assert exec_error(text, L).endswith(message)


# -- printf ---------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("fmt", "args", "expected"), [
    ("%s-%d-%v", '"a" 5 .f', "a-5-1.5"), ("%q", '"say \\"hi\\"\\n"', '"say \\"hi\\"\\n"'), ("%.2f", ".f", "1.50"),
    ("%f", "3.0", "3.000000"), ("%t", "true", "true"), ("%x %X %x", '255 255 "hi"', "ff FF 6869"),
    ("%5d|%-5d|%05d", "42 42 -42", "   42|42   |-0042"),
    ("%e %g %G", ".big .big 1e-7", "1.234567e+06 1.234567e+06 1E-07"),
    ("%T %T %T %T %T", '.f 1 "s" .l .m', "float64 int string []interface {} map[string]interface {}"),
    ("100%%", "", "100%"), ("%d", '"x"', "%!d(string=x)"), ("%s", "1", "%!s(int=1)"), ("%d %d", "1", "1 %!d(MISSING)"),
    ("%d", "1 2", "1%!(EXTRA int=2)"), ("%s", ".l", "[%!s(float64=1) %!s(float64=2)]"), ("%v", ".nope", "<nil>"),
    ("%s", "nil", "%!s(<nil>)"), ("%.0f", ".big", "1234567"), ("%d", "(int .big)", "1234567"),
    ("%+d % d", "5 5", "+5  5"),
    ("%#x %#o %b", "255 8 5", "0xff 010 101"), ("%c%c", "72 105", "Hi"),
    ("%8.3f|%-8.2e|", ".f .f", "   1.500|1.50e+00|"),
    ("%.3s|%5s|%-5s|", '"abcdef" "ab" "ab"', "abc|   ab|ab   |"), ("%v %v", ".m .s", "map[a:1 b:2] [x y]"),
    ("%x", ".s", "[78 79]"), ("%q", "65", "'A'"), ("%U", "65", "U+0041"), ("%!", "", "%!!(MISSING)"),
    ("%", "", "%!(NOVERB)"),
    ("%*d", "4 7", "   7"), ("%.*f", "1 .f", "1.5"), ("%[2]d %[1]d", "1 2", "2 1"), ("%[3]d", "1", "%!d(BADINDEX)"),
    ("%+v %#v", "5 \"a\"", '5 "a"'),
])
def test_printf(fmt: str, args: str, expected: str) -> None:
    data = {"f": 1.5, "big": 1234567, "l": [1, 2], "m": {"a": 1, "b": 2}, "s": ["x", "y"]}
    assert render("{{ printf " + repr(fmt).replace("'", '"') + (" " + args if args else "") + " }}", data) == expected


# -- sprig ----------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("text", "expected"), [
    ('{{ trim "   hello    " }}', "hello"), ('{{ trimAll "$" "$5.00" }}', "5.00"),
    ('{{ trimSuffix "-" "hello-" }}', "hello"),
    ('{{ trimPrefix "-" "-hello" }}', "hello"), ('{{ upper "hello" }} {{ lower "HELLO" }}', "HELLO hello"),
    ('{{ title "hello world" }}', "Hello World"), ('{{ title "hello-world\'s o_k éa 3b" }}', "Hello-World'S O_k Éa 3b"),
    ('{{ untitle "Hello World" }}', "hello world"), ('{{ repeat 3 "hello" }}', "hellohellohello"),
    ('{{ "hello" | repeat 2 }}', "hellohello"), ('{{ substr 0 5 "hello world" }}', "hello"),
    ('{{ substr 6 -1 "hello world" }}', "world"), ('{{ substr -1 5 "hello world" }}', "hello"),
    ('{{ substr 3 99 "hello" }}', "lo"), ('{{ nospace "hello w o r l d" }}', "helloworld"),
    ('{{ trunc 5 "hello world" }}', "hello"), ('{{ trunc -5 "hello world" }}', "world"), ('{{ trunc 50 "hi" }}', "hi"),
    ('{{ abbrev 5 "hello world" }}', "he..."), ('{{ abbrev 3 "hello world" }}', "hello world"),
    ('{{ contains "cat" "catch" }} {{ hasPrefix "cat" "catch" }} {{ hasSuffix "cat" "catch" }}', "true true false"),
    ('{{ cat "hello" "beautiful" "world" }}', "hello beautiful world"), ('{{ cat "a" nil 1 }}', "a 1"),
    ('{{ indent 4 "a\\nb" }}', "    a\n    b"), ('{{ nindent 2 "a" }}', "\n  a"),
    ('{{ replace " " "-" "I Am Henry VIII" }}', "I-Am-Henry-VIII"), ('{{ plural "one" "many" 2 }}', "many"),
    ('{{ quote "a" 1 nil }} {{ squote "b" 2 }}', "\"a\" \"1\" 'b' '2'"), ('{{ quote "é\\n" }}', '"é\\n"'),
    ('{{ splitList "$" "foo$bar$baz" }}', "[foo bar baz]"), ('{{ $a := split "$" "foo$bar$baz" }}{{ $a._1 }} {{ $a }}',
                                                           "bar map[_0:foo _1:bar _2:baz]"),
    ('{{ list "hello" "world" | join "_" }}', "hello_world"), ('{{ join "," (list 1 nil "a") }}', "1,a"),
    ('{{ join "-" "x" }}', "x"), ('{{ splitList "" "ab" }}', "[a b]"),
    ('{{ b64enc "hello" }}', "aGVsbG8="), ('{{ b64dec "aGVsbG8=" }}', "hello"),
    ('{{ b64dec "a" }}', "illegal base64 data at input byte 0"),
    ('{{ b64dec "aGVsbG8=x" }}', "illegal base64 data at input byte 8"), ('{{ b64dec "aG\\nVsbG8=" }}', "hello"),
    ('{{ b64dec "aGVs$" }}', "illegal base64 data at input byte 4"),
    ('{{ b64dec "aG=" }}', "illegal base64 data at input byte 3"),
    ('{{ b64dec "aGV=" }}', "he"), ('{{ b64dec "=" }}', "illegal base64 data at input byte 0"),
    ('{{ sha256sum "Hello world!" }}', "c0535e4be2b79ffd93291305436bf889314e4a3faec05ecffcbb7df31ad9e51a"),
    ('{{ sha1sum "" }}', "da39a3ee5e6b4b0d3255bfef95601890afd80709"),
    ('{{ toString 1 }} {{ toString .f }} {{ toString .l }} {{ toString nil }}', "1 1.234567e+06 [1 2] <nil>"),
    ('{{ atoi "42" }} {{ atoi "4.2" }} {{ atoi "x" }} {{ atoi "+7" }}', "42 0 0 7"),
    ('{{ int "12.0" }} {{ int "0x1F" }} {{ int "010" }} {{ int .f }} {{ int true }} {{ int "1.5" }} {{ int nil }}',
     "12 31 8 1234567 1 0 0"),
    ('{{ int64 3.9 }} {{ int64 -3.9 }} {{ float64 "1.5" }} {{ float64 "x" }} {{ float64 2 }}', "3 -3 1.5 0 2"),
    ("{{ add 1 2 3 }} {{ add }} {{ sub 3 5 }} {{ mul 2 3 4 }} {{ div 7 2 }} {{ div -7 2 }} {{ mod -7 2 }}",
     "6 0 -2 24 3 -3 -1"),
    ("{{ max 1 5 3 }} {{ min 4 2 8 }} {{ add1 .f }} {{ add \"2\" 1.9 }} {{ biggest 1 2 }}", "5 2 1234568 3 2"),
    ("{{ add 9223372036854775807 1 }}", "-9223372036854775808"),
    ("{{ floor 1.5 }} {{ ceil 1.2 }} {{ round 3.14159 2 }}", "1 2 3.14"),
    ('{{ default "foo" .nope }} {{ default "foo" "" }} {{ default "foo" "bar" }} {{ "x" | default "d" }}',
     "foo foo bar x"),
    ('{{ default "d" 0 }} {{ default "d" 0.0 }} {{ default "d" false }} {{ default "d" .e }} {{ default "d" .m }}',
     "d d d d map[a:1]"),
    ('{{ .nope | default "d" }} {{ default "d" }}', "d d"),
    ('{{ empty .nope }} {{ empty 0 }} {{ empty "x" }} {{ empty .e }} {{ empty now }}', "true true false true false"),
    ('{{ coalesce 0 "" 1 2 }} {{ coalesce .nope .e "z" }} {{ coalesce 0 }}', "1 z <no value>"),
    ('{{ ternary "foo" "bar" true }} {{ true | ternary "a" "b" }}', "foo a"),
    ('{{ all 1 "a" }} {{ any 0 "" }}', "true false"),
])
def test_sprig_strings_numbers_defaults(text: str, expected: str) -> None:
    assert render(text, {"f": 1234567, "l": [1, 2], "e": [], "m": {"a": 1}}) == expected


@pytest.mark.parametrize(("text", "expected"), [
    ("{{ toJson .j }}", '{"a":1,"b":[true,null,"\\u003cb\\u003e \\u0026"],"c":1.5,"d":1e+21,"e":1e-7,"f":1234567}'),
    ("{{ toRawJson .j.b }}", '[true,null,"<b> &"]'),
    ("{{ toJson 1.0 }} {{ toJson 1 }} {{ toJson \"a\\u2028\" }}", '1 1 "a\\u2028"'),
    ("{{ toPrettyJson .p }}", '{\n  "a": [\n    1,\n    {}\n  ],\n  "b": []\n}'),
    ("{{ toJson (split \",\" \"x,y\") }}", '{"_0":"x","_1":"y"}'),
    ("{{ toJson .nope }} {{ toJson now }}", 'null "2024-03-05T14:07:09.123456Z"'),
    ('{{ (fromJson "{\\"a\\": {\\"b\\": [1, 2]}}").a.b }}', "[1 2]"), ('{{ fromJson "nope" }}', "<no value>"),
    ('{{ printf "%T" (fromJson "7") }}', "float64"),
    # Go's decoder leaves nil where a number overflows float64 and goes on; fromJson ignores the error
    ('{{ (fromJson "{\\"a\\": 1e400, \\"b\\": 2}") | toJson }}', '{"a":null,"b":2}'),
    ('{{ mustFromJson "[1,2]" | len }}', "2"),
])
def test_sprig_json(text: str, expected: str) -> None:
    data = {"j": {"c": 1.5, "a": 1, "b": [True, None, "<b> &"], "d": 1e21, "e": 1e-7, "f": 1234567},
            "p": {"b": [], "a": [1, {}]}}
    assert render(text, data) == expected


@pytest.mark.parametrize(("text", "expected"), [
    ("{{ list 1 2 3 | first }} {{ list 1 2 3 | last }} {{ list 1 2 3 | rest }} {{ list 1 2 3 | initial }}",
     "1 3 [2 3] [1 2]"),
    ("{{ first .e }} {{ list 1 1 1 2 \"a\" \"a\" 1.0 | uniq }} {{ list 1 2 3 | reverse }}",
     "<no value> [1 2 a 1] [3 2 1]"),
    ("{{ append (list 1 2) 3 }} {{ prepend (list 1 2) 0 }} {{ has 4 (list 1 2 3 4) }} {{ has 5 (list 1) }}",
     "[1 2 3] [0 1 2] true false"),
    ("{{ without (list 1 2 3 4) 1 3 }} {{ compact (list 1 \"a\" \"foo\" \"\" 0 nil) }}", "[2 4] [1 a foo]"),
    ("{{ sortAlpha (list \"b\" \"C\" \"a\" 10 9) }} {{ sortAlpha 3 }} {{ sortAlpha .s }}", "[10 9 C a b] [3] [x y]"),
    ("{{ $d := dict \"name1\" \"value1\" \"k\" 2 \"odd\" }}{{ $d }} {{ get $d \"k\" }} {{ get $d \"zz\" | quote }}",
     'map[k:2 name1:value1 odd:] 2 ""'),
    ("{{ $d := dict }}{{ $_ := set $d \"a\" 1 }}{{ $d }} {{ hasKey $d \"a\" }} {{ unset $d \"a\" }}",
     "map[a:1] true map[]"),
    ("{{ keys .m | sortAlpha }} {{ values .m }} {{ pick .m \"a\" \"z\" }} {{ omit .m \"a\" }} {{ keys .m .n }}",
     "[a b] [1 2] map[a:1] map[b:2] [a b c]"),
    ("{{ pluck \"a\" .m .n (dict \"a\" 9) }}", "[1 9]"),
])
def test_sprig_lists_dicts(text: str, expected: str) -> None:
    assert render(text, {"e": [], "s": ["y", "x"], "m": {"b": 2, "a": 1}, "n": {"c": 3}}) == expected


@pytest.mark.parametrize(("text", "expected"), [
    ('{{ regexMatch "^[a-zA-Z0-9._%+-]+@[a-zA-Z0-9.-]+\\\\.[A-Za-z]{2,}$" "test@acme.com" }}', "true"),
    ('{{ regexMatch "(" "x" }}', "false"), ('{{ regexFindAll "[2,4,6,8]" "123456789" -1 }}', "[2 4 6 8]"),
    ('{{ regexFindAll "[2,4,6,8]" "123456789" 2 }}', "[2 4]"), ('{{ regexFind "[a-zA-Z][1-9]" "abcd1234" }}', "d1"),
    ('{{ regexFind "z" "abc" | quote }}', '""'), ('{{ regexReplaceAll "a(x*)b" "-ab-axxb-" "${1}W" }}', "-W-xxW-"),
    ('{{ regexReplaceAll "a(x*)b" "-ab-axxb-" "$1W" }}', "---"),
    ('{{ regexReplaceAll "(?P<n>b)" "abc" "[$n$$]" }}', "a[b$]c"),
    ('{{ regexReplaceAllLiteral "a(x*)b" "-ab-axxb-" "${1}" }}', "-${1}-${1}-"),
    ('{{ regexReplaceAll "x*" "abxd" "-" }}', "-a-b-d-"),
    ('{{ regexSplit "z+" "pizza" -1 }}', "[pi a]"), ('{{ regexSplit "z+" "pizza" 1 }}', "[pizza]"),
    ('{{ regexSplit "" "abc" -1 }}', "[a b c]"),
    ('{{ regexQuoteMeta "1.2.3" }}', "1\\.2\\.3"), ('{{ regexFindAll "a*" "baaab" -1 }}', "[ aaa ]"),
])
def test_sprig_regex(text: str, expected: str) -> None:
    assert render(text) == expected


def test_regex_compile_errors_read_like_go() -> None:
    assert exec_error('{{ regexFind "(" "x" }}').endswith("error calling regexFind: regexp: Compile(`(`): "
                                                          "error parsing regexp: missing closing ): `(`")
    assert exec_error('{{ mustRegexMatch "(" "x" }}').endswith(
        "error calling mustRegexMatch: error parsing regexp: missing closing ): `(`")
    with pytest.raises(TemplateExecError, match=r"regexp: Compile\(`\(\?=a\)`\): error parsing regexp: invalid or "
                                                r"unsupported Perl syntax"):
        render('{{ regexFind "(?=a)" "x" }}')
    assert render('{{ regexMatch "^abc$" "abc\\n" }}') == "false"


@pytest.mark.parametrize(("text", "expected"), [
    ('{{ regexFindAll `\\pL+` "é1λx" -1 }}', "[é λx]"), ('{{ regexReplaceAll "" "éa" "-" }}', "-é-a-"),
    ('{{ regexSplit "" "éa" -1 }}', "[é a]"), ('{{ regexReplaceAll "(?U)a+" "aaa" "b" }}', "bbb"),
    ('{{ regexFind `(?P<y>\\d{4})` "in 2024" }}', "2024"), ('{{ regexReplaceAll "(?<y>x)" "axb" "[${y}]" }}', "a[x]b"),
])
def test_sprig_regex_is_re2_over_utf8(text: str, expected: str) -> None:
    assert render(text) == expected


def test_sprig_regex_functions_are_linear() -> None:
    data = {"s": "a" * 100_000 + "!"}
    started = time.perf_counter()
    assert render('{{ regexMatch "^(a+)+$" .s }}|{{ regexFind "(a|aa)+!" .s | len }}|'
                  '{{ regexReplaceAll "(a*)*b" .s "x" | len }}|{{ regexFindAll "a" .s 5 }}', data) == \
        "false|100001|100001|[a a a a a]"
    assert time.perf_counter() - started < 0.5


@pytest.mark.parametrize(("text", "expected"), [
    ("{{ now }}", "2024-03-05 14:07:09.123456 +0000 UTC"), ('{{ now | date "2006-01-02" }}', "2024-03-05"),
    ('{{ date "Mon Jan _2 15:04:05 MST 2006" now }}', "Tue Mar  5 14:07:09 UTC 2024"),
    ('{{ date "3:04PM .000 .999999 Z07:00 -0700" now }}', "2:07PM .123 .123456 Z +0000"),
    ('{{ date "2006-01-02T15:04:05Z07:00" 0 }}', "1970-01-01T00:00:00Z"), ('{{ date "2006" .f }}', "2024"),
    ('{{ date "02 Jan 06 15:04" (int64 "1700000000") }}', "14 Nov 23 22:13"),
    ('{{ dateInZone "2006-01-02 15:04 MST -07:00" now "America/New_York" }}', "2024-03-05 09:07 EST -05:00"),
    ('{{ dateInZone "15:04 MST" now "Not/AZone" }}', "14:07 UTC"),
    ("{{ htmlDate now }} {{ unixEpoch now }}", "2024-03-05 1709647629"),
    ('{{ date "January Monday 002 __2 06 1 2 3 4 5 pm" now }}', "March Tuesday 065  65 24 3 5 2 7 9 pm"),
])
def test_sprig_dates_with_a_fixed_clock(text: str, expected: str) -> None:
    assert render(text, {"f": 12.0}) == expected


def test_clock_offsets_and_uuid() -> None:
    tz = timezone(timedelta(hours=5, minutes=30))
    out = compile_template("{{ now }}|{{ date \"MST\" now }}").render(None, clock=lambda: CLOCK.astimezone(tz))
    assert out == "2024-03-05 19:37:09.123456 +0530 +0530|UTC"
    assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", render("{{ uuidv4 }}"))


@pytest.mark.parametrize(("text", "message"), [
    ('{{ substr 2 1 "abc" }}', "error calling substr: runtime error: slice bounds out of range [2:1]"),
    ('{{ substr -1 9 "abc" }}', "error calling substr: runtime error: slice bounds out of range [:9] with length 3"),
    ('{{ substr 0 .f "abc" }}', "wrong type for value; expected int; got float64"),
    ('{{ substr 0 (add 1 1) "abc" }}', "wrong type for value; expected int; got int64"),
    ('{{ repeat -1 "a" }}', "error calling repeat: strings: negative Repeat count"),
    ("{{ div 1 0 }}", "error calling div: runtime error: integer divide by zero"),
    ('{{ first "abc" }}', "error calling first: Cannot find first on type string"),
    ("{{ first nil }}", "error calling first: runtime error: invalid memory address or nil pointer dereference"),
    ('{{ slice "abc" 1 }}', "error calling slice: list should be type of slice or array but string"),
    ('{{ get .l "a" }}', "wrong type for value; expected map[string]interface {}; got []interface {}"),
    ('{{ get (split "," "a") "_0" }}', "wrong type for value; expected map[string]interface {}; got map[string]string"),
    ('{{ set .nope "a" 1 }}', "error calling set: assignment to entry in nil map"),
    ('{{ ternary 1 2 "yes" }}', "expected bool; found \"yes\""), ('{{ fail "boom" }}', "error calling fail: boom"),
    ('{{ upper .nope }}', "invalid value; expected string"), ('{{ .nope | upper }}', "invalid value; expected string"),
    ('{{ upper .n }}', "wrong type for value; expected string; got interface {}"),
])
def test_sprig_errors(text: str, message: str) -> None:
    data = {"f": 2, "l": [], "n": None}
    assert exec_error(text, data).endswith(message)


# -- exec errors in Go's form ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(("text", "message"), [
    ("{{ upper 1 }}", 'template: param:1:9: executing "param" at <1>: expected string; found 1'),
    ("{{ upper }}", 'template: param:1:3: executing "param" at <upper>: wrong number of args for upper: want 1 got 0'),
    ("{{ 1 | upper 2 }}",
     'template: param:1:7: executing "param" at <upper>: wrong number of args for upper: want 1 got 2'),
    ('{{ "a" 1 }}', 'template: param:1:3: executing "param" at <"a">: can\'t give argument to non-function "a"'),
    ("{{ nil }}", 'template: param:1:3: executing "param" at <nil>: nil is not a command'),
    ('{{ .Input.a "x" }}', 'template: param:1:9: executing "param" at <.Input.a>: a is not a method but has arguments'),
    ("{{ $x = 1 }}", 'template: param:1:8: executing "param" at <1>: undefined variable: $x'),  # parses, like Go
    ("{{ range .Input.a }}{{ end }}",
     'template: param:1:15: executing "param" at <.Input.a>: range can\'t iterate over 3'),
    ("{{ range $i, $v := 3 }}{{ end }}",
     'template: param:1:19: executing "param" at <3>: can\'t use 3 to iterate over more than one variable'),
    ("line1\n{{ upper .Input.a }}",
     'template: param:2:15: executing "param" at <.Input.a>: wrong type for value; expected string; got float64'),
    ("{{ range .Input.l }}{{ .x }}{{ end }}", "at <.x>: can't evaluate field x in type interface {}"),
    ("{{ range $v := .Input.l }}{{ $v.x }}{{ end }}", "at <$v.x>: can't evaluate field x in type interface {}"),
    ("{{ with .Input.a }}{{ .x }}{{ end }}", "at <.x>: can't evaluate field x in type float64"),
    ("{{ now.Year }}", "can't evaluate field Year in type time.Time (methods of time.Time are not supported"),
])
def test_exec_errors(text: str, message: str) -> None:
    assert message in exec_error(text, {"Input": {"a": 3, "l": ["s"]}})


# -- parse errors -----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("text", "message"), [
    ("{{", "template: param:1: unclosed action"), ("{{ .x", "template: param:1: unclosed action"),
    ("{{ if .x }}", "template: param:1: unexpected EOF"), ("{{ end }}", "template: param:1: unexpected {{end}}"),
    ("{{ else }}", "template: param:1: unexpected {{else}}"), ("{{ }}", "template: param:1: missing value for command"),
    ('{{ .x | "a" }}', "template: param:1: non executable command in pipeline stage 2"),
    ("{{ range $i, $j, $k := .x }}{{ end }}", "template: param:1: too many declarations in range"),
    ("{{ $x, $y := 1 }}", "template: param:1: too many declarations in command"),
    ("{{ break }}", "template: param:1: {{break}} outside {{range}}"),
    ("{{ 1x }}", 'template: param:1: bad number syntax: "1x"'),
    ('{{ "abc }}', "template: param:1: unterminated quoted string"),
    ("{{ (1 }}", "template: param:1: unclosed left paren"), ("{{ 1) }}", "template: param:1: unexpected right paren"),
    ("{{ @ }}", 'template: param:1: unexpected "@" in command'), ("{{/* x }}", "template: param:1: unclosed comment"),
    ("{{/* x */ }}", "template: param:1: comment ends before closing delimiter"),
    ("{{ \x01 }}", "template: param:1: unrecognized character in action: U+0001"),
    ('{{ "a".x }}', 'template: param:1: unexpected . after term "\\"a\\""'),
    ("{{ if true }}{{ $x := 1 }}{{ end }}{{ $x }}", 'template: param:1: undefined variable "$x"'),
    ("a\nb\n{{ foo }}", 'template: param:3: function "foo" not defined'),
    ("{{ if .a }}x{{ else }}y{{ else }}z{{ end }}", "template: param:1: expected end; found {{else}}"),
    ("{{ 99999999999999999999 }}", 'template: param:1: integer overflow: "99999999999999999999"'),
    ("{{ '\\q' }}", "template: param:1: invalid syntax"), ("{{ .x\n}", 'template: param:2: unexpected "}" in operand'),
])
def test_parse_errors(text: str, message: str) -> None:
    assert parse_error(text) == message


@pytest.mark.parametrize(("text", "name"), [
    ('{{ define "x" }}y{{ end }}', "unsupported template action 'define'"),
    ('{{ template "x" }}', "unsupported template action 'template'"),
    ('{{ block "x" . }}y{{ end }}', "unsupported template action 'block'"),
    ('{{ if 1 }}{{ template "x" }}{{ end }}', "unsupported template action 'template'"),
    ("{{ call .f }}", 'unsupported builtin function "call"'),
    ("{{ camelcase .x }}", 'unsupported function "camelcase"'),
    ("{{ .x | env }}", 'unsupported function "env"'), ("{{ 1+2i }}", "complex constant 1+2i is not supported"),
    ("{{ if 1 }}" * 60 + "{{ end }}" * 60, "nested deeper than 50 levels"),
    ("{{ " + "(" * 60 + "1" + ")" * 60 + " }}", "nested deeper than 50 levels"),
])
def test_unsupported_constructs_fail_at_compile_time(text: str, name: str) -> None:
    with pytest.raises(TemplateUnsupportedError) as info:
        compile_template(text)
    assert name in str(info.value)
    assert isinstance(info.value, TemplateError) and isinstance(info.value, ValueError)


# -- sandbox ----------------------------------------------------------------------------------------------------------
def test_huge_range_stops_at_the_step_limit() -> None:
    with pytest.raises(TemplateLimitError, match="exceeded 100000 evaluation steps"):
        render("{{ range 1000000000 }}{{ end }}")
    with pytest.raises(TemplateLimitError, match="exceeded 50 evaluation steps"):
        render("{{ range .l }}{{ range $.l }}{{ . }}{{ end }}{{ end }}", {"l": list(range(10))},
               limits=Limits(max_steps=50))


def test_huge_strings_and_output_stop() -> None:
    with pytest.raises(TemplateExecError, match="exceeds the template value limit"):
        render('{{ repeat 100000000 "abc" }}')
    with pytest.raises(TemplateLimitError, match="output exceeds 100 characters"):
        render("{{ range 50 }}abc{{ end }}", limits=Limits(max_output=100))
    with pytest.raises(TemplateExecError, match="exceeds the template value limit"):
        render('{{ $s := repeat 2000 "x" }}{{ replace "x" $s $s }}')
    with pytest.raises(TemplateLimitError):
        render('{{ printf "%99999999d" 1 }}')
    with pytest.raises(TemplateExecError, match="exceeds the template value limit"):
        render('{{ indent 1000 (repeat 2000 "\\n") }}')


def test_doubling_strings_is_bounded() -> None:
    text = '{{ $s := "xx" }}{{ range 40 }}{{ $s = print $s $s }}{{ end }}{{ len $s }}'
    with pytest.raises(TemplateLimitError, match="value limit"):
        render(text)


def test_cyclic_values_and_timeout() -> None:
    with pytest.raises(TemplateExecError, match="nested too deeply"):
        render('{{ $d := dict }}{{ $_ := set $d "self" $d }}{{ $d }}')
    assert render('{{ $d := dict }}{{ $_ := set $d "self" $d }}{{ toJson $d }}') == ""  # Go: json error, toJson ""
    with pytest.raises(TemplateLimitError, match="time limit"):
        render("{{ range 100000 }}{{ toJson $ }}{{ end }}", {"x": list(range(2000))},
               limits=Limits(timeout=0.05, max_output=1 << 40, max_steps=1 << 40))


def test_no_python_attribute_access() -> None:
    assert render("{{ .__class__ }} {{ .keys }}", {"a": 1}) == "<no value> <no value>"
    assert exec_error("{{ .Input.__class__ }}", {"Input": "s"}).endswith(
        "can't evaluate field __class__ in type interface {}")
    assert parse_error("{{ __import__ }}") == 'template: param:1: function "__import__" not defined'


def test_templates_are_reusable() -> None:
    t = compile_template("{{ .Input.a | upper }}")
    assert [t.render({"Input": {"a": x}}) for x in "ab"] == ["A", "B"]
    assert t.name == "param" and "upper" in repr(t)


def test_deep_and_shared_data() -> None:
    deep: Any = "leaf"
    for _ in range(5000):
        deep = {"d": deep}
    assert render("{{ .Input.d.d.d | len }}", {"Input": deep}) == "1"  # Go has no depth limit on data
    with pytest.raises(TemplateLimitError, match="nested too deeply"):
        render("{{ .Input }}", {"Input": deep})
    shared = {"k": 1}
    assert render("{{ .a.k }}{{ .b.k }}", {"a": shared, "b": shared}) == "11"
    cyclic: dict[str, Any] = {}
    cyclic["self"] = cyclic
    assert render("{{ .self.self.self | len }}", cyclic) == "1"


@pytest.mark.parametrize(("text", "expected"), [
    ('{{ sha512sum "" | trunc 16 }}', "cf83e1357eefb8bd"), ('{{ tuple 1 "a" }}', "[1 a]"), ("{{ hello }}", "Hello!"),
    ("{{ $x := 0.0 }}{{ range $x = .l }}{{ end }}{{ $x }}", "3"),
    ("{{ range $i, $v := .l }}{{ break }}{{ end }}x", "x"),
    ("{{ `a\nb` }}", "a\nb"), ("é{{ .x }}", "é<no value>"), ("{{ with $v := .l }}{{ len $v }}{{ end }}", "3"),
    ("{{ range .l }}{{ with $ }}{{ len .l }}{{ end }}{{ end }}", "333"), ("{{ .l | len | printf \"%03d\" }}", "003"),
])
def test_more_language(text: str, expected: str) -> None:
    assert render(text, {"l": [1, 2, 3]}) == expected


def test_error_columns_count_bytes() -> None:
    assert exec_error("é{{ upper 1 }}") == 'template: param:1:11: executing "param" at <1>: expected string; found 1'


def test_argo_template_wrapper() -> None:
    from sensorium.engine.goport.template import ArgoTemplate, TemplateEmptyError

    t = ArgoTemplate("{{ .Input.name.first | upper }}")
    assert t.parse_error is None and t.execute({"name": {"first": "fake"}}) == "FAKE"
    with pytest.raises(TemplateExecError, match="invalid value; expected string"):
        t.execute({"name": {}})
    with pytest.raises(TemplateEmptyError, match=r"template evaluated to empty string or no value: \{\{ \.Input"):
        ArgoTemplate("{{ .Input.x }}").execute({})
    bad = ArgoTemplate("{{ no }}")  # Go rejects it too: Argo fails over at run time, not at load
    assert bad.template is None
    with pytest.raises(TemplateParseError, match='function "no" not defined'):
        bad.execute({})
    with pytest.raises(TemplateUnsupportedError):
        ArgoTemplate('{{ template "x" }}')
    assert ArgoTemplate("{{ now | date \"2006\" }}").execute("", clock=lambda: CLOCK) == "2024"


def test_integer_data_past_float64_is_go_decoders_error() -> None:
    """Template data holds Go's decoded JSON: an integer no float64 can hold fails as Go's decoder would."""
    assert render("{{ .n }}", {"n": 10**20}) == "1e+20"
    with pytest.raises(TemplateError, match=r"^json: cannot unmarshal number 1000\d+ into Go value of type float64$"):
        render("{{ .n }}", {"n": 10**400})
