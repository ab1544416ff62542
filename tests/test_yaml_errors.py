"""YAML syntax errors in plain words: real broken Sensor files through `sensorium validate`, one sentence each at
the line of the problem; the same sentence from pure-Python PyYAML's differently worded messages."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from sensorium.engine.cli import main
from sensorium.engine.core.yamlerrors import explain

HEAD = "apiVersion: argoproj.io/v1alpha1\nkind: Sensor\nmetadata:\n  name: orders\n"  # lines 1-4

# (what is broken, the file from line 5 on, the line reported, the message after "invalid YAML: ")
CASES = [
    ("a key indented between two levels", "spec:\n  dependencies:\n    - name: order\n      eventSourceName: shop\n"
     "     eventName: created\n", 9,
     "line 9 is indented 5 spaces, between the levels of the lines above it (4 and 6 spaces): align it with the "
     "list started at line 7 or with a key above it"),
    ("a key indented less than its siblings", "spec:\n    dependencies: []\n   triggers: []\n", 7,
     "line 7 is indented 3 spaces, between the levels of the lines above it (2 and 4 spaces): align it with the "
     "mapping started at line 1 or with a key above it"),
    ("a key among list items", "spec:\n  dependencies:\n    - name: a\n    eventName: x\n", 8,
     "line 8 does not continue the list started at line 7: expected an item starting with '- ' here"),
    ("a list after a key's value", "spec: {}\n- name: a\n", 6,
     "a list item ('- ') cannot stand beside the keys of the mapping started at line 1: put the list under its "
     "key, indented"),
    ("an unquoted colon in a value", "spec:\n  description: note: this breaks\n", 6,
     "a ':' followed by a space cannot appear here: quote a value that contains ': ', or check that this line "
     "is not indented deeper than the key above it"),
    ("a tab indenting a key", "spec:\n\tdependencies: []\n", 6, "a tab character cannot indent YAML: use spaces"),
    ("a tab indenting a list item", "spec:\n  x: a\n\t- c\n", 7, "a tab character cannot indent YAML: use spaces"),
    ("a reserved character", "spec:\n  x: @here\n", 6,
     "'@' is reserved in YAML and cannot start a value: quote the value"),
    ("an unclosed double quote", 'spec:\n  x: "abc\n  y: 1\n', 8,
     "the quoted string opened at line 6 is never closed: add the closing quote"),
    ("an unclosed single quote", "spec:\n  x: 'abc\n", 7,
     "the quoted string opened at line 6 is never closed: add the closing quote"),
    ("an unclosed bracket", "spec:\n  x: [1, 2\n  y: 1\n", 7,
     "the list opened with '[' at line 6 is not closed with ']' where it should end, or two of its entries lack "
     "a ',' between them"),
    ("an unclosed brace", "spec:\n  x: {a: 1\n  y: 1\n", 7,
     "the mapping opened with '{' at line 6 is not closed with '}' where it should end, or two of its entries "
     "lack a ',' between them"),
    ("text after a quoted value", 'spec:\n  x: "a" b\n', 6,
     "unexpected text after a complete value: quote the whole value, or start a `key: value` on its own line"),
    ("a line without a colon", "spec:\n  x: |\n   text\n  y\n\n  z: 1\n", 10,
     "line 8 is neither a `key: value` nor a list item (no ':' after it): add the ':', or quote a text that spans "
     "several lines"),
    ("an unknown escape", 'spec:\n  x: "C:\\dir"\n', 6,
     "unknown escape sequence in a double-quoted string: write '\\\\' for a backslash, or use single quotes (in "
     "which a backslash is an ordinary character)"),
    ("an anchor without a name", "spec:\n  x: &\n", 6,
     "an anchor ('&') needs a name made of letters, digits, '-' or '_' right after it"),
]


@pytest.mark.parametrize(("text", "line", "message"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_a_broken_file_is_explained_at_its_line(tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str,
                                                line: int, message: str) -> None:
    path = tmp_path / "sensor.yaml"
    path.write_text(HEAD + text)
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.splitlines()[0] == f"{path}:{line}: invalid YAML: {message}", err


def test_an_undefined_alias_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "sensor.yaml"
    path.write_text(HEAD + "spec:\n  dependencies: *deps\n")
    assert main(["validate", str(path)]) == 2
    assert f"{path}:6: " in (err := capsys.readouterr().err) and "alias *deps has no anchor &deps before it" in err


@pytest.mark.parametrize(("text", "line", "message"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_pure_python_pyyaml_gets_the_same_sentence(text: str, line: int, message: str) -> None:
    """PyYAML without libyaml words its errors differently ("expected <block end>, but found '?'")."""
    document = HEAD + text
    with pytest.raises(yaml.MarkedYAMLError) as raised:
        for _ in yaml.parse(document, Loader=yaml.SafeLoader):
            pass
    assert explain(raised.value, document) == message
