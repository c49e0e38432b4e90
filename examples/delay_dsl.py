"""
The delay example as a Flow class (the twin of delay_classic.py): s1 at once, s2 and s3
each SECONDS after the step before, run as short sessions that each do one round and
exit; `Flow.resume` continues the run once a delay is due.

    python examples/delay_dsl.py [SECONDS]     # default 10
"""

import sys
import time

from eventor import Event, Flow, step


def delayed_flow(delay: float) -> type[Flow]:
    """The flow, with its delays (a class option, so the class is made per delay)."""

    class Delayed(Flow):
        run_step1 = Event()
        run_step2 = Event()
        run_step3 = Event()

        @step(on=run_step1, success=run_step2)
        def s1(self, ctx):
            ctx.log.info("doing what prog1 is doing")
            return "prog1"

        @step(on=run_step2, success=run_step3, delay=delay)
        def s2(self, ctx):
            ctx.log.info("doing what prog2 is doing")
            return "prog2"

        @step(on=run_step3, delay=delay)
        def s3(self, ctx):
            ctx.log.info("doing what prog3 is doing")
            return "prog3"

    return Delayed


def main(delay: float = 10.0) -> bool:
    flow_class = delayed_flow(delay)
    with flow_class() as flow:
        result = flow.run(sequence=1, max_loops=1)
    sessions = 1
    while result.status == "paused":
        if result.next_due is not None:
            time.sleep(max(0.0, result.next_due - time.time()))
        result = flow_class.resume(result.run_id, max_loops=1)
        sessions += 1
    print(f"run {result.run_id}: {result.status} after {sessions} sessions; "
          f"tasks: {sorted(result.statuses.items())}")
    return bool(result)


if __name__ == "__main__":
    raise SystemExit(0 if main(*(float(a) for a in sys.argv[1:2])) else 1)
