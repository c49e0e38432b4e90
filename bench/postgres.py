"""
Per-step cost of the engine on a PostgreSQL store, against PostgreSQL's own floor.

    CI_POSTGRES_URL=postgresql+psycopg://user:pw@127.0.0.1:55432/db python bench/postgres.py

(`.ci/postgres.sh` starts a throwaway server and sets the variable.) Cases, each in a schema
of its own that is dropped afterwards, logging at WARNING:
  floor          N single-row inserts, each its own transaction, SQLAlchemy Core, same server
  chain-thread   N steps chained by success events, thread executor
  fanout-thread  one event triggering N steps, thread executor

Prints ms/step and the ratio to the floor (target: at most 3x for a chained step).
"""

from __future__ import annotations

import argparse
import os
import sys
import uuid
from pathlib import Path

from sqlalchemy import create_engine, make_url, text

sys.path.insert(0, str(Path(__file__).resolve().parent))
import core


def run_flow(url: str, schema: str, name: str, n: int, shape: str) -> float:
    parsed = make_url(url)
    database = {"dialect": "postgresql", "username": parsed.username, "password": parsed.password,
                "host": parsed.host, "port": parsed.port, "database": parsed.database,
                "schema": schema}
    return core.run_flow(None, name, n, "thread", shape, store="pg",
                         config={"DATABASES": {"pg": database}})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--floor", type=int, default=1000)
    parser.add_argument("--chain", type=int, default=1000)
    parser.add_argument("--fanout", type=int, default=10000)
    args = parser.parse_args()
    url = os.environ.get("CI_POSTGRES_URL")
    if not url:
        raise SystemExit("set CI_POSTGRES_URL to a PostgreSQL server's URL (.ci/postgres.sh starts one)")
    engine = create_engine(url)
    schemas = [f"bench_{uuid.uuid4().hex[:8]}_{case}" for case in ("floor", "chain", "fanout")]
    try:
        with engine.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schemas[0]}"'))
        base = core.commit_floor(create_engine(url), args.floor, schema=schemas[0])
        chain = run_flow(url, schemas[1], "chain", args.chain, "chain")
        fan = run_flow(url, schemas[2], "fanout", args.fanout, "fanout")
    finally:
        with engine.begin() as conn:
            for schema in schemas:
                conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        engine.dispose()
    print(f"PostgreSQL at {make_url(url).render_as_string(hide_password=True)}")
    print(f"{'case':34} {'ms/step':>9} {'x floor':>8} {'target':>8}")
    print(f"{'floor (1 insert + commit)':34} {base:9.3f} {1:8.2f}")
    print(f"{f'chain-thread ({args.chain} steps)':34} {chain:9.3f} {chain / base:8.2f} {'<=3x':>8} "
          f"{'ok' if chain <= 3 * base else 'MISSED'}")
    print(f"{f'fanout-thread ({args.fanout} steps)':34} {fan:9.3f} {fan / base:8.2f}")


if __name__ == "__main__":
    main()
