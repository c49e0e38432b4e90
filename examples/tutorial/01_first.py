"""
Tutorial, stage 1: a first flow. Download a day's orders, then load them.

    python 01_first.py        # records the run in ./01_first.run.db
"""

from eventor import Event, Flow, step


class Sales(Flow):
    """A shop's daily sales: download the orders, then load them into the warehouse."""

    start = Event()  # nothing in the flow fires it: the run starts here
    downloaded = Event()

    @step(on=start, success=downloaded)  # runs on start; its success fires downloaded
    def download(self):
        print("downloading the orders")
        return 3  # three orders today: the value is stored with the task

    @step(on=downloaded)
    def load(self):
        print("loading them into the warehouse")
        return "loaded"


if __name__ == "__main__":
    with Sales() as flow:
        result = flow.run()
    print(f"run {result.run_id}: {result.status}")
    for task in result.tasks:
        print(f"  {task.step}: {task.status}, returned {task.value!r}")
