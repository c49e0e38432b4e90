"""
Eventor beside Luigi, Prefect 3 and Dagster on the same three no-op flows, whole process.

    python bench/peers/run.py [--n 1000] [--repeat 5] [--peers luigi prefect dagster ...]

Cases, each run as a process of its own (`python PEER_cases.py CASE N --home DIR`):
  one     one no-op task
  chain   N no-op tasks, each depending on the one before
  fanout  N no-op tasks, then one final task that depends on all of them (N + 1 tasks)

Luigi, Prefect and Dagster each run in a virtual environment of their own, made here with
`python3 -m venv` under --cache (default ~/.cache/eventor-bench-peers/<peer>, or
$EVENTOR_BENCH_PEERS_CACHE) and filled from requirements/<peer>.txt (the peer pinned, with
everything it pulled in, frozen). Eventor runs with --eventor-python (default: the
repository's .venv), once with the thread executor and once with the process executor.

Every peer gets one home folder for the whole invocation (its database or store, kept
across runs as a user's would be). One run of the one-task case per peer, before the timed
ones, creates it (and warms the disk cache); its times are printed apart. Then --repeat
rounds, each running every peer and case one after another.

Per run: the whole process's wall time (measured here, around the child process) and the
in-process wall time the script prints (from before the flow is built to after it
finished; the peer's package is imported before, whatever it imports on first use counts).
After each run, what the run left on disk is counted from its database (see DURABLE).

Prints a Markdown table of medians: whole-process seconds, in-process seconds and, for
the chain and the fan-out, the cost per task in ms, defined as (median in-process seconds
of the case - median in-process seconds of the one-task case) / N, and the ratio of each
to Eventor with the thread executor.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shlex
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
CASES = ("one", "chain", "fanout")
BASE = "eventor-thread"  # ratios are to this peer


@dataclass(frozen=True)
class Peer:
    name: str
    script: str
    pin: str = ""  # the peer's own package, pinned; its full lock is requirements/<venv>.txt
    venv: str = ""  # a virtual environment of its own under the cache; "" runs --eventor-python
    args: tuple[str, ...] = ()


PEERS = {
    "luigi": Peer("luigi", "luigi_cases.py", "luigi==3.8.1", "luigi"),
    "prefect": Peer("prefect", "prefect_cases.py", "prefect==3.9.1", "prefect"),
    "dagster": Peer("dagster", "dagster_cases.py", "dagster==1.13.28", "dagster"),
    "eventor-thread": Peer("eventor-thread", "eventor_cases.py", args=("--executor", "thread")),
    "eventor-process": Peer("eventor-process", "eventor_cases.py", args=("--executor", "process")),
}

DURABLE = {
    "luigi": "no task record: only the output targets (one empty file per task, not fsynced); "
             "task states live in the local scheduler's memory",
    "prefect": "the flow run and its states, through the API, in the server's sqlite database; a "
               "task run's states are set in the client, which sends an event per change (Pending, "
               "Running, Completed) and goes on without waiting; the server stores the events and its "
               "task run recorder turns them into task_run rows, which the temporary server, stopped "
               "when the process exits, had done for only part of the tasks; results not persisted",
    "dagster": "every run and every step event (start, output, success) in its sqlite event log, "
               "one insert and commit per event, in the run's thread as the run goes",
    "eventor-thread": "every task's creation, start and outcome in the sqlite store, committed "
                      "before the engine acts on it",
    "eventor-process": "as with the thread executor",
}


def expected_tasks(case: str, n: int) -> int:
    return {"one": 1, "chain": n, "fanout": n + 1}[case]


def ensure_venv(peer: Peer, cache: Path, python: str) -> Path:
    """The peer's interpreter, making its virtual environment first when needed."""
    folder = cache / peer.venv
    lock = HERE / "requirements" / f"{peer.venv}.txt"
    marker = folder / "eventor-bench-installed.txt"
    wanted = lock.read_text()
    if marker.exists() and marker.read_text() == wanted:
        return folder / "bin" / "python"
    print(f"installing {peer.pin} into {folder} (from {lock.relative_to(REPO)})", flush=True)
    if not (folder / "bin" / "python").exists():
        subprocess.run([python, "-m", "venv", str(folder)], check=True)
    subprocess.run([str(folder / "bin" / "python"), "-m", "pip", "install", "-q", "-r", str(lock)],
                   check=True)
    marker.write_text(wanted)
    return folder / "bin" / "python"


