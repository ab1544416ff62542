"""The malformed-configuration corpus: every file `sensorium validate` must refuse with exit 2 and
`FILE:LINE: message` lines, without a traceback and within a few seconds.

`cases()` generates them (big files are generated, never checked in); tests/corpus/config/*.yaml holds small
hand-written ones, each starting with a `# expect: TEXT` comment naming a fragment of the message.
`python -m tests.corpus.make_config_corpus DIR` writes the generated cases to DIR to try them by hand.
"""

from __future__ import annotations

import random
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from sensorium.engine.config import is_test_cases

ROOT = Path(__file__).resolve().parents[2]
HAND_WRITTEN = Path(__file__).resolve().parent / "config"


@dataclass(frozen=True)
class Case:
    name: str
    data: bytes
    expect: str  # a fragment the output must contain ("" when only the form of the lines is checked)


SENSOR = """\
apiVersion: argoproj.io/v1alpha1
kind: Sensor
metadata:
  name: corpus
spec:
  dependencies:
    - name: order
      eventSourceName: shop
      eventName: created
      filters:
        data:
          - path: body.total
            type: number
            comparator: ">="
            value: ["100"]
        exprs:
          - expr: total > 5
            fields: [{name: total, path: body.total}]
    - name: payment
      eventSourceName: bank
      eventName: paid
  triggers:
    - template:
        name: ship
        conditions: "order && payment"
        http:
          url: http://127.0.0.1:9000/ship
          method: POST
          headers:
            Content-Type: application/json
          payload:
            - src: {dependencyName: order, dataKey: body.id}
              dest: id
"""


def _swap(old: str, new: str) -> str:
    assert old in SENSOR, old
    return SENSOR.replace(old, new, 1)


def _text_cases() -> Iterator[Case]:
    good = SENSOR.encode()
    at = good.index(b"corpus")
    for code in [*range(0x00, 0x09), 0x0B, 0x0C, *range(0x0E, 0x20), 0x7F]:
        yield Case(f"control-{code:02x}", good[:at] + bytes([code]) + good[at:], "not allowed")
    yield Case("c1-control-u0081", good[:at] + "\u0081".encode() + good[at:], "not allowed")
    yield Case("nul-at-start", b"\x00" + good, "")
    yield Case("utf16-le-no-bom", SENSOR.encode("utf-16-le"), "UTF-16")
    yield Case("utf16-be-no-bom", SENSOR.encode("utf-16-be"), "UTF-16")
    yield Case("utf32-le-no-bom", SENSOR.encode("utf-32-le"), "")
    for label, raw in [("ff", b"\xff"), ("lone-continuation", b"\x80"), ("bad-2-byte", b"\xc3\x28"),
                       ("overlong", b"\xc0\xaf"), ("encoded-surrogate", b"\xed\xa0\x80"),
                       ("latin1", "café".encode("latin-1")), ("too-big", b"\xf5\x80\x80\x80")]:
        yield Case(f"invalid-utf8-{label}", good[:at] + raw + good[at:], "UTF-8")
    yield Case("invalid-utf8-truncated-at-end", good + b"# \xe2\x82", "UTF-8")
    for esc in ["\\ud800", "\\udfff", "\\ud800\\udc00", "\\U0000d800"]:
        yield Case(f"surrogate-escape-{esc[1:].lower()}", _swap("name: corpus", f'name: "{esc}"').encode(),
                   "surrogate")
    yield Case("surrogate-escape-in-key", _swap("name: corpus", 'name: corpus\n  "\\ud800": x').encode(),
               "surrogate")
    for label, text in [("empty", ""), ("blank", "\n\n   \n"), ("comments-only", "# nothing\n# here\n"),
                        ("only-separator", "---\n"), ("separators", "---\n---\n---\n"),
                        ("null-document", "--- null\n"), ("tilde-document", "--- ~\n")]:
        yield Case(f"no-documents-{label}", text.encode(), "no Sensor, EventSource or EventBus documents")
    for label, text in [("number", "--- 5\n"), ("string", "just a string\n"), ("list", "- a\n- b\n"),
                        ("empty-list", "[]\n"), ("empty-map", "{}\n"), ("bool", "true\n")]:
        yield Case(f"document-kind-{label}", text.encode(), "")


