"""
Tutorial, stage 10: the command line. The flow of stage 9, run by the eventor command:

    eventor run 10_cli.py:Sales --sequence 2026-11-02    # or: python 10_cli.py run --sequence ...
    eventor runs                                         # the runs recorded in ./*.run.db
    eventor show RUN_ID                                  # a run's tasks, errors and retries
    eventor logs RUN_ID                                  # what its tasks printed
    eventor report RUN_ID -o run.html                    # all of it as one HTML page
"""

import csv
import sys
import time
from pathlib import Path

from eventor import Event, Flow, ResourcePool, step

ORDERS = {
    "2026-11-02": [{"product": "tea", "qty": 2}, {"product": "cake", "qty": 1}],
    "2026-11-03": None,  # the API never answers for this day
}
DELAY = 0.1
warehouse = ResourcePool("warehouse", 1)  # one unit: one load at a time, across programs too


def calls(name: str) -> int:
    """Count one more call of ``name`` (in calls.log, shared by every try's process)."""
    with open("calls.log", "a+") as log:
        log.write(name + "\n")
        log.seek(0)
        return log.read().split().count(name)


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

    @step(on=start, success=orders_in, failure=download_failed, timeout=0.5, timeout_grace=0.5)
    def download_orders(self, ctx):
        print(f"GET https://shop.example/api/orders?day={ctx.sequence}")  # see eventor logs
        if ORDERS[ctx.sequence] is None:
            time.sleep(3600)  # hangs: stopped after 0.5 s (SIGTERM, then SIGKILL)
        return ORDERS[ctx.sequence]

    @step(on=start, success=prices_in, retries=3, retry_delay=0.05, backoff=2,
          retry_on=ConnectionError)  # up to 4 tries, 0.05 s then 0.1 s then 0.2 s apart
    def download_prices(self, ctx):
        if calls(f"prices/{ctx.run_id}/{ctx.sequence}") < 3:  # this run's third call answers
            raise ConnectionError("the price API answered 503")
        return {"tea": 3.5, "cake": 4.0}

    @step(on=both_in, success=loaded, acquires=[(warehouse, 1)])  # released when load ends
    def load(self, ctx):
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


if __name__ == "__main__":
    # python 10_cli.py run --sequence 2026-11-03 | runs | show RUN_ID | --help | ...
    Sales.cli(sys.argv[1:] or ["run", "--sequence", "2026-11-02"])  # no arguments: one day
