"""Typed records to and from JSON: dataclasses, enums, tuples, optionals, plain values.

The deploy report is made of frozen dataclasses; `report.json` is their JSON form. These two
functions are the only translation, driven by the type hints, so a field added to a record is
written and read back without more code.

>>> from dataclasses import dataclass
>>> @dataclass(frozen=True)
... class Point:
...     x: int
...     tags: tuple[str, ...] = ()
>>> to_json(Point(1, ("a",)))
{'x': 1, 'tags': ['a']}
>>> from_json(Point, {"x": 2, "tags": ["b"], "unknown": 0})
Point(x=2, tags=('b',))
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import sys
import types
import typing
from typing import Any


class Record:
    """Mixin for report records: `record["name"]` and `record.get("name")` read a field the way
    report.json spells it (an unknown name raises KeyError), for code written against the JSON.

    >>> from dataclasses import dataclass
    >>> @dataclass(frozen=True)
    ... class Size(Record):
    ...     bytes: int
    >>> Size(3)["bytes"], Size(3).get("bits", 0)
    (3, 0)
    """

    def __getitem__(self, name: str) -> Any:
        if not isinstance(name, str) or name not in {f.name for f in dataclasses.fields(self)}:
            raise KeyError(name)
        return getattr(self, name)

    def get(self, name: str, default: Any = None) -> Any:
        try:
            return self[name]
        except KeyError:
            return default


def to_json(value: Any) -> Any:
    """A record as JSON-ready values (dataclasses → dicts, tuples → lists, enums → values).

    A dataclass with its own `to_dict` is written by it."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        if hasattr(value, "to_dict"):
            return value.to_dict()
        return {f.name: to_json(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, (list, tuple)):
        return [to_json(v) for v in value]
    if isinstance(value, dict):
        return {str(k): to_json(v) for k, v in value.items()}
    return value


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls, vars(sys.modules[cls.__module__]))


def from_json(kind: Any, data: Any) -> Any:
    """`data` (parsed JSON) as a value of type `kind`; unknown dataclass keys are ignored,
    missing ones take their defaults. A wrong shape raises TypeError or ValueError."""
    if data is None or kind is Any:
        return data
    origin = typing.get_origin(kind)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(kind) if a is not type(None)]
        return from_json(options[0], data) if len(options) == 1 else data
    if origin is tuple:
        args = typing.get_args(kind)
        return tuple(from_json(args[0], v) for v in _sequence(data, kind))
    if origin is list:
        return [from_json(typing.get_args(kind)[0], v) for v in _sequence(data, kind)]
    if origin is dict:
        if not isinstance(data, dict):
            raise TypeError(f"expected an object for {kind}; received {type(data).__name__}")
        return {k: from_json(typing.get_args(kind)[1], v) for k, v in data.items()}
    if isinstance(kind, type) and hasattr(kind, "from_dict") and isinstance(data, dict):
        return kind.from_dict(data)
    if dataclasses.is_dataclass(kind):
        if not isinstance(data, dict):
            raise TypeError(f"expected an object for {kind.__name__}; received {data!r:.40}")
        hints = _hints(kind)
        known = {f.name for f in dataclasses.fields(kind) if f.init}
        return kind(**{k: from_json(hints[k], v) for k, v in data.items() if k in known})
    if isinstance(kind, type) and issubclass(kind, enum.Enum):
        return kind(data)
    if kind is float and isinstance(data, int) and not isinstance(data, bool):
        return float(data)
    return data


def _sequence(data: Any, kind: Any) -> list:
    if not isinstance(data, list):
        raise TypeError(f"expected a list for {kind}; received {type(data).__name__}")
    return data
