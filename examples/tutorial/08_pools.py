"""
Tutorial, stage 8: pools. Four days load in one run; the warehouse takes one writer at a
time, so each load holds the one unit of the warehouse pool while it runs.

    python 08_pools.py
"""

import csv
import time
from pathlib import Path

from eventor import Event, Flow, ResourcePool, step

ORDERS = {
    "2026-11-02": [{"product": "tea", "qty": 2}, {"product": "cake", "qty": 1}],
    "2026-11-03": [{"product": "tea", "qty": 1}, {"product": "tea", "qty": 3}],
    "2026-11-04": [{"product": "cake", "qty": 4}],
    "2026-11-05": [{"product": "tea", "qty": 5}],
}
DELAY = 0.1
warehouse = ResourcePool("warehouse", 1)  # one unit: one load at a time, across programs too


def writers(change: int) -> None:
    """Append +1 when a load starts writing, -1 when it is done, with the time."""
    with open("writers.log", "a") as log:
        log.write(f"{time.time()} {change}\n")


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
        return ORDERS[ctx.sequence]

    @step(on=start, success=prices_in)
    def download_prices(self):
        return {"tea": 3.5, "cake": 4.0}

    @step(on=both_in, success=loaded, acquires=[(warehouse, 1)])  # released when load ends
    def load(self, ctx):
        writers(+1)
        orders = ctx.results["download_orders"]
        prices = ctx.results["download_prices"]
        revenue: dict[str, float] = {}
        for order in orders:
            product = order["product"]
            revenue[product] = revenue.get(product, 0) + order["qty"] * prices[product]
        Path("warehouse").mkdir(exist_ok=True)
        with open(f"warehouse/{ctx.sequence}.csv", "w", newline="") as table:
            csv.writer(table).writerows(revenue.items())
        time.sleep(0.1)  # the warehouse is slow to commit
        writers(-1)
        return revenue

    @step(on=loaded | closed, success=reported)
    def report(self, ctx):
        if "load" not in ctx.results:
            return f"{ctx.sequence}: closed"
        revenue = ctx.results["load"]
        lines = ", ".join(f"{product} {amount:.2f}" for product, amount in revenue.items())
        return f"{ctx.sequence}: {lines} (total {sum(revenue.values()):.2f})"

    @step(on=reported, delay=DELAY)
    def publish(self, ctx):
        return f"published: {ctx.results['report']}"

    @step(on=download_failed)
    def alert(self, ctx):
        return f"paged the on-call engineer about {ctx.sequence}"


def most_writers() -> int:
    """The most loads that were writing at the same time, from writers.log."""
    changes = sorted(tuple(map(float, line.split())) for line in Path("writers.log").read_text().splitlines())
    now = most = 0
    for _, change in changes:
        now += int(change)
        most = max(most, now)
    return most


if __name__ == "__main__":
    Path("writers.log").unlink(missing_ok=True)
    with Sales() as flow:
        for day in ORDERS:
            flow.trigger(Sales.start, day)
        result = flow.run()
    print(f"run {result.run_id}: {result.status}")
    for day in ORDERS:
        print(" ", result["publish", day])
    print("loads writing at the same time, at most:", most_writers())
