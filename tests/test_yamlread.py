"""engine.core.yamlread: what valid YAML still reads as, and each limit exactly at its boundary."""

from __future__ import annotations

import codecs
from pathlib import Path
from typing import Any

import pytest

from sensorium.engine.config import substitute_env
from sensorium.engine.core import yamlread
from sensorium.engine.core.errors import ConfigError


def read(text: str) -> list[Any]:
    return [doc.data for doc in yamlread.parse(text, "f.yaml")]


def refused(text: str) -> str:
    with pytest.raises(ConfigError) as info:
        yamlread.parse(text, "f.yaml")
    return info.value.render()


def test_merge_keys_aliases_and_overrides_read_as_yaml_says() -> None:
    text = """\
base: &base {method: POST, timeout: 5}
extra: &extra {timeout: 9, retries: 2}
one: {<<: *base, timeout: 7}
two:
  <<: [*extra, *base]
  url: http://x
copy: *base
"""
    data = read(text)[0]
    assert data["one"] == {"method": "POST", "timeout": 7}
    assert data["two"] == {"timeout": 9, "retries": 2, "method": "POST", "url": "http://x"}
    assert data["copy"] == {"method": "POST", "timeout": 5}


def test_scalars_follow_the_core_schema_and_timestamps_stay_text() -> None:
    data = read('a: 5\nb: "5"\nc: !!str 5\nd: !!float 5\ne: 2024-01-01\nf: on\n"on": x\ng: ~\nh: 0x1f\n'
                'i: 1.5e+3\nj: 1e3\n')[0]
    assert data == {"a": 5, "b": "5", "c": "5", "d": 5.0, "e": "2024-01-01", "f": True, "on": "x", "g": None,
                    "h": 31, "i": 1500.0, "j": "1e3"}  # YAML 1.1 floats need a dot and a signed exponent


def test_empty_and_null_documents_are_skipped_and_lines_are_kept() -> None:
    docs = yamlread.parse("---\n---\n# c\n--- ~\n---\nkind: Sensor\n", "f.yaml")
    assert [d.data for d in docs] == [{"kind": "Sensor"}]
    assert docs[0].node.start_mark.line + 1 == 6


@pytest.mark.parametrize("data", [codecs.BOM_UTF8 + b"kind: Sensor\n", "\ufeffkind: Sensor\n".encode("utf-16"),
                                  "\ufeffkind: Sensor\n".encode("utf-16-be")])
def test_utf8_and_utf16_with_a_byte_order_mark_are_read(data: bytes, tmp_path: Path) -> None:
    path = tmp_path / "f.yaml"
    path.write_bytes(data)
    assert read(yamlread.read_file(str(path), "f.yaml")) == [{"kind": "Sensor"}]


def test_depth_limit_is_exact() -> None:
    depth = yamlread.MAX_DEPTH
    assert read("[" * depth + "]" * depth)  # 100 nested lists: fine
    message = refused("x: " + "[" * depth + "]" * depth)
    assert message.startswith("f.yaml:1: x[0][0][0]")
    assert message.endswith("[0][0]: lists and mappings nested more than 100 levels deep (the limit)")
    assert len(message) < 250


def test_depth_through_an_alias_counts_what_it_repeats() -> None:
    inner = "[" * 60 + "]" * 60
    assert read(f"a: &d {inner}\nb: *d\n")
    message = refused(f"a: &d {inner}\nb: " + "[" * 50 + "*d" + "]" * 50 + "\n")
    assert message.startswith("f.yaml:2: b[0][0]") and "alias *d nests lists and mappings more than 100" in message


@pytest.mark.parametrize(("written", "deepest"), [("{<<: *m}", 50), ("{<<: [*m]}", 50), ("{k: *m}", 49)])
def test_merged_keys_count_at_the_level_they_are_merged_into(written: str, deepest: int) -> None:
    """`c: {<<: *m}` holds m's keys at its own level (as deep as m); `{k: *m}` is one level deeper."""
    def text(outer: int) -> str:
        return ("a: &m {x: " + "[" * 48 + "]" * 48 + "}\nc: &c " + written + "\nd: " + "[" * outer + "*c"
                + "]" * outer + "\n")

    assert read(text(deepest))
    assert "alias *c nests lists and mappings more than 100 levels deep (the limit)" in refused(text(deepest + 1))


