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

__all__ = ["Resource", "ResourcePool", "pool_name"]


class Resource:
    """One unit of a pool. Eventor 5.1 programs subclass it; Eventor needs no instances."""


class ResourcePool:
    """
    A named pool of ``limit`` units: ``ResourcePool("db", 2)``.

    The Eventor 5.1 shape works too:
    ``ResourcePool("RP1", resource_cls=R, policy={"resource_limit": 2}).load()``.

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
        if units:
            wants[step.name] = tuple((name, n, limits[name]) for name, n in units.items())
        if step.releases is not None:
            releases[step.name] = tuple(
                str(pool_name(item[0] if isinstance(item, tuple | list) else item))
                for item in step.releases)
    return wants, releases
