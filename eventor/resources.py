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