def _syntax_cases() -> Iterator[Case]:
    for label, old, new in [
        ("tab-indent", "    - name: payment", "\t- name: payment"),
        ("unclosed-double-quote", '">="', '">='),
        ("unclosed-single-quote", "name: corpus", "name: 'corpus"),
        ("unclosed-flow-list", 'value: ["100"]', 'value: ["100"'),
        ("unclosed-flow-map", "{name: total, path: body.total}", "{name: total, path: body.total"),
        ("missing-colon-space", "kind: Sensor", "kind:Sensor\nfoo"),
        ("bad-indent", "  dependencies:", " dependencies:"),
        ("mapping-in-scalar", "name: corpus", "name: corpus: more"),
        ("seq-after-map", "  triggers:", "- x\n  triggers:"),
        ("undefined-alias", "name: corpus", "name: *nowhere"),
        ("alias-as-key", "name: corpus", "name: corpus\n  labels: &n [a]\n  *n : x"),
        ("bad-directive", "apiVersion:", "%YAML 2.0\n---\napiVersion:"),
        ("bad-escape", "name: corpus", 'name: "bad \\q escape"'),
        ("reserved-at", "name: corpus", "name: @corpus"),
        ("reserved-backtick", "name: corpus", "name: `corpus`"),
        ("trailing-after-flow", 'value: ["100"]', 'value: ["100"] x'),
        ("block-scalar-bad", "name: corpus", "name: |\nbad"),
        ("double-anchor", "name: corpus", "name: &a &b corpus"),
        ("anchor-then-nothing", "  name: corpus", "  name: corpus\n&x"),
        ("flow-in-key", "kind: Sensor", "[kind: Sensor"),
        ("duplicate-document-marker-garbage", "apiVersion:", "--- --- x\napiVersion:"),
    ]:
        yield Case(f"syntax-{label}", _swap(old, new).encode(), "")


def _tag_cases() -> Iterator[Case]:
    for tag, value in [
        ("!!python/object:os.system", "{}"), ("!!python/object/apply:os.system", '["echo hi"]'),
        ("!!python/object/new:os.system", '["echo hi"]'), ("!!python/name:os.system", "''"),
        ("!!python/module:os", "''"), ("!!python/tuple", "[1, 2]"), ("!!python/str", "x"),
        ("!!python/unicode", "x"), ("!!python/bytes", "eA=="), ("!!python/none", "''"),
        ("!<tag:yaml.org,2002:python/none>", "''"), ("!foo", "x"), ("!local", "{a: 1}"),
        ("!<tag:example.com,2000:app/foo>", "x"), ("!!binary", "aGVsbG8="), ("!!set", "{a, b}"),
        ("!!omap", "[{a: 1}]"), ("!!pairs", "[{a: 1}]"), ("!!timestamp", "2001-12-14"), ("!!merge", "x"),
        ("!!value", "x"),
    ]:
        slug = tag.strip("!<>").replace("/", "-").replace(":", "-").replace(",", "-")
        yield Case(f"tag-{slug}", _swap("name: corpus", f"name: {tag} {value}").encode(), "tag")
    for label, text, expect in [("int-not-int", "!!int abc", "!!int"), ("float-not-float", "!!float abc", "!!float"),
                                ("bool-not-bool", "!!bool maybe", "!!bool"), ("null-not-null", "!!null x", "!!null"),
                                ("map-on-list", "!!map [a]", "!!map"), ("seq-on-map", "!!seq {a: 1}", "!!seq"),
                                ("str-on-list", "!!str [a]", "!!str")]:
        yield Case(f"tag-mismatch-{label}", _swap("name: corpus", f"name: {text}").encode(), expect)
    yield Case("tag-on-document", ("!!python/object:os.system\n" + SENSOR).encode(), "tag")
    yield Case("tag-on-key", _swap("name: corpus", "!!python/name:os.system name: corpus").encode(), "tag")


