"""
Kill the engine at 100 random moments of a run, recover each run, and count the recoveries
that lost or repeated nothing (see tests/crash_harness.py for the flow and the checks).

    python bench/crash.py [--kills 100] [--seed 1] [--threads]

The moments are drawn uniformly from the start of the run (its attempt recorded) to a
little past its end, as measured by one uninterrupted run first (its attempt's start and
end times in the store). Record the result in
docs/performance.md with the command line used.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.crash_harness import expected, kill_and_recover, query, start  # noqa: E402


def clean_run_seconds(folder: Path, kind: str) -> float:
    """How long an uninterrupted run takes, from its attempt's start to its end (as recorded)."""
    store = folder / "clean.run.db"
    proc = start("run", store, folder / "clean.log", "clean", kind)
    proc.communicate(timeout=120)
    if proc.returncode != 0:
        raise SystemExit("the uninterrupted run failed")
    ((began, ended),) = query(store, "select started_at, ended_at from eventor_attempts")
    return float(ended - began)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--kills", type=int, default=100)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--threads", action="store_true",
                        help="every step on threads: rounds also run on the workers")
    args = parser.parse_args()
    kind = "threads" if args.threads else "mixed"
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory(prefix="eventor-crash-") as tmp:
        folder = Path(tmp)
        span = clean_run_seconds(folder, kind)
        print(f"an uninterrupted run takes {span:.3f} s; killing {args.kills} runs "
              f"at random moments in [0, {span * 1.1:.3f}] s")
        passed, states, failures = 0, Counter(), []
        for n in range(args.kills):
            kill_after = rng.uniform(0, span * 1.1)
            report = kill_and_recover(folder, kill_after, run_id=f"k{n}", kind=kind)
            states[report.recorded_before] += 1
            if report.ok:
                passed += 1
            else:
                failures.append(report)
                print(f"  kill {n} at {kill_after:.3f} s FAILED: {report.problems}")
    print(f"{passed}/{args.kills} recoveries passed every check")
    successes = sum(1 for status, _ in expected().values() if status == "success")
    print(f"tasks recorded as succeeded at the kill (of {successes}): "
          + ", ".join(f"{k}: {v}x" for k, v in sorted(states.items())))
    raise SystemExit(0 if not failures else 1)


if __name__ == "__main__":
    main()
