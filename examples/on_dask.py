"""
A fan-out on a Dask cluster: one step per day of a week, each on a Dask worker, then a report.

    python examples/on_dask.py                 # a LocalCluster started for the run
    python examples/on_dask.py dask.yaml       # the cluster (and store) dask.yaml names

dask.yaml, for a running scheduler and a shared PostgreSQL store (see docs/distributed.md):

    EVENTOR:
      DASK: {address: tcp://10.0.0.5:8786}
      DATABASES:
        shared: {dialect: postgresql, drivername: psycopg, username: etl,
                 password: "${ETL_DB_PASSWORD}", host: db.example.com, database: runs}

The run is recorded by this program (in ./on_dask.run.db, or the "shared" database when the
config has one); the workers need Eventor, not the database.
"""

from __future__ import annotations

import sys

import eventor as evr

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class Week(evr.Flow, executor="dask"):
    start = evr.Event()
    day = evr.Event()
    counted = evr.Event()
    week = evr.join(counted, over=day)

    @evr.step(on=start, emits=[day], executor="invoke")
    def plan(self, ctx: evr.StepContext) -> None:
        for name in DAYS:
            ctx.trigger(self.day, name)

    @evr.step(on=day, success=counted)
    def count(self, ctx: evr.StepContext) -> int:
        return len(ctx.sequence) * 10  # the day's work, on a worker

    @evr.step(on=week, executor="invoke")
    def report(self, ctx: evr.StepContext) -> int:
        return sum(ctx.results.each("count").values())


if __name__ == "__main__":  # Dask's worker processes import this file: keep the run here
    config = evr.load_config(sys.argv[1] if len(sys.argv) > 1 else {
        "DASK": {"cluster_kwargs": {"n_workers": 2, "threads_per_worker": 2}}})
    store = "shared" if "shared" in config.DATABASES else ""  # else ./on_dask.run.db
    result = Week(config=config, store=store).run()
    print(result.status, "| week total:", result["report"] if result.status == "success" else result.tasks)