def _key_cases() -> Iterator[Case]:
    for label, old, new in [
        ("complex-list-key-top", "kind: Sensor", "kind: Sensor\n? [a, b]\n: c"),
        ("complex-list-key-metadata", "name: corpus", "name: corpus\n  ? [a, b]\n  : c"),
        ("complex-map-key", "name: corpus", "name: corpus\n  ? {a: 1}\n  : c"),
        ("flow-complex-key", "name: corpus", "name: corpus\n  labels: {[a]: b}"),
        ("int-key", "name: corpus", "name: corpus\n  1: x"),
        ("bool-key", "name: corpus", "name: corpus\n  true: x"),
        ("yes-key", "Content-Type: application/json", "Content-Type: application/json\n            on: x"),
        ("null-key", "name: corpus", "name: corpus\n  ~: x"),
        ("empty-key", "name: corpus", "name: corpus\n  : x"),
        ("float-key", "name: corpus", "name: corpus\n  1.5: x"),
        ("int-key-in-spec", "  triggers:", "  7: x\n  triggers:"),
        ("int-key-in-headers", "Content-Type: application/json", "Content-Type: application/json\n            42: x"),
    ]:
        yield Case(f"key-{label}", _swap(old, new).encode(), "key")
    for label, old, new in [
        ("kind", "kind: Sensor", "kind: Sensor\nkind: EventSource"),
        ("name", "name: corpus", "name: corpus\n  name: other"),
        ("header", "Content-Type: application/json", "Content-Type: application/json\n            Content-Type: x"),
        ("flow", "{dependencyName: order, dataKey: body.id}", "{dependencyName: order, dependencyName: x}"),
        ("quoted-vs-plain", "name: corpus", "name: corpus\n  \"name\": other"),
    ]:
        yield Case(f"duplicate-key-{label}", _swap(old, new).encode(), "duplicate key")


def _kind_cases() -> Iterator[Case]:
    for label, old, new, expect in [
        ("kind-list", "kind: Sensor", "kind: [Sensor]", "kind"),
        ("kind-map", "kind: Sensor", "kind: {a: Sensor}", "kind"),
        ("kind-int", "kind: Sensor", "kind: 5", "kind"),
        ("kind-null", "kind: Sensor", "kind:", "kind"),
        ("kind-bool", "kind: Sensor", "kind: true", "kind"),
        ("kind-lower", "kind: Sensor", "kind: sensor", "kind"),
        ("api-list", "apiVersion: argoproj.io/v1alpha1", "apiVersion: [argoproj.io/v1alpha1]", "apiVersion"),
        ("api-wrong", "apiVersion: argoproj.io/v1alpha1", "apiVersion: v1", "apiVersion"),
        ("metadata-string", "metadata:\n  name: corpus", "metadata: corpus", "metadata"),
        ("metadata-list", "metadata:\n  name: corpus", "metadata: [corpus]", "metadata"),
        ("name-map", "name: corpus", "name: {a: 1}", "metadata.name"),
        ("name-list", "name: corpus", "name: [corpus]", "metadata.name"),
        ("name-int", "name: corpus", "name: 5", "metadata.name"),
        ("name-empty", "name: corpus", "name: ''", "metadata.name"),
        ("labels-list", "name: corpus", "name: corpus\n  labels: [a]", "metadata.labels"),
        ("spec-int", "spec:\n", "spec: 5\nx:\n", "spec"),
        ("dependencies-map", "  dependencies:\n", "  dependencies: {a: 1}\n  x:\n", "spec"),
        ("dependencies-string", "  dependencies:\n", "  dependencies: oops\n  x:\n", "spec"),
        ("dependency-string", "    - name: payment\n      eventSourceName: bank\n      eventName: paid\n",
         "    - payment\n", "spec.dependencies[1]"),
        ("dependency-name-list", "- name: payment", "- name: [payment]", "spec.dependencies[1].name"),
        ("filters-list", "      filters:\n        data:", "      filters: []\n      x:\n        data:", "filters"),
        ("data-map", "        data:\n          - path", "        data: {a: 1}\n        x:\n          - path", "data"),
        ("value-string", 'value: ["100"]', "value: 100", "value"),
        ("value-map", 'value: ["100"]', "value: {a: 1}", "value"),
        ("comparator-list", 'comparator: ">="', "comparator: [a]", "comparator"),
        ("exprs-string", "        exprs:\n          - expr", "        exprs: x\n        y:\n          - expr", "exprs"),
        ("triggers-int", "  triggers:\n", "  triggers: 3\n  x:\n", "triggers"),
        ("template-list", "    - template:\n        name: ship", "    - template: []\n      x:\n        name: ship",
         "template"),
        ("conditions-map", 'conditions: "order && payment"', "conditions: {a: b}", "conditions"),
        ("conditions-list", 'conditions: "order && payment"', "conditions: [order]", "conditions"),
        ("url-list", "url: http://127.0.0.1:9000/ship", "url: [http://x]", "url"),
        ("headers-list", "          headers:\n            Content-Type: application/json",
         "          headers: [a, b]", "headers"),
        ("header-value-map", "Content-Type: application/json", "Content-Type: {a: b}", "headers"),
        ("payload-map", "          payload:\n", "          payload: {a: 1}\n          x:\n", "payload"),
        ("src-string", "src: {dependencyName: order, dataKey: body.id}", "src: order", "src"),
        ("http-list", "        http:\n", "        http: []\n        x:\n", "http"),
    ]:
        yield Case(f"kind-{label}", _swap(old, new).encode(), expect)


