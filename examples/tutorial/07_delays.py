"""
Tutorial, stage 7: delays and continue. The report is published DELAY seconds after it is
made (in life: hours later, at opening time). The run goes in short sessions of one round
each; between sessions nothing runs, and the due time waits in the store.

    python 07_delays.py
"""

import csv
import time
from pathlib import Path

from eventor import Event, Flow, RunResult, step

DAY = "2026-11-02"
ORDERS = {DAY: [{"product": "tea", "qty": 2}, {"product": "cake", "qty": 1}]}
DELAY = 1.0  # seconds between the report and its publication


def note(step_name: str) -> None:
    with open("calls.log", "a") as log:
        log.write(step_name + "\n")


class Sales(Flow, stop_on_exception=False):
    """A shop's daily sales: download, sum up, load, report, and publish the report later."""

    start = Event(entry=True)
    closed = Event()
    orders_in = Event()
    prices_in = Event()
    both_in = orders_in & prices_in
    loaded = Event()
    reported = Event()
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

    @step(on=loaded | closed, success=reported)
    def report(self, ctx):
        note("report")
        if "load" not in ctx.results:
            return f"{ctx.sequence}: closed"
        revenue = ctx.results["load"]
        lines = ", ".join(f"{product} {amount:.2f}" for product, amount in revenue.items())
        return f"{ctx.sequence}: {lines} (total {sum(revenue.values()):.2f})"

    @step(on=reported, delay=DELAY)  # starts DELAY seconds after reported fired
    def publish(self, ctx):
        note("publish")
        return f"published: {ctx.results['report']}"

    @step(on=download_failed)
    def alert(self, ctx):
        return f"paged the on-call engineer about {ctx.sequence}"


def done(result: RunResult) -> str:
    return ", ".join(task.step for task in result.tasks if task.status == "success")


def main() -> None:
    Path("calls.log").unlink(missing_ok=True)
    with Sales() as flow:
        flow.trigger(Sales.start, DAY)
        result = flow.run(max_loops=1)  # one round, then return: what is left stays in the store
    print(f"first session: {result.status}; done: {done(result)}")

    due = None
    while result.status == "paused":
        if result.next_due is not None:  # a delay is pending: nothing to do before it is due
            if due is None:
                due = result.next_due
                print(f"later: {result.status}; done: {done(result)}; publish waits for its delay")
                early = Sales.resume(result.run_id, max_loops=1)
                print(f"resumed before the due time: {early.status}; due time kept: {early.next_due == due}")
            time.sleep(max(0.0, result.next_due - time.time()))
        result = Sales.resume(result.run_id, max_loops=1)  # continue the same run, one more round
    print(f"after the due time: {result.status}; {result['publish']}")
    ran = Path("calls.log").read_text().split()
    print("calls:", ", ".join(f"{name} x{ran.count(name)}" for name in Sales.graph.steps if name in ran))


if __name__ == "__main__":
    main()
