"""
The simple example of Eventor 5.1: three steps, s1 -> s2 -> s3, chained by events.

    python examples/simple_classic.py

Each step logs its start and completion; the run is recorded in ./simple_classic.run.db.
"""

import logging
import os

import eventor as evr

appname = os.path.basename(__file__)


def prog(progname):
    # Eventor names a logger per step, under its own handlers, in the step's environment.
    step_logger = logging.getLogger(os.environ.get("EVENTOR_LOGGER_NAME", appname))
    step_logger.info("doing what %s is doing", progname)
    return progname


def construct_and_run():
    ev = evr.Eventor(name=appname)

    ev1s = ev.add_event("run_step1")
    ev2s = ev.add_event("run_step2")
    ev3s = ev.add_event("run_step3")

    s1 = ev.add_step("s1", func=prog, kwargs={"progname": "prog1"},
                     triggers={evr.StepStatus.success: (ev2s,)})
    s2 = ev.add_step("s2", func=prog, kwargs={"progname": "prog2"},
                     triggers={evr.StepStatus.success: (ev3s,)})
    s3 = ev.add_step("s3", func=prog, kwargs={"progname": "prog3"})

    ev.add_assoc(ev1s, s1)
    ev.add_assoc(ev2s, s2)
    ev.add_assoc(ev3s, s3)

    ev.trigger_event(ev1s, 1)
    ok = ev.run()
    ev.close()
    print(f"run {ev.run_id}: {'success' if ok else 'failure'} ({ev.store.address})")
    return ok


if __name__ == "__main__":
    raise SystemExit(0 if construct_and_run() else 1)
