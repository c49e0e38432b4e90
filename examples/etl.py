"""
The flow of the design: extract and check in parallel, then load; alert when the check fails.

    python examples/etl.py                          # run it, with the default day
    python examples/etl.py run --day 2026-11-01     # the day "bad" fails the check: alert runs
    python examples/etl.py --help                   # recover, continue, graph, runs, show, ...

The run is recorded in ./etl.run.db; the tasks are printed as a table.
"""

from typing import Annotated

import eventor as evr
from eventor import Event, Flow, ResourcePool, step

db = ResourcePool("db", 1)  # one connection: steps that use it take turns, across programs


class Etl(Flow):
    """Extract and check in parallel, then load."""

    day: Annotated[str, "the day to load, e.g. 2026-11-01"] = "today"  # Etl(day=...), --day

    start = Event()  # entry event: nothing in the flow fires it
    extracted = Event()
    checked = Event()
    ready = extracted & checked  # expression event: fires once both fired (same sequence)
    failed = Event()

    @step(on=start, success=extracted)
    def extract(self, ctx):
        ctx.log.info("extracting", day=self.day)
        return {"day": self.day, "rows": [3, 1, 4, 1, 5]}  # stored with the task, as JSON

    @step(on=start, success=checked, failure=failed, acquires=[(db, 1)], retries=2, retry_delay=0.1,
          retry_on=ConnectionError, timeout=60)
    def check(self):
        if self.day == "bad":
            raise ValueError(f"no data for day {self.day!r}")

    @step(on=ready, recovery={evr.STEP_SUCCESS: evr.STEP_SKIP})
    def load(self, ctx):
        rows = ctx.results["extract"]["rows"]  # results of earlier steps in this sequence
        ctx.log.info("loading", rows=len(rows))
        return sum(rows)

    @step(on=failed)
    def alert(self, ctx):
        ctx.log.warning("check failed", day=self.day)
        return f"alerted about {self.day}"


if __name__ == "__main__":
    # python examples/etl.py [run --day 2026-11-01 | recover --run-id ID | graph | runs | ...]
    Etl.cli()  # no arguments: run with the defaults
