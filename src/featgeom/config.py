"""Strict construction of config dataclasses from plain dicts (YAML/JSON).

``build(cls, data, where)`` creates ``cls(**data)`` recursively for nested dataclass fields, and
turns unknown keys, missing keys, wrong types and ``__post_init__`` ValueErrors into one
:class:`~featgeom.errors.ConfigError` whose message starts with the dotted field path.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any, TypeVar

from featgeom.errors import ConfigError

T = TypeVar("T")


def build(cls: type[T], data: Any, where: str = "") -> T:
    """Build dataclass ``cls`` from mapping ``data``; ``where`` is the field path for messages."""
    if isinstance(data, cls):
        return data
    if not isinstance(data, dict):
        raise ConfigError(f"{where or cls.__name__}: expected a mapping, got {type(data).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        path = _join(where, unknown[0])
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
        return float(value)
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
