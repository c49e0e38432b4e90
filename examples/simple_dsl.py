"""
The simple example of Eventor 5.1 as a Flow class: three steps, s1 -> s2 -> s3.

    python examples/simple_dsl.py

Same steps, events and log lines as examples/simple_classic.py; the run is recorded in
./simple_dsl.run.db.
"""

import logging
import os

from eventor import Event, Flow, step


def prog(progname):
    step_logger = logging.getLogger(os.environ.get("EVENTOR_LOGGER_NAME", __name__))
    step_logger.info("doing what %s is doing", progname)
    return progname


class Simple(Flow):
    run_step1 = Event()
    run_step2 = Event()
    run_step3 = Event()

    @step(on=run_step1, success=run_step2)
    def s1(self):
        return prog("prog1")

    @step(on=run_step2, success=run_step3)
    def s2(self):
        return prog("prog2")

    @step(on=run_step3)
    def s3(self):
        return prog("prog3")


if __name__ == "__main__":
    with Simple() as flow:
        result = flow.run(sequence=1)
    print(f"run {result.run_id}: {result.status}")
    raise SystemExit(0 if result else 1)
