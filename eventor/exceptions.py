"""
Every error Eventor raises, in one tree.

    EventorError
    ├── FlowDefinitionError (TypeError)       the graph is wrong: unknown event, duplicate name, ...
    ├── EventorConfigError (ValueError)       a config key is unknown, mistyped, or missing
    ├── ParameterError (TypeError)            a flow parameter is unknown, missing, or of the wrong type
    ├── ResultNotStoredError (LookupError)    a step's result was not stored in a readable form
    ├── EventorUsageError (RuntimeError)      an API called out of order (add after run, use after close)
    │   └── RunClaimedError                   another program runs the run to recover or continue, or
    │                                         began recovering it first
    ├── NotSupportedError (NotImplementedError)  a feature this version does not have yet
    ├── RunNotFoundError (LookupError)        recover/continue named a run or attempt the store lacks
    ├── StepFailure                           why a task failed, when Eventor saw it fail (recorded
    │   │                                     as the task's error_type; retry_on= can name them)
    │   ├── ProcessDied (ChildProcessError)   its worker process exited or was killed before reporting
    │   ├── HostError (ConnectionError)       its host was unreachable, refused the key or login, or
    │   │                                     the connection to it dropped
    │   ├── StepTimeout (TimeoutError)        it ran past its timeout and was stopped or abandoned
    │   └── ResourceDeadlock (RuntimeError)   it waits for a pool that nothing left running can release
    └── StoreError                            the run store cannot be used
        ├── StoreURLError (ValueError)        the store address is malformed or names an unknown driver
        ├── StoreUnavailableError (ConnectionError)  the database cannot be reached or opened
        ├── NotAStoreError                    the file or database holds something else
        ├── SchemaVersionError                the store was written by an incompatible Eventor
        └── StoreIntegrityError               a write broke an at-most-once rule

Each error carries its culprit as an attribute and says how to fix it.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any


class EventorError(Exception):
    """
    Base class of every error raised by Eventor: ``except EventorError`` catches them all.

    Most subclasses also derive from the builtin exception they resemble (a
    `FlowDefinitionError` is a ``TypeError``, a `RunNotFoundError` a ``LookupError``), so
    code written against the builtins keeps catching them. The whole tree is drawn at the
    top of this module.
    """


def closest(name: Any, candidates: Iterable[str], cutoff: float = 0.6) -> str | None:
    """The candidate most like ``name``, when one is at least ``cutoff`` alike (0 to 1)."""
    if not isinstance(name, str):
        return None
    close = difflib.get_close_matches(name, list(candidates), n=1, cutoff=cutoff)
    return close[0] if close else None


def did_you_mean(name: Any, candidates: Iterable[str]) -> str:
    """' Did you mean 'x'?' for the closest candidate, or '' when nothing is close."""
    close = closest(name, candidates)
    return f" Did you mean {close!r}?" if close else ""


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a flow definition: where, what, and the fix."""

    subject: str  # "step 's1'", "event 'ready'", "association run_step1 -> s9"
    message: str
    fix: str = ""
    where: str = ""  # "file.py:12" when known

    def __str__(self) -> str:
        text = f"{self.subject}: {self.message}"
        if self.fix:
            text += f" {self.fix}"
        if self.where:
            text += f" [{self.where}]"
        return text


class FlowDefinitionError(EventorError, TypeError):
    """
    A flow's graph is invalid.

    Lists every problem found, not only the first, so that one edit fixes them all: the
    message is a head line (``flow 'etl' has 2 problems:``) and then one line per problem.

    Args:
        flow: The flow's name.
        problems: Every problem found.

    Attributes:
        flow: The name of the flow whose definition is wrong; ``"@step"`` for a wrong
            ``@step(...)`` call, and ``"(being defined)"`` when the flow has no name yet.
        problems: The problems, in the order found, as a tuple. Each has a ``subject``
            (the step, event or association at fault), a ``message``, a ``fix`` and, when
            known, ``where`` (``file.py:12``).
    """

    def __init__(self, flow: str, problems: Sequence[Problem]) -> None:
        self.flow = flow
        self.problems = tuple(problems)
        count = len(self.problems)
        head = f"flow {flow!r} has {count} problem{'s' if count != 1 else ''}:"
        super().__init__("\n  - ".join([head, *(str(p) for p in self.problems)]))


class EventorConfigError(EventorError, ValueError):
    """
    A configuration value is unknown, of the wrong type, or missing.

    The message is ``key: message (in source)``, each part when known.

    Args:
        message: What is wrong, and how to fix it.
        key: The config key at fault.
        source: Where the config came from.

    Attributes:
        key: The config key at fault, as a dotted path (``EVENTOR.POOLS.db``), or the
            argument or option that was given the value (``run_mode``, ``schedule``);
            ``""`` when no one key is at fault.
        source: Where the config was read from: a file's path, or ``<yaml text>``; ``""``
            for a mapping or a keyword argument.
    """

    def __init__(self, message: str, *, key: str = "", source: str = "") -> None:
        self.key = key
        self.source = source
        where = f" (in {source})" if source else ""
        super().__init__(f"{key}: {message}{where}" if key else f"{message}{where}")


