"""
Flow parameters: what an annotated class attribute of a `Flow` declares, and how a value
given in Python, typed on a command line or read back from a run's record becomes one.
"""

from __future__ import annotations

import enum
import inspect
import json
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from eventor.exceptions import ParameterError

__all__ = ["Param", "checked", "coerce", "fits", "recorded", "type_name"]


@dataclass(frozen=True, slots=True)
class Param:
    """A flow parameter: an annotated class attribute, optionally with a default."""

    name: str
    type: Any
    default: Any = inspect.Parameter.empty
    doc: str = ""

    @property
    def required(self) -> bool:
        return self.default is inspect.Parameter.empty



def recorded(values: Mapping[str, Any]) -> dict[str, Any]:
    """
    Parameter values as a run's record holds them: JSON (a date as its ISO text, an Enum
    member as its value).
    """
    return dict(json.loads(json.dumps(dict(values), default=_as_json)))


def _as_json(value: Any) -> Any:
    if isinstance(value, enum.Enum):  # by value when it is plain, else as Mode.NAME
        plain = isinstance(value.value, str | int | float | bool)
        return value.value if plain else f"{type(value).__name__}.{value.name}"
    return str(value)


def type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp)


def coerce(param: Param, value: Any) -> Any:
    """
    A recorded (JSON) or typed-in (text) value as ``param``'s type, when it is not already.

    Dates, times, paths and other types recorded as text come back through their
    ``fromisoformat`` or constructor; a value that cannot is left for `checked` to refuse.
    """
    tp = param.type
    if fits(value, tp) or not isinstance(value, str | int | float):
        return value
    for candidate in typing.get_args(tp) or (tp,):
        if not isinstance(candidate, type) or candidate is type(None):
            continue
        if issubclass(candidate, enum.Enum):  # by value (as recorded), by name, or as 'Mode.A'
            member = _member(candidate, value)
            if member is not None:
                return member
            continue
        if candidate is bool and isinstance(value, str):
            lowered = value.strip().lower()
            if lowered in ("true", "1", "yes", "on", "false", "0", "no", "off"):
                return lowered in ("true", "1", "yes", "on")
            continue
        convert: Any = getattr(candidate, "fromisoformat", None) or candidate
        try:
            return convert(value)
        except (TypeError, ValueError):
            continue
    return value


def _member(cls: type[enum.Enum], value: Any) -> enum.Enum | None:
    prefix = f"{cls.__name__}."
    if isinstance(value, str) and value.startswith(prefix) and value[len(prefix):] in cls.__members__:
        return cls[value[len(prefix):]]  # as recorded when its value is not plain
    try:
        return cls(value)
    except ValueError:
        pass
    if isinstance(value, str) and value in cls.__members__:
        return cls[value]  # by name, as typed
    return None


def checked(flow_name: str, param: Param, value: Any) -> Any:
    """``value`` when it fits ``param``'s type, else a `ParameterError` that names both."""
    if fits(value, param.type):
        return value
    raise ParameterError(
        f"flow {flow_name!r} parameter {param.name!r} expects {type_name(param.type)}, "
        f"got {type(value).__name__} {value!r}.", flow=flow_name, parameter=param.name,
    )


def fits(value: Any, tp: Any) -> bool:
    """True when ``value`` is of type ``tp`` (an annotation that cannot be checked fits all)."""
    if tp is Any or isinstance(tp, str | typing.TypeVar):
        return True  # an annotation that cannot be checked at runtime
    origin = typing.get_origin(tp)
    if origin is typing.Annotated:
        return fits(value, typing.get_args(tp)[0])
    if origin in (typing.Union, types.UnionType):
        return any(fits(value, arg) for arg in typing.get_args(tp))
    if origin is typing.Literal:
        return value in typing.get_args(tp)
    if tp is None or tp is type(None):
        return value is None
    if origin is not None:
        return isinstance(origin, type) and isinstance(value, origin)
    if not isinstance(tp, type):
        return True
    if tp is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, tp)