def run_once(python: Path, peer: Peer, case: str, n: int, home: Path, timeout: float,
             pythonpath: str = "") -> dict:
    cmd = [str(python), str(HERE / peer.script), case, str(n), "--home", str(home), *peer.args]
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME")}
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, cwd=home)
    whole = time.perf_counter() - start
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = "\n".join(proc.stderr.splitlines()[-25:])
        raise RuntimeError(f"{shlex.join(cmd)} exited {proc.returncode}:\n{tail}")
    result = json.loads(lines[-1])
    result["whole"] = whole
    result["recorded"] = recorded(peer.name, home, result)
    if peer.name == "prefect":
        result["events"] = prefect_events(home, result["run_id"])
    return result


def prefect_events(home: Path, flow_run_id: str) -> int:
    """How many prefect.task-run.Completed events of the flow run Prefect's database holds."""
    with sqlite3.connect(f"file:{home / 'prefect.db'}?mode=ro", uri=True) as conn:
        return conn.execute("SELECT count(*) FROM events WHERE event = 'prefect.task-run.Completed' "
                            "AND related_resource_ids LIKE ?", (f'%"prefect.flow-run.{flow_run_id}"%',)
                            ).fetchone()[0]


def recorded(peer: str, home: Path, result: dict) -> int | None:
    """How many of the run's tasks its database holds as succeeded, read after the process ended."""
    run_id = result.get("run_id")
    if peer == "luigi":
        return result.get("targets")
    if peer == "prefect":
        db, sql = home / "prefect.db", ("SELECT count(*) FROM task_run WHERE flow_run_id = ? "
                                        "AND state_type = 'COMPLETED'")
    elif peer == "dagster":
        db, sql = home / "history" / "runs" / f"{run_id}.db", (
            "SELECT count(*) FROM event_logs WHERE run_id = ? AND dagster_event_type = 'STEP_SUCCESS'")
    else:
        db, sql = home / "eventor.run.db", ("SELECT count(*) FROM eventor_tasks WHERE run_id = ? "
                                            "AND status = 'success'")
    if not db.exists():
        return 0
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        return conn.execute(sql, (run_id,)).fetchone()[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    # At N = 100, 100 tasks of Eventor (about 20 ms) or of Prefect cost less than the run-to-run
    # noise of the one-task case (+-40 ms of Eventor's start, +-0.3 s of Prefect's server start),
    # so per-task costs came out negative; at 1,000 a full run takes about 7 minutes here.
    parser.add_argument("--n", type=int, default=1000, help="tasks in the chain and in the fan-out")
    parser.add_argument("--repeat", type=int, default=5, help="timed runs of every peer and case")
    parser.add_argument("--peers", nargs="+", choices=list(PEERS), default=list(PEERS))
    parser.add_argument("--cache", type=Path, default=Path(os.environ.get(
        "EVENTOR_BENCH_PEERS_CACHE", Path.home() / ".cache" / "eventor-bench-peers")),
        help="where the peers' virtual environments are made")
    parser.add_argument("--python", default="python3", help="the interpreter that makes the venvs")
    venv_python = REPO / ".venv" / "bin" / "python"
    parser.add_argument("--eventor-python",
                        default=str(venv_python if venv_python.exists() else sys.executable))
    parser.add_argument("--eventor-src", default="",
                        help="run Eventor from this source folder (PYTHONPATH), e.g. an export of a commit")
    parser.add_argument("--timeout", type=float, default=900, help="seconds for one run")
    parser.add_argument("--raw", type=Path, help="write every run's figures to this JSON file")
    parser.add_argument("--setup-only", action="store_true", help="make the venvs and stop")
    args = parser.parse_args()

    peers = [PEERS[name] for name in args.peers]
    paths = {p.name: "" if p.venv else args.eventor_src for p in peers}
    pythons = {p.name: ensure_venv(p, args.cache, args.python) if p.venv else Path(args.eventor_python)
               for p in peers}
    if args.setup_only:
        return
    command = "python bench/peers/run.py " + shlex.join(sys.argv[1:])
    print(f"command: {command}")
    print(f"machine: Python {platform.python_version()}, {os.cpu_count()} CPUs ({platform.machine()}), "
          f"{datetime.date.today().isoformat()}", flush=True)
    runs: list[dict] = []
    failed: dict[str, str] = {}
    versions: dict[str, str] = {}
    first: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="eventor-bench-peers-") as tmp:
        homes = {p.name: Path(tmp) / p.name for p in peers}
        for home in homes.values():
            home.mkdir()
        for p in peers:  # the first run: creates the home's database, warms the disk cache
            try:
                first[p.name] = run_once(pythons[p.name], p, "one", 1, homes[p.name], args.timeout,
                                         paths[p.name])
                versions[p.name] = first[p.name]["version"]
                print(f"first run of {p.name} {versions[p.name]}: whole {first[p.name]['whole']:.2f} s, "
                      f"in process {first[p.name]['seconds']:.2f} s"
                      + (f" (eventor from {first[p.name]['from']})" if "from" in first[p.name] else ""),
                      flush=True)
            except (RuntimeError, subprocess.TimeoutExpired) as exc:
                failed[p.name] = str(exc)
                print(f"{p.name} failed: {exc}", flush=True)
        for r in range(args.repeat):
            for p in peers:
                if p.name in failed:
                    continue
                for case in CASES:
                    n = 1 if case == "one" else args.n
                    try:
                        res = run_once(pythons[p.name], p, case, n, homes[p.name], args.timeout,
                                   paths[p.name])
                    except (RuntimeError, subprocess.TimeoutExpired) as exc:
                        failed[p.name] = str(exc)
                        print(f"{p.name} failed: {exc}", flush=True)
                        break
                    res["round"] = r
                    runs.append(res)
                    print(f"round {r + 1}/{args.repeat} {p.name:15} {case:6} n={n:<5} "
                          f"whole {res['whole']:7.2f} s  in process {res['seconds']:7.3f} s  "
                          f"recorded {res['recorded']}/{expected_tasks(case, n)}"
                          + (f" (Completed events: {res['events']})" if "events" in res else ""),
                          flush=True)
    if args.raw:
        args.raw.write_text(json.dumps({"command": command, "first": first, "runs": runs}, indent=1))
    print()
    print(report(runs, peers, args.n, versions, failed, first))