class ParameterError(EventorError, TypeError):
    """
    A flow was given a parameter it does not have, lacks one, or got a value of the wrong type.

    Args:
        message: What is wrong, and how to fix it.
        flow: The flow's name.
        parameter: The parameter at fault.

    Attributes:
        flow: The name of the flow.
        parameter: The parameter at fault: the unknown name that was given, or the
            parameter that is missing or got the wrong type.
    """

    def __init__(self, message: str, *, flow: str, parameter: str = "") -> None:
        self.flow = flow
        self.parameter = parameter
        super().__init__(message)


class ResultNotStoredError(EventorError, LookupError):
    """
    A step's result was not stored in a form that can be read back.

    A step returned a value that is not JSON (and the flow does not store pickles), so only
    its repr was stored; or its result is a pickle, which only a flow with
    ``pickle_results=True`` reads (reading a pickle runs code).

    Args:
        message: What is wrong, and how to fix it.
        step: The step's name.

    Attributes:
        step: The name of the step whose result cannot be read.
    """

    def __init__(self, message: str, *, step: str) -> None:
        self.step = step
        super().__init__(message)


class EventorUsageError(EventorError, RuntimeError):
    """An API was called out of order, e.g. adding a step after the run started."""


class RunClaimedError(EventorUsageError):
    """
    Another program runs the run (or attempt) this one meant to recover or continue, or
    began recovering it first.

    Args:
        message: Which attempt is taken, by whom, and what to do.
        run_id: The run's id.

    Attributes:
        run_id: The id of the run that is taken.
    """

    def __init__(self, message: str, *, run_id: str) -> None:
        self.run_id = run_id
        super().__init__(message)


class NotSupportedError(EventorError, NotImplementedError):
    """
    A feature that this version of Eventor does not provide yet.

    The message is ``{feature} is not supported yet: {detail}``.

    Args:
        feature: The feature asked for.
        detail: More about it (what to do instead, say); left out of the message when empty.

    Attributes:
        feature: The feature asked for.
    """

    def __init__(self, feature: str, detail: str = "") -> None:
        self.feature = feature
        super().__init__(f"{feature} is not supported yet{': ' + detail if detail else ''}")


class RunNotFoundError(EventorError, LookupError):
    """
    Recover or continue named a run (or attempt) that the store does not hold.

    Args:
        message: What was not found, and what the store holds instead.
        run_id: The run's id.
        store: The store's address.

    Attributes:
        run_id: The run asked for; ``""`` when none was named and the store holds no run
            of the program to pick.
        store: The address of the store searched, its password masked.
    """

    def __init__(self, message: str, *, run_id: str, store: str = "") -> None:
        self.run_id = run_id
        self.store = store
        super().__init__(message)


class StepFailure(EventorError):
    """
    A task failed for a reason Eventor saw rather than one its step raised.

    Eventor records these as the task's ``error_type`` (its class name) and matches them
    against ``retry_on`` by class, like any exception a step raises: ``retry_on=ProcessDied``.
    """


class ProcessDied(StepFailure, ChildProcessError):
    """A process step's worker exited, or was killed, before it reported how the step ended."""


class HostError(StepFailure, ConnectionError):
    """
    A step could not run on its host, or lost it mid-step: the host unreachable, its key or
    the login refused, the agent not starting there, or the connection dropped.
    """


class StepTimeout(StepFailure, TimeoutError):
    """A step ran past its ``timeout``: its process was stopped, or its thread abandoned."""


class ResourceDeadlock(StepFailure, RuntimeError):
    """A step waits for pool units that only its own run holds, with nothing left to release them."""


class StoreError(EventorError):
    """
    The run store cannot be used.

    Raised as such for a database error that none of its subclasses describes; the message
    names the store and what Eventor was doing.

    Args:
        message: What went wrong, and how to fix it.
        store: The store's address.

    Attributes:
        store: The store's address (a SQLAlchemy URL), its password masked.
    """

    def __init__(self, message: str, *, store: str = "") -> None:
        self.store = store  # the store's address, password masked
        super().__init__(message)


class StoreURLError(StoreError, ValueError):
    """The store address is malformed or names a driver that is not installed."""


class StoreUnavailableError(StoreError, ConnectionError):
    """
    The database cannot be reached or opened.

    The server is down or refuses the connection, the credentials are wrong, the folder of
    a sqlite file does not exist, or the database failed an operation (a lock held too
    long, say) while Eventor used it.
    """


class NotAStoreError(StoreError):
    """The file or database exists but is not an Eventor run store; it was left untouched."""


class SchemaVersionError(StoreError):
    """
    The store was written with a schema this version of Eventor cannot use.

    A store written by a newer Eventor, or by an older one with no upgrade in place; it is
    left untouched.

    Args:
        message: Which versions, and what to do.
        store: The store's address.
        found: The store's schema version.
        expected: This Eventor's schema version.

    Attributes:
        found: The schema version the store records (-1 when it records none that can be
            read).
        expected: The schema version this Eventor writes.
        store: The store's address, its password masked (as for every `StoreError`).
    """

    def __init__(self, message: str, *, store: str = "", found: int = 0, expected: int = 0):
        self.found = found
        self.expected = expected
        super().__init__(message, store=store)


class StoreIntegrityError(StoreError):
    """A write broke one of the store's at-most-once rules (e.g. a second task for one step)."""
