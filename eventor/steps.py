"""
The ``@step`` marker, and the one translation of a mark into a `StepSpec`.

Decorators only record: ``@step(...)`` attaches one frozen `StepMark` to the function and
returns the function itself. A `Flow` class (`eventor.dsl`) and the classic ``add_step``
(`eventor.classic`) both turn a mark into a step with `spec_from_mark`; they differ only in
how an event reference (an `Event` attribute, a name) is resolved.
"""

from __future__ import annotations

import dataclasses
import inspect
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar, overload

from eventor.enums import StepStatus
from eventor.exceptions import FlowDefinitionError, Problem, did_you_mean
from eventor.graph import StepSpec, is_number
from eventor.options import UNSET, StepOptions

__all__ = ["STATUS_OPTIONS", "StepMark", "fit_signature", "mark_of", "spec_from_mark", "step"]

F = TypeVar("F", bound=Callable[..., Any])

STATUS_OPTIONS = ("success", "failure", "complete", "ready", "active")


@dataclass(frozen=True, slots=True)
class StepMark:
    """What ``@step(...)`` recorded about a function, as written (checked when a flow compiles)."""

    on: Any = None
    success: Any = ()
    failure: Any = ()
    complete: Any = ()
    ready: Any = ()
    active: Any = ()
    emits: Any = ()  # events its ctx.trigger calls may fire
    delay: Any = 0
    acquires: Any = None
    releases: Any = None
    recovery: Any = None
    host: Any = None
    name: Any = None
    config: Any = None  # the classic spelling of options, merged under the keywords
    options: StepOptions = UNSET  # the option keywords: executor=, retries=, ...


_WIRING = frozenset(f.name for f in dataclasses.fields(StepMark)) - {"options"}
_OPTIONS = frozenset(f.name for f in StepOptions.fields())


@overload
def step(func: F, /) -> F: ...


@overload
def step(
    *,
    on: Any = None,
    success: Any = (),
    failure: Any = (),
    complete: Any = (),
    ready: Any = (),
    active: Any = (),
    delay: float = 0,
    acquires: Iterable[Any] | None = None,
    releases: Iterable[Any] | None = None,
    recovery: Mapping[Any, Any] | None = None,
    host: str | None = None,
    name: str | None = None,
    config: Mapping[str, Any] | None = None,
    emits: Any = (),
    executor: str | None = None,
    max_concurrent: int | None = None,
    stop_on_exception: bool | None = None,
    retries: int | None = None,
    retry_delay: float | None = None,
    backoff: float | None = None,
    max_retry_delay: float | None = None,
    retry_on: type[BaseException] | tuple[type[BaseException], ...] | None = None,
    timeout: float | None = None,
    timeout_grace: float | None = None,
    worker_resources: Mapping[str, float] | None = None,
) -> Callable[[F], F]: ...


def step(func: Any = None, /, **options: Any) -> Any:
    """
    Mark a function as a step: ``@step(on=start, success=extracted)``.

    Records the options on the function and returns the function unchanged; a `Flow` class
    (or the classic ``add_step``) reads them. Works bare (``@step``) or called with keywords.
    Events are `Event` attributes of the flow class, or their names (the only way for a
    module-level function). Retry and timeout options left out take the config's keys of the
    same names as defaults. An unknown keyword raises at once; every other mistake is
    reported when the flow class is created (or by ``add_step``).

    Args:
        func: The function, when ``@step`` is used bare.

    Keyword Args:
        on (Event | Expr | str): The event or expression that runs the step.
        success (Event | str | tuple): The event, or a tuple of events, that a task fires
            in its sequence when the step returns.
        failure (Event | str | tuple): The events a task fires when the step fails; a
            failure with a ``failure`` or ``complete`` event is handled.
        complete (Event | str | tuple): The events a task fires when the step ends either
            way.
        ready (Event | str | tuple): The events a task fires when it is triggered.
        active (Event | str | tuple): The events a task fires when it starts.
        emits (Event | str | tuple): The events the step may fire itself with
            ``ctx.trigger``: they are then not entry events, and the graph draws the edge.
        delay (float): Seconds to wait after ``on`` fires before the task is triggered.
        acquires (list | None): The pool units a task must hold to start,
            ``[(pool, n), ...]``; a pool is a `ResourcePool`, or the name of one in the
            config's ``POOLS``.
        releases (list | None): None (the default) gives back what the task acquired when
            it ends; ``[]`` keeps it; ``[pool, ...]`` gives back those pools' units held in
            the task's sequence.
        recovery (dict | None): What a recovery does with the step's task, by the status it
            had in the recovered attempt: ``{status: "skip" or "rerun"}`` (`StepReplay`).
            Default: a success is skipped, anything else rerun.
        host (str | None): Run the step on this host, over SSH (the config's ``HOSTS`` or
            ``~/.ssh/config``).
        name (str | None): The step's name (default: the attribute or function name).
        config (dict | None): The step options under the classic API's config keys
            (``{"task_construct": "thread"}``); the option keywords (``executor``, ...)
            win over it.
        executor (str | None): ``"process"``, ``"thread"``, ``"invoke"``, ``"ssh"`` or
            ``"dask"`` (default: the flow's, else the config's ``task_construct``).
        max_concurrent (int | None): The step's tasks running at once, across sequences
            (-1: no limit).
        stop_on_exception (bool | None): Whether an unhandled failure of this step stops
            the run from starting new tasks (default: the flow's, else the config's).
        retries (int | None): Tries after the first, for a task that fails.
        retry_delay (float | None): Seconds before the first retry.
        backoff (float | None): The factor by which each retry's wait grows (>= 1).
        max_retry_delay (float | None): The cap on a retry's wait, in seconds; ``None``
            given explicitly means no cap.
        retry_on (type | tuple | None): The exception class (or a tuple of them) to retry,
            subclasses included; other failures are not retried (default: any failure).
        timeout (float | None): Seconds a try may run; ``None`` given explicitly means no
            limit, whatever the config's default.
        timeout_grace (float | None): Seconds between stopping a timed-out process
            (SIGTERM) and killing it (SIGKILL).
        worker_resources (dict | None): What a Dask worker must have to run it, for the
            ``dask`` executor (``{"GPU": 1}``).

    Returns:
        The function itself, marked; or, called without a function, a decorator that
        marks and returns it.

    Raises:
        FlowDefinitionError: an unknown keyword, or ``@step`` on something not callable.
    """
    where = _caller()
    unknown = sorted(set(options) - _WIRING - _OPTIONS)
    if unknown:
        known = sorted(_WIRING | _OPTIONS)
        raise FlowDefinitionError("@step", [
            Problem("@step()", f"{bad!r} is not an option." + did_you_mean(bad, known),
                    f"Its options are {', '.join(known)}.", where) for bad in unknown])
    mark = StepMark(**{k: v for k, v in options.items() if k in _WIRING},
                    options=StepOptions.from_config({k: v for k, v in options.items() if k in _OPTIONS}))

    def record(fn: F) -> F:
        if not callable(fn):
            raise FlowDefinitionError("@step", [Problem(
                "@step", f"it decorates {fn!r}, which is not a function.",
                "Put @step on a def.", where)])
        fn.__eventor_step__ = mark  # type: ignore[attr-defined]
        return fn

    return record(func) if func is not None else record


