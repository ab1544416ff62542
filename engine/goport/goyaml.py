"""YAML event data to JSON text as Argo does it (ghodss/yaml `YAMLToJSON`: go-yaml v2, then encoding/json).

PyYAML resolves plain scalars by YAML 1.1 regexes; go-yaml v2 differs (`y`/`n` are booleans, `1.5e3` is a
float, `0o17`/`017` are octal ints, timestamps stay strings), so every plain scalar goes through a port of
go-yaml v2's `resolve()`. Map keys become strings the ghodss way (`true`, `1`, `2.5`), so `true` and `1` stay
distinct keys.
"""

from __future__ import annotations

import math
import re
from typing import Any

import yaml

from sensorium.engine.goport import strconv
from sensorium.engine.goport.jsonenc import marshal

_PLAIN = "tag:sensorium,2026:go-yaml-v2-plain"
_MAP: dict[str, Any] = {}
for _words, _value in (
    ("y Y yes Yes YES true True TRUE on On ON", True),
    ("n N no No NO false False FALSE off Off OFF", False),
    ("~ null Null NULL", None),
    (".nan .NaN .NAN", math.nan),
    (".inf .Inf .INF +.inf +.Inf +.INF", math.inf),
    ("-.inf -.Inf -.INF", -math.inf),
):
    _MAP.update(dict.fromkeys(_words.split(), _value))
_MAP[""] = None
_YAML_FLOAT = re.compile(r"^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$")
_DOT_FLOAT = re.compile(r"^\.[0-9]+([eE][-+]?[0-9]+)?$")


def go_resolve(text: str) -> Any:
    """go-yaml v2 `resolve("", text)` for a plain scalar, as decoded into interface{}."""
    if text in _MAP:
        return _MAP[text]
    first = text[:1]
    if first == ".":
        return _go_float(text) if _DOT_FLOAT.match(text) else text
    if first in "+-" or first.isdigit():
        plain = text.replace("_", "")
        number = strconv.parse_int(plain)
        if number is None:
            number = strconv.parse_uint(plain)
        if number is not None:
            return number
        if _YAML_FLOAT.match(plain):
            return _go_float(plain)
        if plain.startswith(("0b", "-0b")):
            neg = plain.startswith("-")
            bits = plain[3:] if neg else plain[2:]
            if bits and set(bits) <= {"0", "1"}:
                return -int(bits, 2) if neg else int(bits, 2)
    return text


def _go_float(text: str) -> float | str:
    """Go `strconv.ParseFloat`: an error (out of range) keeps the scalar a string."""
    try:
        return strconv.parse_float(text)
    except strconv.NumError:
        return text


def _float32_key(f: float) -> str:
    """ghodss/yaml's float map key: `strconv.FormatFloat(f, 'g', -1, 32)`, with Go's `+Inf`, `-Inf`, `NaN`
    written back as YAML's `.inf`, `-.inf`, `.nan`."""
    text = strconv.format_float(f, "g", -1, 32)
    return {"+Inf": ".inf", "-Inf": "-.inf", "NaN": ".nan"}.get(text, text)


def _go_key(key: Any) -> str:
    if isinstance(key, bool):
        return "true" if key else "false"
    if isinstance(key, float):
        return _float32_key(key)
    return "null" if key is None else str(key)


class _GoYamlLoader(yaml.SafeLoader):
    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        self.flatten_mapping(node)
        mapping: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = self.construct_object(key_node, deep=deep)
            mapping[_go_key(key)] = self.construct_object(value_node, deep=deep)
        return mapping


def _construct_plain(loader: yaml.SafeLoader, node: yaml.Node) -> Any:
    return go_resolve(str(node.value))


_GoYamlLoader.yaml_implicit_resolvers = {
    "<": [(tag, rx) for tag, rx in yaml.SafeLoader.yaml_implicit_resolvers.get("<", [])
          if tag == "tag:yaml.org,2002:merge"],
    None: [(_PLAIN, re.compile(r"(?s).*"))],
}
_GoYamlLoader.add_constructor(_PLAIN, _construct_plain)


def yaml_to_json(text: str) -> str:
    """First YAML document as compact Go-style JSON; ValueError on YAML or JSON-encoding errors."""
    try:
        document = next(iter(yaml.load_all(text, Loader=_GoYamlLoader)), None)
    except yaml.YAMLError as exc:
        raise ValueError("yaml: " + " ".join(str(exc).split())) from None
    return marshal(document)
