"""ttspec/inputs.py: every file ttspec reads is a bounded regular file, and JSON errors are located."""

import os

import pytest

from ttspec.errors import ArchError
from ttspec.inputs import MAX_INT_DIGITS, MAX_JSON_DEPTH, load_json, quote, read_bytes, read_text, regular_file


def _refusal(call) -> ArchError:
    with pytest.raises(ArchError) as e:
        call()
    return e.value


def test_a_fifo_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "model.safetensors"
    os.mkfifo(fifo)  # opening it for reading without O_NONBLOCK would wait for a writer forever
    assert "FIFO" in str(_refusal(lambda: read_bytes(fifo, "prompts file", 100)))
    assert "FIFO" in str(_refusal(lambda: regular_file(fifo, "checkpoint shard")))


@pytest.mark.parametrize("path, kind", [("/dev/zero", "character device"), ("/", "directory")])
def test_devices_and_directories_are_refused(path, kind):
    assert kind in str(_refusal(lambda: read_bytes(path, "prompts file", 1 << 20)))


def test_a_dangling_symlink_names_its_target(tmp_path):
    link = tmp_path / "tokenizer.json"
    link.symlink_to(tmp_path / "gone.json")
    message = str(_refusal(lambda: read_text(link, "tokenizer", 100)))
    assert "gone.json" in message and "does not exist" in message


def test_the_size_limit_is_checked_before_reading(tmp_path):
    big = tmp_path / "prompts.txt"
    big.write_bytes(b"x" * 101)
    assert "101 bytes" in str(_refusal(lambda: read_text(big, "prompts file", 100)))
    assert read_text(big, "prompts file", 101) == "x" * 101


def test_non_utf8_is_located(tmp_path):
    f = tmp_path / "p.txt"
    f.write_bytes(b"ok\nab\xffc\n")
    e = _refusal(lambda: read_text(f, "prompts file", 100))
    assert (e.loc.line, e.loc.col) == (2, 3)


@pytest.mark.parametrize("text, line, col, words", [
    ('{"a": 1,\n  "b": ' + "[" * (MAX_JSON_DEPTH + 1) + "]" * (MAX_JSON_DEPTH + 1) + "}", 2,
     7 + MAX_JSON_DEPTH,  # the object is level 1
     "deeper than"),
    ('{"a": 1,\n "b": ' + "9" * 5000 + "}", 2, 7, "5,000 digits"),
    ('{"a": 1,\n "b": -' + "1" * (MAX_INT_DIGITS + 1) + "}", 2, 7, "digits"),
    ('{"a": 1,\n "b": NaN}', 2, 7, "not finite"),
    ('{"a": 1,\n "b": -Infinity}', 2, 7, "not finite"),
    ('{"a": 1,\n "b": 1e999}', 2, 7, "not finite"),
    ('{"a": 1,\n "b": }', 2, 7, "not valid JSON"),
])
def test_json_refusals_are_located(tmp_path, text, line, col, words):
    f = tmp_path / "config.json"
    f.write_text(text)
    e = _refusal(lambda: load_json(f, "config.json"))
    assert words in str(e) and (e.loc.file, e.loc.line, e.loc.col) == (str(f), line, col)


def test_brackets_and_digits_inside_strings_are_text(tmp_path):
    f = tmp_path / "config.json"
    f.write_text('{"a": "' + "[" * 200 + '\\"' + "9" * 100 + '", "b": 2.5}')
    data, _ = load_json(f, "config.json")
    assert data["b"] == 2.5 and data["a"].startswith("[[[")


def test_quote_keeps_outside_text_on_one_visible_line():
    shown = quote("4.46.0\n# injected\x1b[2J" + "x" * 500)
    assert "\n" not in shown and "\x1b" not in shown and len(shown) <= 160


def test_a_path_with_a_line_break_keeps_the_location_on_one_line(tmp_path):
    from ttspec.errors import Diagnostic, Loc

    shown = Diagnostic("error", "bad", Loc(str(tmp_path / "a\nb.arch"), 3, 4)).render()
    assert shown.splitlines()[0].endswith("a\u240ab.arch:3:4: error: bad")
