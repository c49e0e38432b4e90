"""
The recovery example as a Flow class (the twin of recovery_classic.py).

    python examples/recovery_dsl.py

The first run takes the square root of -9: s2 fails and the result is falsy. Recovering
with param=9 skips s1 (its result stays), runs s2 and s3, and succeeds.
"""

import math

import eventor as evr
from eventor import Event, Flow, step


class Recovery(Flow):
    param: float = 9

    run_step1 = Event()
    done_step1 = Event()
    run_step2 = Event()
    done_step2 = Event()
    run_step3 = done_step1 & done_step2

    @step(on=run_step1, success=(done_step1, run_step2))
    def s1(self):
        return 3 * 3

    @step(on=run_step2, success=done_step2,
          recovery={evr.STEP_FAILURE: evr.STEP_RERUN, evr.STEP_SUCCESS: evr.STEP_SKIP})
    def s2(self):
        return math.sqrt(self.param)

    @step(on=run_step3)
    def s3(self, ctx):
        return 9 / ctx.results["s2"]


def main():
    with Recovery(param=-9) as flow:
        first = flow.run(sequence=3)
    print(f"run {first.run_id}: {first.status} {first.failed}")
    print(Recovery.recovery_plan(first.run_id))
    second = Recovery.recover(first.run_id, param=9)
    for task in second.tasks:
        how = "skipped" if task.skipped else "ran"
        print(f"  {task.step}[{task.sequence}] {how}: {task.status}, result {task.value}")
    print(f"recovery of {second.run_id}: {second.status}")
    return not first and bool(second)


if __name__ == "__main__":
    raise SystemExit(0 if main() else 1)
