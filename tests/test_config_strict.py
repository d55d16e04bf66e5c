"""featgeom.config: strict building (finite floats, seeds) and reading config files."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from featgeom.config import MAX_SEED, build, check_seed, read_config_file
from featgeom.errors import ConfigError


@dataclass(frozen=True)
class Knobs:
    scale: float = 1.0
    weights: list[float] | None = None
    count: int = 0


def write(tmp_path, text: str | bytes, name: str = "cfg.yaml"):
    path = tmp_path / name
    (path.write_bytes if isinstance(text, bytes) else path.write_text)(text)
    return path


def one_line_error(call) -> str:
    with pytest.raises(ConfigError) as err:
        call()
    message = str(err.value)
    assert "\n" not in message, message
    return message


@pytest.mark.parametrize("text, field", [
    ("scale: .nan", "scale"),
    ("scale: .inf", "scale"),
    ("scale: -.inf", "scale"),
    ("weights: [0.5, .nan]", "weights[1]"),
    ("count: .inf", "count"),
])
def test_non_finite_numbers_are_refused_naming_the_field(tmp_path, text, field):
    data = read_config_file(write(tmp_path, text))
    message = one_line_error(lambda: build(Knobs, data))
    assert message.startswith(f"{field}:"), message


def test_json_nan_and_huge_integers_are_refused(tmp_path):
    data = read_config_file(write(tmp_path, '{"scale": NaN}', "cfg.json"))
    assert one_line_error(lambda: build(Knobs, data)).startswith("scale: must be a finite number")
    assert one_line_error(lambda: build(Knobs, {"scale": 10**400})).startswith("scale: must be a finite number")
    assert build(Knobs, {"scale": 3}).scale == 3.0


def test_unknown_keys_of_mixed_types_name_one_of_them():
    assert one_line_error(lambda: build(Knobs, {1: 2, "colour": 3})).startswith("1: unknown key")


@pytest.mark.parametrize("seed", [-1, MAX_SEED + 1, True, 1.5])
def test_check_seed_refuses_what_numpy_or_torch_cannot_take(seed):
    with pytest.raises(ConfigError, match=r"^family_seed: must be an integer seed in \[0, "):
        check_seed("family_seed", seed)
    check_seed("family_seed", 0)
    check_seed("family_seed", MAX_SEED)


def test_reads_yaml_and_json_mappings(tmp_path):
    assert read_config_file(write(tmp_path, "a: 1\nb: {c: [1, 2]}\n")) == {"a": 1, "b": {"c": [1, 2]}}
    assert read_config_file(write(tmp_path, '{\n\t"a": 1\n}', "cfg.json")) == {"a": 1}  # tabs: fine in JSON
    assert read_config_file(write(tmp_path, "\ufeffa: 1\n".encode())) == {"a": 1}  # byte-order mark
    merged = "base: &b {x: 1, y: 2}\nother:\n  <<: *b\n  y: 3\n"  # a merge key may be overridden
    assert read_config_file(write(tmp_path, merged))["other"] == {"x": 1, "y": 3}


@pytest.mark.parametrize("text, expected", [
    ("seed: 1\nname: a\nseed: 2\n", "at line 3, column 1: duplicate key 'seed' (first given at line 1)"),
    ("world:\n  seed: 1\n  seed: 2\n", "at line 3, column 3: duplicate key 'seed' (first given at line 2)"),
    ("variants:\n  - {name: a, name: b}\n", "duplicate key 'name' (first given at line 2)"),
])
def test_duplicate_yaml_keys_are_refused_naming_key_and_line(tmp_path, text, expected):
    path = write(tmp_path, text)
    message = one_line_error(lambda: read_config_file(path))
    assert message.startswith(f"{path}: invalid YAML at line ") and expected in message, message


def test_duplicate_json_keys_are_refused(tmp_path):
    path = write(tmp_path, '{"a": {"b": 1, "b": 2}}', "cfg.json")
    assert one_line_error(lambda: read_config_file(path)) == f"{path}: invalid JSON: duplicate key 'b'"


@pytest.mark.parametrize("content, expected", [
    ("name: [unclosed", ("invalid YAML at line 1, column 16: while parsing a flow sequence, "
                         "expected ',' or ']', but got '<stream end>'")),
    ("a: 1\n---\nb: 2\n", ("invalid YAML at line 2, column 1: expected a single document in the stream, "
                            "but found another document")),
    ("- 1\n- 2\n", "expected a mapping (key: value lines) at the top level, got a list"),
    ("", "expected a mapping (key: value lines) at the top level, got an empty file"),
    (b"name: caf\xe9\n", "not UTF-8 text (byte 0xe9 at offset 9)"),
])
def test_bad_files_give_one_line_naming_the_file(tmp_path, content, expected):
    path = write(tmp_path, content)
    assert one_line_error(lambda: read_config_file(path)) == f"{path}: {expected}"


def test_bad_json_gives_the_position(tmp_path):
    path = write(tmp_path, '{"a": 1,\n "b": }', "cfg.json")
    expected = f"{path}: invalid JSON at line 2, column 7: Expecting value"
    assert one_line_error(lambda: read_config_file(path)) == expected


def test_missing_file_and_directory(tmp_path):
    missing = tmp_path / "nope.yaml"
    assert one_line_error(lambda: read_config_file(missing)) == f"{missing}: config file not found"
    assert one_line_error(lambda: read_config_file(tmp_path)) == f"{tmp_path}: is a directory, not a config file"
