from pathlib import Path

import pytest

from benchmark.core.errors import FileError, SpecError
from benchmark.core.files import read_json, read_text, read_yaml


def test_text_is_read_as_utf8(tmp_path: Path):
    path = tmp_path / "a.txt"
    path.write_text("café", encoding="utf-8")
    assert read_text(path, "note", "fix it") == "café"


@pytest.mark.parametrize(
    "content, message",
    [
        ("caf\xe9".encode("latin-1"), r"note .*a.txt is not UTF-8 text \(byte 0xe9 at offset 3\); fix it$"),
        (None, r"^cannot read note .*a.txt: No such file or directory; fix it$"),
    ],
)
def test_unreadable_text_is_one_line_of_the_callers_error_class(tmp_path: Path, content, message):
    path = tmp_path / "a.txt"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(SpecError, match=message):
        read_text(path, "note", "fix it", SpecError)


@pytest.mark.parametrize(
    "reader, text, message",
    [
        (
            read_yaml,
            "a: [1\n",
            r"malformed YAML at line 2, column 1: expected ',' or ']', but got '<stream end>'; fix it",
        ),
        (read_yaml, "- 1\n", "thing must be a YAML mapping of named keys, got list; fix it"),
        (read_yaml, "1: a\n", "thing must be a YAML mapping of named keys, got a key that is not text; fix it"),
        (read_json, '{"a": ', r"thing .* is not valid JSON \(Expecting value: line 1 column 7 \(char 6\)\); fix it"),
        (read_json, "[" * 100_000, r"thing .* is not valid JSON \(.*\); fix it"),
        (read_json, "3", "thing must be a JSON mapping of named keys, got int; fix it"),
    ],
)
def test_malformed_content_is_one_line(tmp_path: Path, reader, text, message):
    path = tmp_path / "f"
    path.write_text(text)
    with pytest.raises(FileError, match=message) as info:
        reader(path, "thing", "fix it")
    assert "\n" not in str(info.value)
    path.write_text('{"a": 1}' if reader is read_json else "a: 1\n")
    assert reader(path, "thing", "fix it") == {"a": 1}