def test_entries_limit_is_exact() -> None:
    items = yamlread.MAX_ITEMS
    assert len(read("[" + "1," * items + "]")[0]) == items
    assert refused("x:\n" + "- 1\n" * (items + 1)) == (
        f"f.yaml:{items + 2}: x[10000]: more than 10000 entries in one list or mapping (the limit)")


def test_documents_limit_is_exact() -> None:
    limit = yamlread.MAX_DOCUMENTS
    assert len(read("--- {a: 1}\n" * limit)) == limit
    assert refused("--- {a: 1}\n" * (limit + 1)) == f"f.yaml:{limit + 1}: more than 200 documents in one file " \
                                                    "(the limit)"


def test_alias_expansion_is_counted() -> None:
    ten = "[" + ", ".join(["x"] * 10) + "]"
    ok = f"a: &a {ten}\nb: &b [{', '.join(['*a'] * 10)}]\nc: &c [{', '.join(['*b'] * 10)}]\n"  # 1,000 strings
    assert len(read(ok)[0]["c"]) == 10
    bomb = ok + "".join(f"{n}: &{n} [{', '.join(['*' + p] * 10)}]\n" for p, n in zip("cd", "de", strict=True))
    assert refused(bomb) == "f.yaml:5: e[3]: aliases and merge keys expand this file to more than 50,000 values " \
                            "(the limit)"


def test_file_size_limit(tmp_path: Path) -> None:
    path = tmp_path / "big.yaml"
    path.write_bytes(b"a: 1\n" + b"#" * (yamlread.MAX_FILE_BYTES - 6) + b"\n")
    assert read(yamlread.read_file(str(path), "big.yaml")) == [{"a": 1}]
    path.write_bytes(b"a: 1\n" + b"#" * (yamlread.MAX_FILE_BYTES - 5) + b"\n")
    with pytest.raises(ConfigError, match=r"^big.yaml:0: file is larger than 4 MiB \(the limit for one file\)$"):
        yamlread.read_file(str(path), "big.yaml")


def test_integer_length_limit() -> None:
    assert read("a: " + "9" * 100) == [{"a": int("9" * 100)}]
    assert refused("a: " + "9" * 101) == "f.yaml:1: a: integer longer than 100 characters (the limit)"


@pytest.mark.parametrize(("data", "message"), [
    (b"a: b\nc: \xff\n", "f.yaml:2: not valid UTF-8: byte 0xff at column 4 (invalid start byte); save the file as "
                         "UTF-8"),
    (b"a: b\nc: \x1b[0m\n", "f.yaml:2: control character U+001B (ESC) at column 4 is not allowed in YAML"),
    ("a: b\n".encode("utf-16-le"), "f.yaml:1: file looks like UTF-16 without a byte-order mark; save it as UTF-8"),
])
def test_text_that_is_not_yaml_is_refused_at_its_line(data: bytes, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        yamlread.decode(data, "f.yaml")
    assert info.value.render() == message


def test_environment_substitution_keeps_working_and_refuses_malformed_references() -> None:
    env = {"HOST": "example.com"}
    assert substitute_env("a: ${HOST}\nb: ${PORT:-80}\nc: $HOST\n", "f.yaml", env) == (
        "a: example.com\nb: 80\nc: $HOST\n")
    for text in ["a: 1\nb: ${HOST", "a: 1\nb: ${}", "a: 1\nb: ${HOST:-x\n}", "a: 1\nb: ${HO ST}"]:
        with pytest.raises(ConfigError, match=r"^f\.yaml:2: malformed '\$\{") as info:
            substitute_env(text, "f.yaml", env)
        assert "want ${NAME} or ${NAME:-default}" in info.value.message
