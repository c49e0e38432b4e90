"""
How a step runs (`StepOptions`) and how the engine runs them all (`EngineOptions`).

Each step option is declared once, here, with the check its value must pass and the config
key it is read from. `@step(...)`, the classic ``add_step(config=...)``, the config file's
defaults, validation and the engine all go through `StepOptions`: adding an option is a
field here, plus the code that uses it.

A step option left at None takes the engine's default, which comes from the config key of
the same name (``retries: 2`` under ``EVENTOR:`` retries every step twice).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from eventor.enums import EXECUTORS, executor_alias
from eventor.exceptions import did_you_mean

__all__ = ["DEFAULTS", "OFF", "UNSET", "EngineOptions", "OptionProblem", "StepOptions", "default_workers"]


def _is_int(value: Any, low: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= low


def _is_seconds(value: Any, *, positive: bool = False) -> bool:
    import math

    return (isinstance(value, int | float) and not isinstance(value, bool)
            and math.isfinite(value) and (value > 0 if positive else value >= 0))


def _is_resources(value: Any) -> bool:
    return isinstance(value, Mapping) and all(
        isinstance(k, str) and _is_seconds(v, positive=True) for k, v in value.items())


def _is_exceptions(value: Any) -> bool:
    items = value if isinstance(value, tuple | list) else (value,)
    return bool(items) and all(isinstance(t, type) and issubclass(t, BaseException) for t in items)


class _Off:
    """An option set to None on purpose (``timeout: null``): no limit, whatever the default."""

    __slots__ = ()

    def __bool__(self) -> bool:
        return False

    def __repr__(self) -> str:
        return "OFF"


OFF: Any = _Off()  # kept apart from None (unset) until `over` resolves it to None


def _option(test: Callable[[Any], bool], must_be: str, *, key: str | None = None,
            inherited: bool = True, nullable: bool = False) -> Any:
    """
    A step option: None (the engine's default) or a value that passes ``test``.

    Args:
        must_be: what a value must be, for error messages ("an int >= 0").
        key: its config key when that differs from the field's name.
        inherited: its default comes from the config's top-level key of the same name.
        nullable: None is also a value a config may set (``timeout: null``).
    """
    return field(default=None, metadata={"test": test, "must_be": must_be, "key": key,
                                         "inherited": inherited, "nullable": nullable})


@dataclass(frozen=True, slots=True)
class OptionProblem:
    """A step option's value that fails its check, or a config key that is no option."""

    key: str
    message: str
    fix: str


@dataclass(frozen=True, slots=True)
class StepOptions:
    """
    How one step runs; a field left at None takes the engine's default.

    Values are kept as given, so that validation can report every bad one at once
    (`problems`); the engine only ever sees validated options.
    """

    executor: str | type | None = _option(
        lambda v: executor_alias(v) is not None, f"one of {', '.join(map(repr, EXECUTORS))}",
        key="task_construct")
    max_concurrent: int | None = _option(
        lambda v: _is_int(v, 1) or v == -1, "a positive int or -1 (no limit)", inherited=False)
    stop_on_exception: bool | None = _option(lambda v: isinstance(v, bool), "True or False")
    retries: int | None = _option(lambda v: _is_int(v, 0), "an int >= 0")
    retry_delay: float | None = _option(_is_seconds, "a number of seconds >= 0")
    backoff: float | None = _option(lambda v: _is_seconds(v) and v >= 1, "a factor >= 1")
    max_retry_delay: float | None = _option(_is_seconds, "a number of seconds >= 0", nullable=True)
    retry_on: Any = _option(_is_exceptions, "an exception class or a tuple of them",
                            inherited=False)
    timeout: float | None = _option(lambda v: _is_seconds(v, positive=True),
                                    "a number of seconds > 0", nullable=True)
    timeout_grace: float | None = _option(_is_seconds, "a number of seconds >= 0")
    worker_resources: Mapping[str, float] | None = _option(
        _is_resources, "a mapping of Dask worker resources to amounts > 0, e.g. {'GPU': 1}",
        inherited=False)  # what a dask worker must have to run the step (client.submit)
    unknown: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}),
                                       metadata={"test": None})  # config keys that are no option

    # -- reading -------------------------------------------------------------------------

    @classmethod
    def fields(cls) -> tuple[dataclasses.Field[Any], ...]:
        """The option fields (not ``unknown``)."""
        return _FIELDS

    @classmethod
    def keys(cls, *, inherited: bool | None = None) -> tuple[str, ...]:
        """The options' config keys; with ``inherited``, only those a config sets for every step."""
        return tuple(_key(f) for f in _FIELDS
                     if inherited is None or f.metadata["inherited"] is inherited)

    @classmethod
    def from_config(cls, config: Mapping[str, Any] | None) -> StepOptions:
        """The options a step's ``config={...}`` (or a config file's top level) sets."""
        if not config:
            return _UNSET
        values: dict[str, Any] = {}
        unknown: dict[str, Any] = {}
        for key, value in config.items():
            name = _NAME_OF.get(key)
            if name is None:
                unknown[key] = value
            elif value is None and name in _NULLABLE:
                values[name] = OFF  # ``timeout: None``: none for this step, not the default
            else:
                values[name] = value
        return cls(**values, unknown=MappingProxyType(unknown))

    def is_unset(self) -> bool:
        """True when no option is set (every step's options start so)."""
        return self is _UNSET or (not self.unknown and all(
            getattr(self, f.name) is None for f in _FIELDS))

    def with_values(self, **values: Any) -> StepOptions:
        """These options with ``values`` (by field name) set; None values are ignored."""
        values = {k: v for k, v in values.items() if v is not None}
        return dataclasses.replace(self, **values) if values else self

    def problems(self) -> Iterator[OptionProblem]:
        """Every value that fails its check, and every unknown key."""
        if self is _UNSET:
            return
        keys = self.keys()
        for key in self.unknown:
            yield OptionProblem(key, f"config key {key!r} is unknown." + did_you_mean(key, keys),
                                f"Use one of {', '.join(keys)}.")
        for f in _FIELDS:
            value = getattr(self, f.name)
            if value is None or value is OFF or f.metadata["test"](value):
                continue
            must_be = f.metadata["must_be"]
            if f.name == "executor":  # a name from a list: suggest the closest
                yield OptionProblem(_key(f), f"executor={value!r} is unknown."
                                    + did_you_mean(value, EXECUTORS),
                                    f"Use {must_be} (config key {_key(f)}).")
            else:
                yield OptionProblem(_key(f), f"{_key(f)}={value!r} is not {must_be}.",
                                    f"Give {_key(f)} {must_be}.")

    def to_config(self) -> dict[str, Any]:
        """The options that are set, under their config keys (``task_construct``, ...)."""
        if self is _UNSET:
            return {}
        config = {_key(f): None if getattr(self, f.name) is OFF else getattr(self, f.name)
                  for f in _FIELDS if getattr(self, f.name) is not None}
        return {**config, **self.unknown}

    def over(self, defaults: StepOptions) -> StepOptions:
        """
        These options, with each one left unset taken from ``defaults``: the options a
        step runs with. An option set to None on purpose stays None (no limit).
        """
        if self is _UNSET and not _has_off(defaults):
            return defaults
        resolved = {}
        for f in _FIELDS:
            mine = getattr(self, f.name)
            value = getattr(defaults, f.name) if mine is None else mine
            if value is OFF:
                value = None
            if value is not mine:
                resolved[f.name] = value
        return dataclasses.replace(self, **resolved) if resolved else self


