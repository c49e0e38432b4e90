"""
Eventor on a Dask cluster against Dask's own time for the same work, in one run.

    python bench/dask_cluster.py

One `distributed.LocalCluster` (worker processes) serves every case, on sqlite files in a
temporary folder, logging at WARNING:
  dask-map        client.map of N no-op calls, gathered (Dask's own time; nothing recorded)
  fanout-dask     one event triggering N no-op steps through Eventor, every task recorded
  chain-dask      M no-op steps chained by success events, on the cluster
  chain-thread    the same chain on the thread executor (the local baseline)

Prints ms/task and the ratios (target: the fan-out at most 2x Dask's own time).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import core
import distributed


def noop(*_: object) -> None:
    """The work of every case."""


def dask_map(client: distributed.Client, n: int) -> float:
    start = time.perf_counter()
    futures = client.map(noop, range(n), pure=False)
    client.gather(futures)
    elapsed = time.perf_counter() - start
    client.cancel(futures)
    return elapsed * 1000 / n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--fanout", type=int, default=10000)
    parser.add_argument("--chain", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, distributed.LocalCluster(
            n_workers=args.workers, threads_per_worker=args.threads, dashboard_address=None) as cluster:
        folder = Path(tmp)
        config = {"DASK": {"address": cluster.scheduler_address}}
        with distributed.Client(cluster, set_as_default=False) as client:
            dask_map(client, min(args.fanout, 1000))  # warm the workers
            own = dask_map(client, args.fanout)
        fan = core.run_flow(folder, "fanout", args.fanout, "dask", "fanout", config=config)
        chain = core.run_flow(folder, "chain", args.chain, "dask", "chain", config=config)
        local = core.run_flow(folder, "chain-thread", args.chain, "thread", "chain")
    print(f"LocalCluster: {args.workers} worker processes x {args.threads} threads")
    print(f"{'case':34} {'ms/task':>9} {'ratio':>8}")
    print(f"{f'dask-map ({args.fanout} calls)':34} {own:9.3f} {1:8.2f}")
    print(f"{f'fanout-dask ({args.fanout} steps)':34} {fan:9.3f} {fan / own:8.2f}  target <=2x "
          f"Dask's own: {'ok' if fan <= 2 * own else 'MISSED'}")
    print(f"{f'chain-thread ({args.chain} steps)':34} {local:9.3f} {1:8.2f}")
    print(f"{f'chain-dask ({args.chain} steps)':34} {chain:9.3f} {chain / local:8.2f}  x thread chain")


if __name__ == "__main__":
    main()
