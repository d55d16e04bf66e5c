"""Strict construction of config dataclasses from plain dicts (YAML/JSON), and config files.

``build(cls, data, where)`` creates ``cls(**data)`` recursively for nested dataclass fields, and
turns unknown keys, missing keys, wrong types, non-finite floats and ``__post_init__`` ValueErrors
into one :class:`~featgeom.errors.ConfigError` whose message starts with the dotted field path.
:func:`read_config_file` reads a YAML or JSON file into a mapping, refusing duplicate keys.
"""

from __future__ import annotations

import dataclasses
import json
import math
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

from featgeom.errors import ConfigError

T = TypeVar("T")
MAX_SEED = 2**32 - 1  # 32-bit seeds: every seed derived from one (plus offsets) stays valid for NumPy and PyTorch


def build(cls: type[T], data: Any, where: str = "") -> T:
    """Build dataclass ``cls`` from mapping ``data``; ``where`` is the field path for messages."""
    if isinstance(data, cls):
        return data
    if not isinstance(data, dict):
        raise ConfigError(f"{where or cls.__name__}: expected a mapping, got {type(data).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - set(fields), key=str)
    if unknown:
        path = _join(where, str(unknown[0]))
        raise ConfigError(f"{path}: unknown key (allowed: {', '.join(sorted(fields))})")
    hints = typing.get_type_hints(cls)
    kwargs = {name: _convert(hints[name], value, _join(where, name)) for name, value in data.items()}
    try:
        return cls(**kwargs)
    except ConfigError as exc:  # raised by __post_init__ as "field: message"
        raise ConfigError(_join(where, str(exc))) from None
    except TypeError as exc:  # a required key is missing
        raise ConfigError(f"{where or cls.__name__}: {exc}") from None


def to_dict(obj: Any) -> Any:
    """Plain-JSON form of a (nested) config dataclass: dicts, lists, numbers, strings, None."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {str(k): to_dict(v) for k, v in obj.items()}
    return obj


def field_error(field: str, message: str) -> ConfigError:
    """A ConfigError for ``field`` (used by ``__post_init__`` validators): 'field: message'."""
    return ConfigError(f"{field}: {message}")


def check_seed(field: str, seed: int) -> None:
    """Raise a field error unless ``seed`` is a valid random seed: an integer in [0, MAX_SEED]."""
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
        raise field_error(field, f"must be an integer seed in [0, {MAX_SEED}] (NumPy and PyTorch seeds are "
                                 f"non-negative), got {seed!r}")


def read_config_file(path: Path) -> dict:
    """The mapping in YAML (or, for a ``.json`` suffix, JSON) file ``path``.

    Duplicate keys are refused (naming the key and its line; YAML and JSON parsers otherwise keep
    the last silently).  Every problem (missing file, a directory, not UTF-8, invalid syntax, a top
    level that is not a mapping) is one ConfigError line starting with the path.
    """
    path = Path(path)
    text = _read_text(path)
    data = _parse_json(path, text) if path.suffix.lower() == ".json" else _parse_yaml(path, text)
    if not isinstance(data, dict):
        got = "an empty file" if data is None else f"a {type(data).__name__}"
        raise ConfigError(f"{path}: expected a mapping (key: value lines) at the top level, got {got}")
    return data


def _read_text(path: Path) -> str:
    """The UTF-8 text of ``path``; ConfigError if it is missing, a directory, unreadable or not UTF-8."""
    if path.is_dir():
        raise ConfigError(f"{path}: is a directory, not a config file")
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the config file ({exc.strerror or exc})") from None
    try:
        return raw.decode("utf-8-sig")  # a leading byte-order mark is dropped
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset {exc.start})") from None


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader whose mappings refuse a key given twice (merge keys ``<<`` may still be overridden)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        first_line: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            if not isinstance(key, typing.Hashable):
                continue  # the base constructor reports unhashable keys
            if key in first_line:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r} (first given at line {first_line[key]})", key_node.start_mark)
            first_line[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep=deep)


def _parse_yaml(path: Path, text: str) -> Any:
    """YAML ``text`` parsed with :class:`_UniqueKeyLoader`; ConfigError (one line, with the position) if invalid."""
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)  # a SafeLoader subclass: no arbitrary objects
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = " ".join(", ".join(str(part) for part in (exc.context, exc.problem) if part).split())
        raise ConfigError(f"{path}: invalid YAML{where}: {problem}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML: {' '.join(str(exc).split())}") from None


def _parse_json(path: Path, text: str) -> Any:
    """JSON ``text`` parsed with duplicate keys refused; ConfigError (one line, with the position) if invalid."""
    def unique(pairs: list[tuple[str, Any]]) -> dict:
        seen: dict[str, Any] = {}
        for key, value in pairs:
            if key in seen:
                raise ConfigError(f"{path}: invalid JSON: duplicate key {key!r}")
            seen[key] = value
        return seen

    try:
        return json.loads(text, object_pairs_hook=unique)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}: invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}") from None


def _join(where: str, name: str) -> str:
    return f"{where}.{name}" if where else name


def _convert(hint: Any, value: Any, where: str) -> Any:
    """Convert ``value`` to the annotated type ``hint`` (dataclasses, lists, dicts, unions, scalars)."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(hint)
        if value is None:
            if type(None) in options:
                return None
            raise ConfigError(f"{where}: must not be null")
        for option in options:  # a mapping goes to the dataclass option, so its errors name the field
            if dataclasses.is_dataclass(option) and isinstance(value, dict):
                return build(option, value, where)
        errors = []
        for option in (o for o in options if o is not type(None)):
            try:
                return _convert(option, value, where)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[-1] if len(errors) == 1 else f"{where}: invalid value {value!r}")
    if dataclasses.is_dataclass(hint):
        return build(hint, value, where)
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {type(value).__name__}")
        _, item = typing.get_args(hint)
        return {str(k): _convert(item, v, f"{where}.{k}") for k, v in value.items()}
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {type(value).__name__}")
        (item,) = typing.get_args(hint)[:1] or (Any,)
        items = [_convert(item, v, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if hint is Any:
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        return _finite_float(value, where)
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                return int(value)
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return value
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true or false, got {value!r}")
        return value
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return value
    return value


def _finite_float(value: float, where: str) -> float:
    """``value`` as a float; ConfigError naming ``where`` for nan, inf or an integer beyond float range."""
    try:
        number = float(value)
    except OverflowError:
        number = math.inf
    if not math.isfinite(number):
        raise ConfigError(f"{where}: must be a finite number, got {value!r}")
    return number
