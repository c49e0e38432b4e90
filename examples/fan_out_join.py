"""
Fan out and join: scan a folder, load each file in a sequence of its own, then summarize.

    python examples/fan_out_join.py                   # makes ./incoming with 3 files, one bad
    python examples/fan_out_join.py run --folder DIR  # a folder of your own
    python examples/fan_out_join.py show RUN_ID       # every task, per file

A bad file fails its load; the failure branch records it, and the join waits for every
file to be loaded or rejected (`loaded | rejected`), so the summary reports both.
"""

import sys
from pathlib import Path
from typing import Annotated

import eventor as evr
from eventor import Event, Flow, step


class Ingest(Flow):
    """Load every CSV file of a folder, each in its own sequence, then summarize."""

    folder: Annotated[str, "the folder to scan for *.csv files"] = "incoming"

    start = Event()
    found = Event()  # fired once per file, in a child sequence named after the file
    loaded = Event()
    rejected = Event()
    settled = evr.join(loaded | rejected, over=found)  # fires once every file settled

    @step(on=start, emits=[found])
    def scan(self, ctx):
        files = sorted(Path(self.folder).glob("*.csv"))
        for path in files:
            ctx.trigger(self.found, path.name)  # a child sequence of this one
        return len(files)

    @step(on=found, success=loaded, failure=rejected)
    def load(self, ctx):
        text = (Path(self.folder) / ctx.sequence).read_text()
        return sum(int(field) for line in text.splitlines() for field in line.split(","))

    @step(on=rejected)
    def quarantine(self, ctx):
        ctx.log.warning("rejected", file=ctx.sequence)

    @step(on=settled)
    def summarize(self, ctx):
        totals = ctx.results.each("load")  # {file: its load's result}, loaded files only
        return {"files": ctx.results["scan"], "loaded": totals, "total": sum(totals.values())}


def make_sample(folder: str) -> None:
    Path(folder).mkdir(exist_ok=True)
    Path(folder, "a.csv").write_text("1,2\n3,4\n")
    Path(folder, "b.csv").write_text("10,20\n")
    Path(folder, "broken.csv").write_text("1,two\n")


if __name__ == "__main__":
    if len(sys.argv) == 1:  # no command: a sample folder and one run
        make_sample("incoming")
        result = Ingest().run()
        print(result["summarize"])
        sys.exit(0 if result else 1)
    Ingest.cli()
