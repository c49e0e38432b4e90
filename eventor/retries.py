"""
Retry policies and timeouts, per step, from the step's config and the engine's defaults.

A step's options (`eventor.options.StepOptions`) may set ``retries``, ``retry_delay``,
``backoff``, ``max_retry_delay``, ``retry_on``, ``timeout`` and ``timeout_grace``; what it
leaves out comes from the engine's defaults (the config keys of the same names).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from eventor.exceptions import EventorConfigError
from eventor.executors.base import qualified_names
from eventor.options import StepOptions

__all__ = ["RetryPolicy", "plan_retries"]


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How a failed step is tried again."""

    retries: int  # tries after the first
    delay: float
    backoff: float
    max_delay: float | None
    retry_on: frozenset[str] | None  # "module.Class" names; None: any failure

    def wait(self, tries: int) -> float:
        """Seconds to wait after failed try number ``tries`` (1 for the first)."""
        wait = self.delay * self.backoff ** (tries - 1)
        return wait if self.max_delay is None else min(wait, self.max_delay)


def plan_retries(options_of: Mapping[str, StepOptions], executor_of: Mapping[str, str]
                 ) -> tuple[dict[str, RetryPolicy], dict[str, tuple[float, float]]]:
    """
    Per step (given its options, resolved over the engine's defaults, so none is unset): how
    it is retried (when it may be),
    and its (timeout, grace) when it has one.

    Raises:
        EventorConfigError: a timeout on a step run in the engine's thread (``invoke``),
            where nothing can stop it.
    """
    retry_of, timeout_of = {}, {}
    for name, o in options_of.items():
        if o.retries:
            retry_on = o.retry_on
            if retry_on is not None and not isinstance(retry_on, tuple | list):
                retry_on = (retry_on,)
            assert o.retry_delay is not None and o.backoff is not None, "resolved options"
            retry_of[name] = RetryPolicy(
                o.retries, float(o.retry_delay), float(o.backoff), o.max_retry_delay,
                None if retry_on is None else frozenset(qualified_names(t)[0] for t in retry_on),
            )
        if o.timeout:
            if executor_of[name] == "invoke":
                raise EventorConfigError(
                    f"it has timeout={o.timeout!r}, but runs in the engine's thread (invoke), "
                    "where nothing can stop it; run it with the process or thread executor, "
                    "or drop the timeout", key=f"step {name!r} config timeout")
            assert o.timeout_grace is not None, "resolved options"
            timeout_of[name] = (float(o.timeout), float(o.timeout_grace))
    return retry_of, timeout_of
