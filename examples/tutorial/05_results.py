"""
Tutorial, stage 5: results between steps. Each step returns its data; the steps after it
read it from ctx.results, in the same sequence. The load writes warehouse/DAY.csv.

    python 05_results.py
"""

import csv
from pathlib import Path

from eventor import Event, Flow, step

ORDERS = {
    "2026-11-02": [{"product": "tea", "qty": 2}, {"product": "cake", "qty": 1}],
    "2026-11-03": [{"product": "tea", "qty": 1}, {"product": "tea", "qty": 3}],
}
CLOSED = ["2026-11-01"]


class Sales(Flow, stop_on_exception=False):
    """A shop's daily sales: download orders and prices, sum them up, load, report."""

    start = Event(entry=True)
    closed = Event()
    orders_in = Event()
    prices_in = Event()
    both_in = orders_in & prices_in
    loaded = Event()
    download_failed = Event()

    @step(on=start, success=orders_in, failure=download_failed)
    def download_orders(self, ctx):
        return ORDERS[ctx.sequence]  # a list of dicts: stored as JSON with the task

    @step(on=start, success=prices_in)
    def download_prices(self):
        return {"tea": 3.5, "cake": 4.0}

    @step(on=both_in, success=loaded)
    def load(self, ctx):
        orders = ctx.results["download_orders"]  # what download_orders returned, this day
        prices = ctx.results["download_prices"]
        revenue: dict[str, float] = {}
        for order in orders:
            product = order["product"]
            revenue[product] = revenue.get(product, 0) + order["qty"] * prices[product]
        Path("warehouse").mkdir(exist_ok=True)
        with open(f"warehouse/{ctx.sequence}.csv", "w", newline="") as table:  # one file a day:
            csv.writer(table).writerows(revenue.items())  # loading a day twice is harmless
        return revenue  # a dict: JSON again

    @step(on=loaded | closed)
    def report(self, ctx):
        if "load" not in ctx.results:  # on a closed day, load never ran
            return f"{ctx.sequence}: closed"
        revenue = ctx.results["load"]
        lines = ", ".join(f"{product} {amount:.2f}" for product, amount in revenue.items())
        return f"{ctx.sequence}: {lines} (total {sum(revenue.values()):.2f})"

    @step(on=download_failed)
    def alert(self, ctx):
        return f"paged the on-call engineer about {ctx.sequence}"


if __name__ == "__main__":
    with Sales() as flow:
        for day in CLOSED:
            flow.trigger(Sales.closed, day)
        for day in ORDERS:
            flow.trigger(Sales.start, day)
        result = flow.run()
    print(f"run {result.run_id}: {result.status}")
    for day in [*CLOSED, *ORDERS]:
        print(" ", result["report", day])  # a step's return value, read after the run
    print("warehouse:", ", ".join(sorted(path.name for path in Path("warehouse").iterdir())))
