"""
Tutorial, stage 4: failure branches. The shop's API is down on 2026-11-03: the download
fails and an alert step handles it. On 2026-11-04 a malformed order makes the load fail,
and nothing handles that: the run fails, and says which task did.

    python 04_failures.py
"""

from eventor import Event, Flow, step

ORDERS = {
    "2026-11-02": [{"product": "tea", "qty": 2}, {"product": "cake", "qty": 1}],
    "2026-11-03": None,  # the API answered 503
    "2026-11-04": [{"product": "tea", "qty": "two"}],
}
CLOSED = ["2026-11-01"]


class Sales(Flow, stop_on_exception=False):  # one day's failure stops no other day
    """A shop's daily sales: download orders and prices, load them, report; alert on failure."""

    start = Event(entry=True)
    closed = Event()
    orders_in = Event()
    prices_in = Event()
    both_in = orders_in & prices_in
    loaded = Event()
    download_failed = Event()

    @step(on=start, success=orders_in, failure=download_failed)  # raising fires download_failed
    def download_orders(self, ctx):
        orders = ORDERS[ctx.sequence]
        if orders is None:
            raise ConnectionError(f"the shop's API is down for {ctx.sequence}")
        return len(orders)

    @step(on=start, success=prices_in)
    def download_prices(self):
        return {"tea": 3.5, "cake": 4.0}

    @step(on=both_in, success=loaded)  # no failure= here: a failed load fails the run
    def load(self, ctx):
        return sum(int(order["qty"]) for order in ORDERS[ctx.sequence])

    @step(on=loaded | closed)
    def report(self, ctx):
        return f"report for {ctx.sequence}"

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
    steps = list(Sales.graph.steps)  # in definition order
    for task in sorted(result.tasks, key=lambda t: (t.sequence, steps.index(t.step))):
        outcome = task.error if task.status == "failure" else repr(task.value)
        print(f"  {task.step}[{task.sequence}]: {task.status}: {outcome}")
    print(f"unhandled failures: {result.failed}")
