"""
The delay example of Eventor 5.1: s1 runs at once, s2 ten seconds after s1 succeeds, s3 ten
seconds after s2. The program runs in short sessions: each one does a single scheduling
round (``run(max_loops=1)``) and exits; the next continues the same run (RUN_CONTINUE)
once a delay is due. The delays live in the store, so no session needs to stay up.

    python examples/delay_classic.py [SECONDS]     # the two delays; default 10

Each step runs exactly once across all sessions.
"""

import logging
import os
import sys
import time

import eventor as evr

appname = os.path.basename(__file__)


def prog(progname):
    logging.getLogger(os.environ.get("EVENTOR_LOGGER_NAME", appname)).info(
        "doing what %s is doing", progname)
    return progname


def build_flow(run_mode=evr.RUN_RESTART, run_id="", delay=10.0):
    ev = evr.Eventor(name=appname, run_mode=run_mode, run_id=run_id)

    ev1s = ev.add_event("run_step1")
    ev2s = ev.add_event("run_step2")
    ev3s = ev.add_event("run_step3")

    s1 = ev.add_step("s1", func=prog, kwargs={"progname": "prog1"},
                     triggers={evr.STEP_SUCCESS: (ev2s,)})
    s2 = ev.add_step("s2", func=prog, kwargs={"progname": "prog2"},
                     triggers={evr.STEP_SUCCESS: (ev3s,)})
    s3 = ev.add_step("s3", func=prog, kwargs={"progname": "prog3"})

    ev.add_assoc(ev1s, s1, delay=0)
    ev.add_assoc(ev2s, s2, delay=delay)
    ev.add_assoc(ev3s, s3, delay=delay)

    ev.trigger_event(ev1s, 1)  # a no-op when continuing: it fired in the first session
    return ev


def main(delay=10.0):
    mode, run_id, sessions = evr.RUN_RESTART, "", 0
    while True:
        with build_flow(mode, run_id, delay) as ev:
            ev.run(max_loops=1)
            summary, run_id = ev.summary, ev.run_id
        sessions += 1
        if summary.status != "paused":
            break
        if summary.next_due is not None:  # nothing to do before then: wait, then continue
            time.sleep(max(0.0, summary.next_due - time.time()))
        mode = evr.RUN_CONTINUE
    print(f"run {run_id}: {summary.status} after {sessions} sessions; "
          f"tasks: {dict(summary.counts)}")
    return bool(summary)


if __name__ == "__main__":
    raise SystemExit(0 if main(*(float(a) for a in sys.argv[1:2])) else 1)