def _merge_cases() -> Iterator[Case]:
    for label, value in [("int", "5"), ("string", "x"), ("list-of-ints", "[1, 2]"), ("null", "~"),
                         ("list-with-int", "[{a: 1}, 5]"), ("nested-list", "[[{a: 1}]]")]:
        yield Case(f"merge-{label}", _swap("name: corpus", f"name: corpus\n  <<: {value}").encode(), "<<")
    yield Case("merge-alias-to-list", _swap("name: corpus", "name: corpus\n  labels: &l [a]\n  <<: *l").encode(),
               "<<")
    chain = ["base: &m0 {k0: v}"] + [f"m{i}: &m{i}\n  <<: *m{i - 1}\n  k{i}: v" for i in range(1, 3000)]
    yield Case("merge-chain-3000", ("\n".join(chain) + "\n" + SENSOR.replace("kind: Sensor\n", "kind: Sensor\n", 1)
                                    ).encode(), "")
    laughs = ["a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    laughs += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 9)]
    yield Case("billion-laughs", ("\n".join(laughs) + "\nkind: Sensor\n").encode(), "expand")
    merges = ["m0: &m0 {a: 1, b: 2}"] + [f"m{i}: &m{i} {{<<: [{', '.join([f'*m{i - 1}'] * 10)}]}}"
                                           for i in range(1, 9)]
    yield Case("merge-bomb", ("\n".join(merges) + "\nkind: Sensor\n").encode(), "expand")
    yield Case("recursive-alias-list", _swap("name: corpus", "name: corpus\n  labels: &r [*r]").encode(), "")
    yield Case("recursive-alias-map", _swap("name: corpus", "name: corpus\n  annotations: &r {x: *r}").encode(),
               "")
    yield Case("recursive-merge", _swap("name: corpus", "name: corpus\n  labels: &r {<<: *r}").encode(), "")


def _nested(depth: int, open_: str, close: str, inner: str = "x") -> str:
    return open_ * depth + inner + close * depth


def _limit_cases() -> Iterator[Case]:
    yield Case("huge-file-20mb", (SENSOR + "# " + "x" * (20 * 1024 * 1024) + "\n").encode(), "limit")
    yield Case("huge-scalar-6mb", _swap("name: corpus", "name: " + "x" * (6 * 1024 * 1024)).encode(), "limit")
    yield Case("list-300000", ("kind: Sensor\nitems:\n" + "- a\n" * 300_000).encode(), "limit")
    yield Case("flow-list-300000", ("kind: Sensor\nitems: [" + "a," * 300_000 + "]\n").encode(), "limit")
    yield Case("mapping-100000-keys", ("kind: Sensor\n" + "".join(f"k{i}: v\n" for i in range(100_000))).encode(),
               "limit")
    yield Case("documents-3000", ("---\n" + SENSOR) .join([""] * 3001).encode(), "limit")
    yield Case("documents-3000-empty", b"---\n" * 3000 + SENSOR.encode(), "")
    yield Case("deep-flow-list-2000", _swap("name: corpus", "name: corpus\n  labels: " + _nested(2000, "[", "]"))
               .encode(), "nest")
    yield Case("deep-flow-list-100000", ("x: " + _nested(100_000, "[", "]") + "\n").encode(), "nest")
    yield Case("deep-flow-map-2000", ("kind: Sensor\nx: " + _nested(2000, "{a: ", "}") + "\n").encode(), "nest")
    block = "".join("  " * i + f"k{i}:\n" for i in range(2000)) + "  " * 2000 + "leaf\n"
    yield Case("deep-block-map-2000", ("kind: Sensor\n" + block).encode(), "nest")
    yield Case("deep-block-list-2000", ("kind: Sensor\nx:\n" + "".join("  " * i + "-\n" for i in range(1, 2000))
                                        + "  " * 2000 + "- leaf\n").encode(), "nest")
    yield Case("deep-compact-list-2000", ("kind: Sensor\nx:\n" + "- " * 2000 + "leaf\n").encode(), "nest")
    yield Case("only-end-marker", b"...\n", "")
    yield Case("date-key-in-spec", _swap("  triggers:", "  2024-01-01: x\n  triggers:").encode(), "unknown field")
    deep_alias = "a: &d " + _nested(60, "[", "]") + "\nb: " + _nested(60, "[", "]", "*d") + "\nkind: Sensor\n"
    yield Case("deep-through-alias", deep_alias.encode(), "nest")
    yield Case("int-10000-digits", _swap("name: corpus", "name: corpus\n  x: " + "9" * 10_000).encode(), "")
    yield Case("int-5000-digits-port", _swap("eventName: paid", "eventName: " + "1" * 5000).encode(), "")
    yield Case("long-key-100k", _swap("name: corpus", "name: corpus\n  " + "k" * 100_000 + ": v").encode(), "")


def _expression_cases() -> Iterator[Case]:
    terms = " && ".join(["order", "payment"] * 2500) + " && nope"
    yield Case("condition-5000-terms", _swap('"order && payment"', f'"{terms}"').encode(), "conditions")
    yield Case("condition-3000-parens", _swap('"order && payment"', '"' + _nested(3000, "(", ")", "order") + '"')
               .encode(), "conditions")
    yield Case("condition-100000-parens", _swap('"order && payment"', '"' + _nested(100_000, "(", ")", "order")
                                               + '"').encode(), "conditions")
    yield Case("condition-unbalanced-3000", _swap('"order && payment"', '"' + "(" * 3000 + 'order"').encode(),
               "conditions")
    for label, expr in [("3000-parens", _nested(3000, "(", ")", "total > 5")), ("3000-unary", "!" * 3000 + "total"),
                        ("3000-spaced-unary", "! " * 3000 + "total"), ("3000-spaced-minus", "- " * 3000 + "total > 5"),
                        ("3000-minus", "-" * 3000 + "total > 5"),
                        ("5000-terms", " && ".join(["total > 5"] * 5000)),
                        ("5000-plus", " + ".join(["total"] * 5000) + " > 5"),
                        ("3000-ternary", "true ? " * 3000 + "1" + " : 2" * 3000),
                        ("3000-array", "total IN " + _nested(3000, "(", ")", "1")),
                        ("600-chain", " + ".join(["total"] * 600) + " > 5")]:
        yield Case(f"expr-{label}", _swap("expr: total > 5", f"expr: '{expr}'").encode(), "expr")
    yield Case("regex-3000-parens", _swap('value: ["100"]', 'value: ["100"]\n          - path: body.s\n'
                                          '            type: string\n            value: ["'
                                          + _nested(3000, "(", ")", "a") + '"]').encode(), "")
    template = "{{ " + _nested(3000, "(", ")", "1") + " }}"
    yield Case("template-3000-parens", _swap("dest: id", f"dest: id\n            - src: {{dependencyName: order, "
                                             f"dataTemplate: '{template}'}}\n              dest: t").encode(), "")


def _env_cases() -> Iterator[Case]:
    for label, ref in [("unclosed", "${SINK"), ("unclosed-default", "${SINK:-http://x"), ("empty", "${}"),
                       ("digit-name", "${1SINK}"), ("bad-char", "${SI NK}"), ("question", "${SINK:?unset}"),
                       ("dollar-brace-eof", "${"), ("nested", "${A${B}}"), ("dash-default", "${SINK-x}")]:
        yield Case(f"env-{label}", _swap("url: http://127.0.0.1:9000/ship", f"url: {ref}/ship").encode(), "${")
    yield Case("env-unclosed-last-line", (SENSOR + "# ${TAIL").encode(), "${")
    yield Case("env-unset", _swap("url: http://127.0.0.1:9000/ship", "url: ${SENSORIUM_CORPUS_UNSET}/ship")
               .encode(), "not set")


def _example_files() -> list[Path]:
    return sorted(p for p in (ROOT / "examples").rglob("*.yaml") if not is_test_cases(p))


def _mutations(name: str, text: str) -> Iterator[Case]:
    """Mutations of one valid example file that each make it invalid."""
    lines = text.splitlines(keepends=True)
    body = [i for i, line in enumerate(lines) if line.strip() and not line.lstrip().startswith("#")]
    kind_at = next(i for i, line in enumerate(lines) if line.startswith("kind:"))
    name_at = next(i for i, line in enumerate(lines) if line.strip().startswith("name:"))
    rng = random.Random(name)

    def edit(index: int, new: str) -> str:
        return "".join([*lines[:index], new, *lines[index + 1:]])

    yield Case(f"{name}-kind-list", edit(kind_at, "kind: [" + lines[kind_at][6:].strip() + "]\n"), "kind")
    yield Case(f"{name}-kind-twice", edit(kind_at, lines[kind_at] * 2), "duplicate key")
    yield Case(f"{name}-tab", edit(body[-1], "\t" + lines[body[-1]]), "")
    yield Case(f"{name}-nul", edit(name_at, lines[name_at].replace("name:", "name: \x00")), "not allowed")
    yield Case(f"{name}-python-tag", edit(name_at, lines[name_at].replace("name:", "name: !!python/name:os.system")),
               "tag")
    yield Case(f"{name}-surrogate", edit(name_at, lines[name_at].split("name:")[0] + 'name: "\\udc80"\n'),
               "surrogate")
    yield Case(f"{name}-complex-key", edit(kind_at, lines[kind_at] + "? [a, b]\n: c\n"), "key")
    yield Case(f"{name}-merge-int", edit(kind_at, lines[kind_at] + "<<: 5\n"), "<<")
    yield Case(f"{name}-utf16", text.encode("utf-16-le"), "UTF-16")
    yield Case(f"{name}-latin1", text.replace("name:", "name: é", 1).encode("latin-1", "replace"), "UTF-8")
    yield Case(f"{name}-unclosed-quote", edit(name_at, lines[name_at].replace("name: ", 'name: "')), "")
    yield Case(f"{name}-unknown-tag", edit(name_at, lines[name_at].replace("name: ", "name: !secret ")), "tag")
    yield Case(f"{name}-truncated-in-flow", text[: text.index("\nkind:")] + "\nkind: [Sens", "")
    yield Case(f"{name}-env-unclosed", edit(name_at, lines[name_at].replace("name: ", "name: ${X")), "${")
    cut = rng.choice(body[len(body) // 2:])
    yield Case(f"{name}-dedent-kind", edit(kind_at, "  " + lines[kind_at]), "")
    data = bytearray(text.encode())
    spot = rng.randrange(len(data))
    data[spot:spot] = b"\x01"
    yield Case(f"{name}-control-byte", bytes(data), "not allowed")
    yield Case(f"{name}-deep", edit(cut, lines[cut] + "x: " + "[" * 1500 + "]" * 1500 + "\n"), "")


def cases() -> list[Case]:
    """Every generated case; names are unique."""
    out = [*_text_cases(), *_syntax_cases(), *_tag_cases(), *_key_cases(), *_kind_cases(), *_merge_cases(),
           *_limit_cases(), *_expression_cases(), *_env_cases()]
    for path in _example_files():
        stem = path.relative_to(ROOT / "examples").as_posix().removesuffix(".yaml").replace("/", "-")
        out.extend(_mutations(stem, path.read_text()))
    out = [Case(c.name, c.data if isinstance(c.data, bytes) else str(c.data).encode(), c.expect) for c in out]
    names = [c.name for c in out]
    assert len(names) == len(set(names)), "duplicate case names"
    return out


def hand_written() -> list[Case]:
    """The checked-in small cases: `# expect: TEXT` on their first line."""
    out = []
    for path in sorted(HAND_WRITTEN.glob("*.yaml")):
        data = path.read_bytes()
        first = data.split(b"\n", 1)[0].decode()
        expect = first.removeprefix("# expect:").strip() if first.startswith("# expect:") else ""
        out.append(Case(f"hand-{path.stem}", data, expect))
    return out


def write(directory: Path) -> int:
    directory.mkdir(parents=True, exist_ok=True)
    for case in cases():
        (directory / f"{case.name}.yaml").write_bytes(case.data)
    return len(cases())


if __name__ == "__main__":
    print(f"wrote {write(Path(sys.argv[1]))} files to {sys.argv[1]}")
