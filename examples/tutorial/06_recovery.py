"""
Tutorial, stage 6: recovery after kill -9. main() runs the flow's engine in a child
process, kills it with SIGKILL while load is running, and recovers the run: the two
downloads, which succeeded, are skipped; load runs again; report runs.

    python 06_recovery.py           # the whole story
    python 06_recovery.py engine    # only the engine, with the slow load: kill -9 it yourself
"""

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from eventor import Event, Flow, step

ORDERS = {"2026-11-02": [{"product": "tea", "qty": 2}, {"product": "cake", "qty": 1}]}


def note(step_name: str) -> None:
    """Append the step's name to calls.log: how main() counts what really ran."""
    with open("calls.log", "a") as log:
        log.write(step_name + "\n")


def calls() -> list[str]:
    """The steps that started so far, in order, one entry per call."""
    return Path("calls.log").read_text().split() if Path("calls.log").exists() else []


class Sales(Flow, stop_on_exception=False):
    """A shop's daily sales: download orders and prices, sum them up, load, report."""

    pause: float = 0.0  # a parameter: seconds the load takes (the run we kill takes long)

    start = Event(entry=True)
    closed = Event()
    orders_in = Event()
    prices_in = Event()
    both_in = orders_in & prices_in
    loaded = Event()
    download_failed = Event()

    @step(on=start, success=orders_in, failure=download_failed)
    def download_orders(self, ctx):
        note("download_orders")
        return ORDERS[ctx.sequence]

    @step(on=start, success=prices_in)
    def download_prices(self):
        note("download_prices")
        return {"tea": 3.5, "cake": 4.0}

    @step(on=both_in, success=loaded)
    def load(self, ctx):
        note("load")
        time.sleep(self.pause)  # long enough to be killed in the middle
        orders = ctx.results["download_orders"]
        prices = ctx.results["download_prices"]
        revenue: dict[str, float] = {}
        for order in orders:
            product = order["product"]
            revenue[product] = revenue.get(product, 0) + order["qty"] * prices[product]
        Path("warehouse").mkdir(exist_ok=True)
        with open(f"warehouse/{ctx.sequence}.csv", "w", newline="") as table:
            csv.writer(table).writerows(revenue.items())
        return revenue

    @step(on=loaded | closed)
    def report(self, ctx):
        note("report")
        if "load" not in ctx.results:
            return f"{ctx.sequence}: closed"
        revenue = ctx.results["load"]
        lines = ", ".join(f"{product} {amount:.2f}" for product, amount in revenue.items())
        return f"{ctx.sequence}: {lines} (total {sum(revenue.values()):.2f})"

    @step(on=download_failed)
    def alert(self, ctx):
        return f"paged the on-call engineer about {ctx.sequence}"


def engine() -> None:
    """The child process: run the flow, with a load that takes a minute."""
    with Sales(pause=60) as flow:
        print(flow.run_id, flush=True)  # tell main() which run this is
        for day in ORDERS:
            flow.trigger(Sales.start, day)
        flow.run()


def main() -> None:
    Path("calls.log").unlink(missing_ok=True)
    child = subprocess.Popen([sys.executable, __file__, "engine"], stdout=subprocess.PIPE, text=True)
    run_id = child.stdout.readline().strip()
    while "load" not in calls():  # wait until load has started
        if child.poll() is not None:
            raise SystemExit(f"the engine ended before load started (exit {child.returncode})")
        time.sleep(0.01)
    os.kill(child.pid, signal.SIGKILL)  # kill -9: no cleanup, no last words
    child.wait()
    print(f"engine of run {run_id} killed by signal {-child.returncode} while load ran")

    print(Sales.recovery_plan(run_id))  # what recover will do, and why; runs nothing
    result = Sales.recover(run_id, pause=0)  # a new attempt of the same run; pause overridden
    print(f"recovery, attempt {result.attempt}: {result.status}")
    for task in result.tasks:
        print(f"  {task.step}[{task.sequence}]: {'skipped' if task.skipped else 'ran'}")
    print(" ", result["report"])
    ran = calls()
    print("calls over both attempts:", ", ".join(f"{name} x{ran.count(name)}" for name in Sales.graph.steps
                                                if name in ran))


if __name__ == "__main__":
    if sys.argv[1:] == ["engine"]:
        engine()
    else:
        main()
