"""
A flow with a step on another host over SSH: fetch here, crunch on "worker", report here.

    python examples/remote_hosts.py hosts.yaml

hosts.yaml describes the host (see docs/distributed.md):

    EVENTOR:
      HOSTS:
        worker:
          address: 10.0.0.7
          user: etl
          key_file: ~/.ssh/id_ed25519
          python: /opt/etl/venv/bin/python    # Eventor installed there
          workdir: /opt/etl                   # where this file is, on the host

The engine runs here and records the run in ./remote_hosts.run.db; the host needs this file
and Eventor, not the database. What crunch logs and prints comes back into this run's log.
"""

from __future__ import annotations

import logging
import os
import socket
import sys

import eventor as evr


class Spread(evr.Flow):
    start = evr.Event()
    fetched = evr.Event()
    crunched = evr.Event()

    @evr.step(on=start, success=fetched)
    def fetch(self) -> list[int]:
        return list(range(1, 11))

    @evr.step(on=fetched, success=crunched, host="worker", retries=1, timeout=600)
    def crunch(self, ctx: evr.StepContext) -> dict[str, object]:
        numbers = ctx.results["fetch"]
        logging.getLogger(os.environ["EVENTOR_LOGGER_NAME"]).warning("crunching %d numbers", len(numbers))
        return {"sum": sum(numbers), "host": socket.gethostname(), "pid": os.getpid()}

    @evr.step(on=crunched)
    def report(self, ctx: evr.StepContext) -> str:
        crunched = ctx.results["crunch"]
        return f"sum {crunched['sum']} crunched by process {crunched['pid']}"


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    result = Spread(config=sys.argv[1]).run()
    print(result.status, "|", result["report"] if result.status == "success" else result.tasks)
