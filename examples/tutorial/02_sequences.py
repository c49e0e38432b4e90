"""
Tutorial, stage 2: sequences. One run loads three days, each day in a sequence of its own.

    python 02_sequences.py
"""

from eventor import Event, Flow, step

ORDERS = {  # what the shop's API would answer, day by day
    "2026-11-02": [{"product": "tea", "qty": 2}, {"product": "cake", "qty": 1}],
    "2026-11-03": [{"product": "tea", "qty": 1}],
    "2026-11-04": [{"product": "cake", "qty": 4}, {"product": "tea", "qty": 3},
                   {"product": "tea", "qty": 1}],
}


class Sales(Flow):
    """A shop's daily sales: download the orders, then load them into the warehouse."""

    start = Event()
    downloaded = Event()

    @step(on=start, success=downloaded)
    def download(self, ctx):  # a step that takes a second argument gets a StepContext
        return len(ORDERS[ctx.sequence])  # the sequence is the day

    @step(on=downloaded)
    def load(self, ctx):
        return f"loaded {ctx.sequence}"


if __name__ == "__main__":
    with Sales() as flow:
        for day in ORDERS:
            flow.trigger(Sales.start, day)  # one sequence per day, all in one run
        result = flow.run()
    print(f"run {result.run_id}: {result.status}, {len(result.tasks)} tasks")
    for day in ORDERS:
        print(f"  {day}: orders: {result['download', day]}, {result['load', day]}")
