"""
Tutorial, stage 3: `&` and `|`. Orders and prices download in parallel; the load waits
for both; the report goes out after the load, or at once on a day the shop was closed.

    python 03_and_or.py
"""

from eventor import Event, Flow, step

ORDERS = {
    "2026-11-02": [{"product": "tea", "qty": 2}, {"product": "cake", "qty": 1}],
    "2026-11-03": [{"product": "tea", "qty": 1}],
}
CLOSED = ["2026-11-01"]  # a Sunday: nothing to download


class Sales(Flow):
    """A shop's daily sales: download orders and prices, load them, report."""

    start = Event(entry=True)  # what run() fires; closed is fired by flow.trigger only
    closed = Event()  # triggered instead of start on a day the shop was closed
    orders_in = Event()
    prices_in = Event()
    both_in = orders_in & prices_in  # fires once both fired, in the same sequence
    loaded = Event()

    @step(on=start, success=orders_in)
    def download_orders(self, ctx):
        return len(ORDERS[ctx.sequence])

    @step(on=start, success=prices_in)  # on start too: runs beside download_orders
    def download_prices(self):
        return {"tea": 3.5, "cake": 4.0}

    @step(on=both_in, success=loaded)
    def load(self, ctx):
        return f"loaded {ctx.sequence}"

    @step(on=loaded | closed)  # either one: the report goes out every day
    def report(self, ctx):
        return f"report for {ctx.sequence}"


if __name__ == "__main__":
    with Sales() as flow:
        for day in CLOSED:
            flow.trigger(Sales.closed, day)
        for day in ORDERS:
            flow.trigger(Sales.start, day)
        result = flow.run()
    print(f"run {result.run_id}: {result.status}")
    for day in [*CLOSED, *ORDERS]:
        ran = [task.step for task in result.tasks if task.sequence == day]
        print(f"  {day}: {', '.join(ran)}")
