"""
The flow of the design: extract and check in parallel, then load; alert when the check fails.

    python examples/etl.py [DAY]        # DAY "bad" makes the check fail and the alert run

The run is recorded in ./etl.run.db; the result is printed.
"""

import sys

import eventor as evr
from eventor import Event, Flow, ResourcePool, step

db = ResourcePool("db", 1)  # one connection: steps that use it take turns, across programs


class Etl(Flow):
    """Extract and check in parallel, then load."""

    day: str = "today"  # flow parameter: typed, set as Etl(day=...)

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


def main(day: str = "today") -> bool:
    with Etl(day=day) as flow:
        result = flow.run()
    for task in result.tasks:
        print(f"{task.step}[{task.sequence}]: {task.status}"
              + (f" -> {task.result_text}" if task.result_text else "")
              + (f" ({task.error})" if task.error else ""))
    print(f"run {result.run_id}: {result.status}")
    return bool(result)


if __name__ == "__main__":
    raise SystemExit(0 if main(*sys.argv[1:2]) else 1)