def _key(f: dataclasses.Field[Any]) -> str:
    return f.metadata.get("key") or f.name


_FIELDS = tuple(f for f in dataclasses.fields(StepOptions) if f.metadata.get("test") is not None)
_NAME_OF = {**{f.name: f.name for f in _FIELDS}, **{_key(f): f.name for f in _FIELDS}}
_NULLABLE = frozenset(f.name for f in _FIELDS if f.metadata["nullable"])
_UNSET = StepOptions()  # what from_config gives for no config: shared, and quick to test


def _has_off(options: StepOptions) -> bool:
    return any(getattr(options, name) is OFF for name in _NULLABLE)
UNSET = _UNSET


def default_workers() -> int:
    """
    Worker processes the process executor runs at once when nothing says otherwise: the
    CPUs this process may use, plus 4 for steps that wait on I/O, and at most 32 (the rule
    of Python's ThreadPoolExecutor; Airflow's default parallelism is 32 too). The thread
    executor's default is 32: threads cost little, and thread steps mostly wait.
    """
    return min(32, len(os.sched_getaffinity(0)) + 4)


# Every step option's default: a config's top-level keys and EngineOptions start from these.
DEFAULTS = StepOptions(executor="process", max_concurrent=-1, stop_on_exception=True, retries=0,
                       retry_delay=0.0, backoff=1.0, timeout_grace=3.0)


@dataclass(frozen=True, slots=True)
class EngineOptions:
    """Engine-wide settings (the config keys of the same names) and every step's defaults."""

    max_concurrent: int = -1  # running tasks at once; -1 for no limit
    envvar_prefix: str = "EVENTOR_"
    process_workers: int = field(default_factory=default_workers)  # processes at once
    thread_workers: int = 32  # threads at once
    max_tasks_per_child: int = 0  # tasks a process worker runs before it is replaced; 0: no limit
    sequence_arg_name: str | None = None  # pass the sequence to steps as this keyword
    pass_logger_to_task: bool = False  # pass the step's logger as ``logger=``
    pools: Mapping[str, int] = field(default_factory=dict)  # pools declared in the config
    strict_triggers: bool = False  # a ctx.trigger of an event its step does not emit fails it
    heartbeat_interval: float = 10.0  # seconds between the engine's heartbeats in the store
    heartbeat_grace: float = 60.0  # seconds without a heartbeat after which an attempt is dead
    hosts: Mapping[str, Any] = field(default_factory=dict)  # HOSTS: ssh hosts by name
    ssh_config: str | None = None  # an ssh config file for hosts not in HOSTS (~/.ssh/config)
    dask: Mapping[str, Any] = field(default_factory=dict)  # DASK: the cluster the dask executor uses
    steps: StepOptions = DEFAULTS  # what a step's options left at None become

    def capacity(self) -> dict[str, int]:
        """Tasks each bounded executor runs at once (ready tasks beyond wait in the engine)."""
        return {"process": self.process_workers, "thread": self.thread_workers}

    def for_step(self, options: StepOptions) -> StepOptions:
        """A step's options with every one it left unset taken from the engine's defaults."""
        return options.over(self.steps)

