"""
The recovery example of Eventor 5.1: s1 squares 3, s2 takes the square root of a
parameter, s3 divides 9 by 3 once both are done.

    python examples/recovery_classic.py

The first run gives s2 -9: it fails and the run returns False. The recovery gives it 9:
s1, which succeeded, is skipped (its result stays), s2 and s3 run, and the run returns
True. Both attempts are recorded in ./recovery_classic.run.db under one run id.
"""

import math
import os

import eventor as evr

appname = os.path.basename(__file__)


def square(x):
    return x * x


def square_root(x):
    return math.sqrt(x)


def divide(x, y):
    return x / y


def build_flow(run_mode=evr.RUN_RESTART, param=9, run_id=""):
    ev = evr.Eventor(name=appname, run_mode=run_mode, run_id=run_id)

    ev1s = ev.add_event("run_step1")
    ev1d = ev.add_event("done_step1")
    ev2s = ev.add_event("run_step2")
    ev2d = ev.add_event("done_step2")
    ev3s = ev.add_event("run_step3", expr=(ev1d, ev2d))

    s1 = ev.add_step("s1", func=square, kwargs={"x": 3},
                     triggers={evr.STEP_SUCCESS: (ev1d, ev2s)})
    s2 = ev.add_step("s2", func=square_root, kwargs={"x": param},
                     triggers={evr.STEP_SUCCESS: (ev2d,)},
                     recovery={evr.STEP_FAILURE: evr.STEP_RERUN, evr.STEP_SUCCESS: evr.STEP_SKIP})
    s3 = ev.add_step("s3", func=divide, kwargs={"x": 9, "y": 3})

    ev.add_assoc(ev1s, s1)
    ev.add_assoc(ev2s, s2)
    ev.add_assoc(ev3s, s3)

    ev.trigger_event(ev1s, 3)
    return ev


def main():
    with build_flow(param=-9) as ev:
        first = ev.run()
        run_id = ev.run_id
    print(f"run {run_id}: {'success' if first else 'failure'}")

    with build_flow(run_mode=evr.RUN_RECOVER, param=9, run_id=run_id) as ev:
        print(ev.recovery_plan())
        second = ev.run()
        tasks = ev.store.tasks(run_id, ev.summary.attempt)
    for t in tasks:
        how = "skipped" if t["executor"] == "skip" else "ran"
        print(f"  {t['step']}[{t['sequence']}] {how}: {t['status']}, result {t['result']}")
    print(f"recovery of {run_id}: {'success' if second else 'failure'}")
    return not first and second


if __name__ == "__main__":
    raise SystemExit(0 if main() else 1)