def report(runs: list[dict], peers: list[Peer], n: int, versions: dict[str, str],
           failed: dict[str, str], first: dict[str, dict]) -> str:
    med: dict[tuple[str, str], tuple[float, float]] = {}
    for p in peers:
        for case in CASES:
            mine = [r for r in runs if r["peer"] == p.name and r["case"] == case]
            if mine:
                med[p.name, case] = (statistics.median(r["whole"] for r in mine),
                                     statistics.median(r["seconds"] for r in mine))

    def per_task(peer: str, case: str) -> float | None:
        if case == "one" or (peer, case) not in med or (peer, "one") not in med:
            return None
        return (med[peer, case][1] - med[peer, "one"][1]) * 1000 / n

    def cell(value: float | None, base: float | None, fmt: str) -> str:
        if value is None:
            return ""
        ratio = f" ({value / base:.1f}x)" if base and base > 0 and value > 0 else ""
        return f"{value:{fmt}}{ratio}"

    out = [f"Medians of {max((r['round'] for r in runs), default=-1) + 1} runs, N = {n}; "
           f"(x) = the ratio to {BASE}. Per task = (in-process s of the case - in-process s of "
           "the one-task case) / N.", "",
           "| case | peer | whole process (s) | in process (s) | per task (ms) |",
           "| --- | --- | --- | --- | --- |"]
    for case in CASES:
        label = {"one": "one task", "chain": f"chain of {n}", "fanout": f"fan-out of {n} + join"}[case]
        base = med.get((BASE, case))
        for p in peers:
            if (p.name, case) not in med:
                continue
            whole, inproc = med[p.name, case]
            out.append(f"| {label} | {p.name} | {cell(whole, base and base[0], '.2f')} | "
                       f"{cell(inproc, base and base[1], '.3f')} | "
                       f"{cell(per_task(p.name, case), per_task(BASE, case), '.2f')} |")
    out += ["", "| peer | version | first run: whole / in process (s) | tasks on disk after the last "
            "chain and fan-out | what it records |", "| --- | --- | --- | --- | --- |"]
    for p in peers:
        if p.name in failed and p.name not in versions:
            out.append(f"| {p.name} | | failed | | {failed[p.name].splitlines()[0]} |")
            continue
        last = {r["case"]: r for r in runs if r["peer"] == p.name}
        disk = ", ".join(f"{last[c]['recorded']}/{expected_tasks(c, n)}" for c in ("chain", "fanout")
                         if c in last)
        if p.name == "luigi":
            disk += " (target files)"
        if p.name == "prefect":
            disk = (f"task runs: {disk}; task-run Completed events: "
                    + ", ".join(str(last[c]["events"]) for c in ("chain", "fanout") if c in last))
        f = first.get(p.name)
        first_cell = f"{f['whole']:.2f} / {f['seconds']:.2f}" if f else ""
        out.append(f"| {p.name} | {versions.get(p.name, '')} | {first_cell} | {disk} | {DURABLE[p.name]} |")
    for name, why in failed.items():
        out.append(f"\n{name} failed: {why}")
    return "\n".join(out)


if __name__ == "__main__":
    main()