def _caller() -> str:
    frame = sys._getframe(2)
    return f"{frame.f_code.co_filename}:{frame.f_lineno}"


def mark_of(value: Any) -> StepMark | None:
    """The `StepMark` of a function decorated with `@step`, else None."""
    mark = getattr(value, "__eventor_step__", None)
    return mark if isinstance(mark, StepMark) else None


def spec_from_mark(
    mark: StepMark,
    func: Callable[..., Any] | None,
    name: str,
    *,
    event: Callable[[Any, str], str | None],
    problems: list[Problem],
    where: str = "",
) -> tuple[StepSpec, Any]:
    """
    The step a mark describes, and the delay of its ``on`` association.

    Args:
        func: what the task calls (the marked function, or a wrapper of it).
        event: resolves one event reference written for an option (``"success"``, ...) to
            the event's name; it records its own problem and returns None when it cannot.
        problems: where problems with the mark's values go.
    """
    subject = f"step {name!r}"
    triggers: dict[StepStatus, list[str]] = {}
    for option in STATUS_OPTIONS:
        for item in _items(getattr(mark, option)):
            resolved = event(item, option)
            if resolved is not None:
                triggers.setdefault(StepStatus(option), []).append(resolved)
    emits = [name for name in (event(item, "emits") for item in _items(mark.emits)) if name]
    config = mark.config
    if config is not None and not isinstance(config, Mapping):
        problems.append(Problem(subject, f"config={config!r} is not a dict.",
                                "Write config={'max_concurrent': 2}, say.", where))
        config = None
    options = StepOptions.from_config(config).with_values(
        **{f.name: getattr(mark.options, f.name) for f in StepOptions.fields()})
    delay = mark.delay
    if not is_number(delay) or delay < 0:
        problems.append(Problem(subject, f"delay={delay!r} is not a number of seconds >= 0.",
                                "Use delay=0 for no delay.", where))
        delay = 0
    spec = StepSpec.make(name, func, triggers=triggers, acquires=mark.acquires,
                         releases=mark.releases, recovery=mark.recovery, host=mark.host,
                         options=options, emits=emits)
    return spec, delay  # as written: the run's fingerprint holds its text


def _items(value: Any) -> tuple[Any, ...]:
    """One event reference, or a tuple or list of them, as a tuple."""
    return tuple(value) if isinstance(value, tuple | list) else (value,) if value is not None else ()


def fit_signature(func: Callable[..., Any], method: bool, name: str) -> tuple[bool, str, str]:
    """
    Whether a step function takes a ctx, and what is wrong with its signature, if anything.

    A method step is ``def s(self)`` or ``def s(self, ctx)``; a function step ``def s()`` or
    ``def s(ctx)``. Returns ``(wants_ctx, problem, fix)``; ``problem`` is "" when it fits.
    """
    try:
        params = list(inspect.signature(func).parameters.values())
    except (TypeError, ValueError):
        return False, "", ""
    shape = (f"`def {name}(self)` or `def {name}(self, ctx)`" if method
             else f"`def {name}()` or `def {name}(ctx)`")
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if method:
        if not positional:
            return False, "the method takes no self.", f"Define it as {shape}."
        positional = positional[1:]
    required = [p for p in positional if p.default is p.empty]
    required += [p for p in params if p.kind is p.KEYWORD_ONLY and p.default is p.empty]
    if len(required) > 1 or any(p.kind is p.KEYWORD_ONLY for p in required):
        names = ", ".join(p.name for p in required)
        return (False, f"it requires {names}, but a step gets at most one argument, its "
                "StepContext.", f"Define it as {shape}.")
    return bool(positional) or any(p.kind is p.VAR_POSITIONAL for p in params), "", ""
