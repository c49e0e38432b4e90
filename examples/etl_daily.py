"""
Subclassing a flow: the daily ETL inherits extract, check and alert, replaces load (and
its wiring), calls the parent's step with super(), and adds a report step.

    python examples/etl_daily.py [DAY]
"""

import sys

from etl import Etl  # examples/etl.py, next to this file

from eventor import Event, step


class DailyEtl(Etl):
    """The ETL, plus a report once the load is done."""

    loaded = Event()

    @step(on=Etl.ready, success=loaded)  # same name as Etl.load: replaces it, wiring included
    def load(self, ctx):
        total = super().load(ctx)  # the parent's body still works
        return {"total": total, "day": self.day}

    @step(on=loaded)
    def report(self, ctx):
        loaded = ctx.results["load"]
        return f"{loaded['day']}: loaded {loaded['total']}"


if __name__ == "__main__":
    with DailyEtl(day=sys.argv[1] if len(sys.argv) > 1 else "today") as flow:
        result = flow.run()
    print(result["report"] if result else f"failed: {result.failed}")
    raise SystemExit(0 if result else 1)
