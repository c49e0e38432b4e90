"""
Flows run on schedules by tests/test_schedule.py, some in programs of their own:

    python -m tests.schedule_flows STORE LOG SECONDS    (a scheduler of Tick, every second)
"""

from __future__ import annotations

import datetime as dt
import sys
import time

from eventor import Event, Flow, step


class Daily(Flow, schedule="0 2 * * *"):
    day: dt.date = dt.date(2000, 1, 1)
    seen: list = []  # noqa: RUF012 - the days the runs saw, in this process

    go = Event(entry=True)

    @step(on=go)
    def load(self):
        Daily.seen.append(self.day)
        return self.day.isoformat()


class Tick(Flow):
    at: str = ""
    log: str = ""

    go = Event(entry=True)

    @step(on=go)
    def tick(self):
        with open(self.log, "a") as f:
            f.write(self.at + "\n")


def main() -> None:
    store, log, seconds = sys.argv[1:]
    until = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=float(seconds))
    results = Tick.schedule("1s", param="at", tz="UTC", until=until, log=log, store=store,
                            config={"LOGGING": {"console": False}}, executor="thread")
    print(len(results), all(results), flush=True)
    time.sleep(0)


if __name__ == "__main__":
    main()
