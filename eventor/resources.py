"""
Resource pools: a step that ``acquires=[(pool, n)]`` starts only once it holds ``n`` units.

A pool is a name and a limit. Grants are leases in the run store, so a pool is honoured
by every program that shares the store, and a crashed engine's leases are released when
its run is recovered or continued.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from eventor.exceptions import EventorConfigError
from eventor.store.base import LeaseRequest, PoolRelease, Row, TaskRelease

__all__ = ["Pools", "Resource", "ResourcePool", "plan_pools", "pool_name", "units_of"]


class Resource:
    """One unit of a pool. Eventor 5.1 programs subclass it; Eventor needs no instances."""


class ResourcePool:
    """
    A named pool of ``limit`` units: ``ResourcePool("db", 2)``.

    The Eventor 5.1 shape works too:
    ``ResourcePool("RP1", resource_cls=R, policy={"resource_limit": 2}).load()``.

    A step takes units with ``acquires=[(pool, n)]``. The limit holds across every program
    that shares the run store, since each grant is a lease recorded there.

    Args:
        name: The pool's name: the key of its leases in the store.
        limit: How many units the pool has, at most held at once.
        resource_cls: Eventor 5.1's class of the pool's resources; kept, and not used.
        policy: Eventor 5.1's policy: its ``resource_limit`` is the limit when ``limit``
            is not given. Its other keys are ignored.

    Attributes:
        name: The pool's name.
        limit: How many units the pool has.
        resource_cls: As given.

    Raises:
        EventorConfigError: a name that is not a non-empty string, or a limit that is not a
            positive int.
    """

    def __init__(self, name: str, limit: int | None = None, *, resource_cls: type = Resource,
                 policy: Mapping[str, Any] | None = None) -> None:
        if limit is None:
            limit = (policy or {}).get("resource_limit")
        if not isinstance(name, str) or not name:
            raise EventorConfigError(f"a pool needs a name, got {name!r}", key="ResourcePool")
        if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
            raise EventorConfigError(
                f"expected a positive int limit (ResourcePool({name!r}, 2)), got {limit!r}",
                key=f"ResourcePool {name!r}")
        self.name = name
        self.limit = limit
        self.resource_cls = resource_cls

    def load(self) -> ResourcePool:
        """Eventor 5.1 filled its pools here; a pool needs no loading now."""
        return self

    def __repr__(self) -> str:
        return f"ResourcePool({self.name!r}, {self.limit})"


def pool_name(pool: Any) -> str | None:
    """The name of a pool given as a `ResourcePool` or a string; None for anything else."""
    if isinstance(pool, ResourcePool):
        return pool.name
    return pool if isinstance(pool, str) and pool else None


Wants = tuple[tuple[str, int, int], ...]  # (pool, units, limit) a step acquires


def plan_pools(graph: Any, declared: Mapping[str, int]) -> tuple[dict[str, Wants],
                                                                dict[str, tuple[str, ...]]]:
    """
    Per step of ``graph``: the (pool, units, limit) it acquires, and the pools it releases
    (steps with ``releases=None`` are absent from the second: they release what they took).

    Raises:
        EventorConfigError: a pool named by string that the config does not declare, or a
            step that wants more units than its pool has.
    """
    limits = dict(declared)
    wants: dict[str, Wants] = {}
    releases: dict[str, tuple[str, ...]] = {}
    for step in graph.steps.values():
        units = units_of(step, limits)
        if units:
            wants[step.name] = tuple((name, n, limits[name]) for name, n in units.items())
        if step.releases is not None:
            releases[step.name] = tuple(
                str(pool_name(item[0] if isinstance(item, tuple | list) else item))
                for item in step.releases)
    return wants, releases


def units_of(step: Any, limits: dict[str, int]) -> dict[str, int]:
    """
    The units of each pool ``step`` acquires, given the ``limits`` of the pools declared so
    far (the config's, then each `ResourcePool` a step passes, which ``limits`` gains): the
    steps of a flow are checked in the order they were added.

    Raises:
        EventorConfigError: see `plan_pools`.
    """
    units: dict[str, int] = {}
    for pool, count in step.acquires:
        name = pool_name(pool)
        limit = pool.limit if isinstance(pool, ResourcePool) else limits.get(str(name))
        if name is None or limit is None:
            raise EventorConfigError(
                f"step {step.name!r} acquires pool {pool!r}, which is not declared: "
                f"declare it in the config (POOLS: {{{pool}: 2}}) or pass "
                f"ResourcePool({pool!r}, 2)", key=f"POOLS.{pool}")
        limits[name] = limit
        units[name] = units.get(name, 0) + count
        if units[name] > limit:
            raise EventorConfigError(
                f"step {step.name!r} acquires {units[name]} of pool {name!r}, "
                f"which has only {limit}", key=f"POOLS.{name}")
    return units


class Pools:
    """
    The pools each step of a flow acquires and releases, as the records the store needs.

    Args:
        graph: the flow (its steps' ``acquires`` and ``releases``).
        declared: the pools the config declares, by name, with their limits.

    Raises:
        EventorConfigError: see `plan_pools`.
    """

    def __init__(self, graph: Any, declared: Mapping[str, int]) -> None:
        self.wants, self.releases = plan_pools(graph, declared)

    def __bool__(self) -> bool:
        return bool(self.wants)

    def asks(self, step: str) -> bool:
        """True when ``step`` must hold leases before it starts."""
        return step in self.wants

    def request(self, key: int, run_id: str, attempt: int, step: str, sequence: str) -> LeaseRequest:
        """The leases a task of ``step`` asks for."""
        return LeaseRequest(key, run_id, attempt, step, sequence, self.wants[step])

    def released(self, run_id: str, attempt: int, step: str, sequence: str,
                 at: float | None) -> list[TaskRelease | PoolRelease]:
        """What a task of ``step`` releases when it ends: its own leases, or the pools its
        step names in ``releases``."""
        pools = self.releases.get(step)
        if pools is None:
            return [TaskRelease(run_id, attempt, step, sequence, at)] if step in self.wants else []
        return [PoolRelease(run_id, sequence, pool, at) for pool in pools]

    def deadlock(self, run_id: str, waiting: list[tuple[str, str]], held: list[Row]) -> str | None:
        """
        Why tasks waiting for pools (``waiting``: step, sequence) can never start, or None.

        They cannot when every lease of their pools is held by this run (``held``: the
        store's held leases) and nothing of the run is left running to release one.
        """
        pools = {pool for step, _ in waiting for pool, _, _ in self.wants[step]}
        holders = [r for r in held if r["pool"] in pools]
        if not holders or any(r["run_id"] != run_id for r in holders):
            return None  # another program holds some: its release will come
        return ", ".join(sorted({f"{r['pool']} by {r['step']}[{r['sequence']}]" for r in holders}))
