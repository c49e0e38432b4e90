"""
Eventor's configuration: a dict, a YAML file or YAML text, under a root tag, validated on load.

The root tag is ``EVENTOR`` unless ``$EVENTOR_CONFIG_TAG`` or ``tag=`` names another. Values
may say ``${VAR}`` to take them from the environment (so passwords need not live in files).
Every mistake is an `EventorConfigError` naming the key path and the file.
"""

from __future__ import annotations

import dataclasses
import os
import re
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from eventor.exceptions import EventorConfigError, closest
from eventor.options import EngineOptions, StepOptions, default_workers

__all__ = ["DEFAULT_TAG", "Config", "default_program", "load_config"]

DEFAULT_TAG = "EVENTOR"

LOGGING_KEYS = {
    "logging_level": (str, int),
    "logdir": (str,),
    "level_formats": (dict,),
    "console": (bool,),
    "file_prefix": (str,),
    "file_suffix": (str,),
    "file_mode": (str,),
    "maxBytes": (int,),
    "backupCount": (int,),
    "encoding": (str,),
    "when": (str,),
    "interval": (int,),
    "utc": (bool,),
    "renderer": (str,),
}

LEVELS = ("CRITICAL", "FATAL", "ERROR", "WARNING", "WARN", "INFO", "DEBUG", "NOTSET")
RENDERERS = ("text", "json")

DATABASE_KEYS = {
    "dialect": (str,),
    "drivername": (str,),
    "username": (str,),
    "password": (str,),
    "host": (str,),
    "port": (int,),
    "database": (str,),
    "schema": (str,),
}

HOST_KEYS = {
    "address": (str,),  # name or IP to connect to (default: the host's own name)
    "port": (int,),
    "user": (str,),
    "key_file": (str,),
    "known_hosts": (str,),
    "accept_unknown_hosts": (bool,),
    "python": (str,),
    "workdir": (str,),
    "env": (dict,),
    "connect_timeout": (int, float),
    "lost_after": (int, float),
}

DASK_KEYS = {
    "address": (str,),  # a running scheduler, e.g. tcp://10.0.0.5:8786
    "cluster_class": (str,),  # an import path, e.g. dask_jobqueue.SLURMCluster
    "cluster_kwargs": (dict,),  # for cluster_class, or distributed.LocalCluster
    "connect_timeout": (int, float),
}


@dataclass(frozen=True)
class Config:
    """
    Validated settings; field names are the config keys of Eventor 5.1.

    Made by `load_config`, which checks every key and type; a key left out keeps the
    default shown in the signature. The attributes below are grouped: where runs are kept,
    how tasks run, every step's defaults, what steps are given, how a dead engine is told
    apart, other machines, and logging.

    Attributes:
        workdir: The folder of the default store file, ``{workdir}/{program}.run.db``
            (used when ``$EVENTOR_DB_CONFIG_TAG`` names no ``DATABASES`` tag).
        logdir: The folder of the per-run log files (``LOGGING.logdir`` wins over it);
            with neither, no log file is written.
        DATABASES: Named database connections, by tag: ``store="tag"`` uses one. Each has
            ``dialect``, ``drivername``, ``username``, ``password``, ``host``, ``port``,
            ``database`` and ``schema``.
        shared_db: The store holds several users' runs: a recover or continue without a
            ``run_id`` fails when the program has several runs, instead of taking the latest.
        day_to_keep_db: The age in days of the runs `purge` deletes when given no
            ``days``; never applied during a run.
        task_construct: The executor of steps that name none: ``process``, ``thread``,
            ``invoke``, ``ssh`` or ``dask``, or Eventor 5.1's ``threading.Thread`` or
            ``multiprocessing.Process``.
        max_concurrent: Tasks running at once across all executors; -1 for no limit.
        process_workers: Worker processes of the ``process`` executor; None for
            ``max_concurrent`` when it is set, else the CPUs plus 4 (at most 32).
        thread_workers: Threads of the ``thread`` executor; None for ``max_concurrent``
            when it is set, else 32.
        max_tasks_per_child: Tasks a worker process runs before it is replaced; 0 for no
            limit, 1 for a fresh process per task (as in Eventor 5.1).
        POOLS: Resource pools, by name, with their limits: what a step's
            ``acquires=[("db", 1)]`` names.
        stop_on_exception: Every step's default: after a failure that no failure or
            complete trigger handles, start no new task (running ones finish).
        strict_triggers: A ``ctx.trigger`` of an event its step does not declare in
            ``emits`` fails the task; when False it is logged as a warning and fires.
        sleep_between_loops: Accepted for Eventor 5.1 programs, and not used: the engine
            never polls.
        retries: Every step's default number of tries after the first.
        retry_delay: Every step's default seconds before the first retry.
        backoff: Every step's default factor by which each retry's wait grows.
        max_retry_delay: Every step's default cap on a retry's wait, in seconds; None for
            none.
        timeout: Every step's default seconds a try may run; None (or 0) for no limit.
        timeout_grace: Every step's default seconds between stopping a timed-out process
            (SIGTERM) and killing it (SIGKILL); for a timed-out thread step, how long after
            its timeout ``close()`` waits for it to return.
        envvar_prefix: The prefix of the variables each task gets in its environment
            (``EVENTOR_STEP_NAME``, ``EVENTOR_STEP_SEQUENCE``, ``EVENTOR_STEP_RECOVERY``,
            ``EVENTOR_LOGGER_NAME``).
        pass_logger_to_task: Pass each step its logger as the keyword argument ``logger``.
        sequence_arg_name: Pass each step its sequence as the keyword argument of this
            name; None passes none.
        heartbeat_interval: Seconds between a running engine's heartbeats in the store.
        heartbeat_grace: Seconds without a heartbeat after which an attempt counts as
            dead, on any host, so that it can be recovered; more than twice
            ``heartbeat_interval``.
        HOSTS: The hosts that steps with ``host=`` run on, over SSH, by name: each may
            set ``address``, ``port``, ``user``, ``key_file``, ``known_hosts``,
            ``accept_unknown_hosts``, ``python``, ``workdir``, ``env``,
            ``connect_timeout`` and ``lost_after``.
        ssh_config: An ssh config file for hosts not in ``HOSTS``; None for
            ``~/.ssh/config``.
        ssh_host: Accepted for Eventor 5.1 programs, and not used (see ``HOSTS``).
        ssh_port: Accepted for Eventor 5.1 programs, and not used (see ``HOSTS``).
        DASK: The cluster of the ``dask`` executor: ``address`` (a running scheduler), or
            ``cluster_class`` (an import path; without either, a local cluster) started
            with ``cluster_kwargs``; and ``connect_timeout``.
        LOGGING: The logging settings: ``logging_level``, ``console``, ``renderer``
            (``text`` or ``json``), ``level_formats``, the run log file's ``logdir``,
            ``file_prefix``, ``file_suffix``, ``file_mode`` and ``encoding``, and its
            rotation, ``maxBytes`` and ``backupCount`` or ``when``, ``interval`` and ``utc``.
        source: Where the values were read from (a file's path, or ``<yaml text>``), for
            error messages; ``""`` for a mapping.
    """

    workdir: str = "."
    logdir: str | None = None
    task_construct: Any = "process"
    max_concurrent: int = -1
    stop_on_exception: bool = True
    sleep_between_loops: float = 1.0  # accepted for 5.1 programs; the engine never polls
    shared_db: bool = False
    envvar_prefix: str = "EVENTOR_"
    ssh_config: str | None = None
    ssh_host: str | None = None
    ssh_port: int | None = None
    day_to_keep_db: int | None = None
    pass_logger_to_task: bool = False
    sequence_arg_name: str | None = None
    max_tasks_per_child: int = 0  # process workers are reused; 1 forks a fresh one per task
    process_workers: int | None = None  # worker processes at once (default: see default_workers)
    thread_workers: int | None = None  # threads of the thread executor (default 32)
    strict_triggers: bool = False  # a ctx.trigger of an event its step does not emit fails it
    heartbeat_interval: float = 10.0  # seconds between an engine's heartbeats in the store
    heartbeat_grace: float = 60.0  # an attempt silent for longer is dead, on any host
    retries: int = 0  # default tries after the first, for steps that fail
    retry_delay: float = 0.0
    backoff: float = 1.0
    max_retry_delay: float | None = None
    timeout: float | None = None  # default seconds a step may run
    timeout_grace: float = 3.0
    POOLS: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({}))  # name -> limit
    LOGGING: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    DATABASES: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    HOSTS: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))  # ssh hosts
    DASK: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))  # the cluster
    source: str = ""  # the file the values came from, for error messages

    @property
    def file(self) -> str | None:
        """The file the values were read from, as an absolute path (None: a mapping or text)."""
        if not self.source or self.source.startswith("<"):
            return None
        return os.path.abspath(self.source)

    def step_defaults(self) -> StepOptions:
        """The step options this config sets for every step (``retries``, ``timeout``, ...)."""
        return StepOptions.from_config({k: getattr(self, k) for k in StepOptions.keys(inherited=True)})

    def engine_options(self, **overrides: Any) -> EngineOptions:
        """
        The engine settings this config asks for.

        ``overrides`` (``max_concurrent``, ``strict_triggers``, and any step option by field
        name, e.g. ``executor``) win over the config when they are not None.
        """
        overrides = {k: v for k, v in overrides.items() if v is not None}
        cap = overrides.pop("max_concurrent", self.max_concurrent)
        strict = overrides.pop("strict_triggers", self.strict_triggers)
        return EngineOptions(
            max_concurrent=cap,
            envvar_prefix=self.envvar_prefix,
            process_workers=self.workers("process_workers", cap),
            thread_workers=self.workers("thread_workers", cap),
            max_tasks_per_child=self.max_tasks_per_child,
            sequence_arg_name=self.sequence_arg_name,
            pass_logger_to_task=self.pass_logger_to_task,
            pools=self.POOLS,
            strict_triggers=strict,
            heartbeat_interval=float(self.heartbeat_interval),
            heartbeat_grace=float(self.heartbeat_grace),
            hosts=self.HOSTS,
            dask=self.DASK,
            ssh_config=self.ssh_config,
            steps=self.step_defaults().with_values(**overrides).over(EngineOptions().steps),
        )

    def workers(self, key: str, cap: int) -> int:
        """
        How many tasks the process (or thread) executor runs at once: the config's
        ``process_workers`` (or ``thread_workers``); else ``max_concurrent`` when it is set;
        else `default_workers` processes (32 threads). Ready tasks beyond it wait in the
        engine, still ``ready``.
        """
        value = getattr(self, key)
        if value is not None:
            return int(value)
        if cap > 0:
            return cap
        return default_workers() if key == "process_workers" else 32


_TYPES: dict[str, tuple[type, ...]] = {
    "workdir": (str,),
    "logdir": (str,),
    "task_construct": (str, type),
    "max_concurrent": (int,),
    "stop_on_exception": (bool,),
    "sleep_between_loops": (int, float),
    "shared_db": (bool,),
    "envvar_prefix": (str,),
    "ssh_config": (str,),
    "ssh_host": (str,),
    "ssh_port": (int,),
    "day_to_keep_db": (int,),
    "pass_logger_to_task": (bool,),
    "sequence_arg_name": (str,),
    "max_tasks_per_child": (int,),
    "process_workers": (int,),
    "thread_workers": (int,),
    "strict_triggers": (bool,),
    "heartbeat_interval": (int, float),
    "heartbeat_grace": (int, float),
    "retries": (int,),
    "retry_delay": (int, float),
    "backoff": (int, float),
    "max_retry_delay": (int, float),
    "timeout": (int, float),
    "timeout_grace": (int, float),
    "POOLS": (dict,),
    "LOGGING": (dict,),
    "DATABASES": (dict,),
    "HOSTS": (dict,),
    "DASK": (dict,),
}


def load_config(config: Any = None, *, tag: str | None = None, **overrides: Any) -> Config:
    """
    Read and validate configuration.

    Args:
        config: None, a mapping, a path to a YAML file, or YAML text. A mapping or file may hold
            the settings under the root tag (``{"EVENTOR": {...}}``) or directly.
        tag: the root tag; default ``$EVENTOR_CONFIG_TAG`` or ``EVENTOR``.
        overrides: settings that win over the loaded ones (keyword arguments of the API).

    Raises:
        EventorConfigError: naming the key path and the source.
    """
    if isinstance(config, Config):
        return dataclasses.replace(config, **{k: v for k, v in overrides.items() if v is not None})
    tag = tag or os.environ.get("EVENTOR_CONFIG_TAG") or DEFAULT_TAG
    data, source = _read(config)
    if isinstance(data, Mapping) and tag in data:
        data = data[tag]
        prefix = f"{tag}."
    elif isinstance(data, Mapping) and source and data:
        raise EventorConfigError(
            f"no {tag!r} section; put the settings under '{tag}:' or set $EVENTOR_CONFIG_TAG",
            source=source,
        )
    else:
        prefix = f"{tag}." if source else ""
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise EventorConfigError(f"expected a mapping of settings, got {data!r}",
                                 key=tag, source=source)
    values = _expand(dict(data), prefix.rstrip(".") or tag, source)
    values.update({k: v for k, v in overrides.items() if v is not None})
    return _validate(values, prefix, source)


def _read(config: Any) -> tuple[Any, str]:
    if config is None:
        return {}, ""
    if isinstance(config, Mapping):
        return config, ""
    if not isinstance(config, str | os.PathLike):
        raise EventorConfigError(f"config must be a dict, a YAML file path or YAML text, got "
                                 f"{type(config).__name__}")
    import yaml

    text = os.fspath(config)
    looks_like_yaml = isinstance(config, str) and ("\n" in text or ": " in text)
    if not looks_like_yaml:
        path = Path(text)
        if not path.is_file():
            raise EventorConfigError(f"config file {text} does not exist", source=text)
        try:
            return yaml.safe_load(path.read_text()), str(path)
        except yaml.YAMLError as exc:
            raise EventorConfigError(f"not valid YAML: {_yaml_where(exc)}", source=str(path)) from None
    try:
        return yaml.safe_load(text), "<yaml text>"
    except yaml.YAMLError as exc:
        raise EventorConfigError(f"not valid YAML: {_yaml_where(exc)}", source="<yaml text>") from None


def _yaml_where(exc: Exception) -> str:
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    return f"{problem} at line {mark.line + 1}, column {mark.column + 1}" if mark else problem


_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def _expand(value: Any, key: str, source: str) -> Any:
    if isinstance(value, str):
        def sub(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in os.environ:
                raise EventorConfigError(f"environment variable ${{{name}}} is not set",
                                         key=key, source=source)
            return os.environ[name]

        return _VAR.sub(sub, value)
    if isinstance(value, Mapping):
        return {k: _expand(v, f"{key}.{k}", source) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand(v, f"{key}[{i}]", source) for i, v in enumerate(value)]
    return value


SECRET_KEYS = ("password", "passphrase", "secret", "token")


def _check_type(value: Any, types: tuple[type, ...], key: str, source: str) -> None:
    if value is None:
        return
    ok = isinstance(value, types) and not (isinstance(value, bool) and bool not in types)
    if not ok:
        names = " or ".join(t.__name__ for t in types)
        shown = "***" if key.rsplit(".", 1)[-1].lower().endswith(SECRET_KEYS) else repr(value)
        raise EventorConfigError(f"expected {names}, got {shown}", key=key, source=source)


def _validate(values: dict[str, Any], prefix: str, source: str) -> Config:
    for key, value in values.items():
        if key not in _TYPES:
            raise EventorConfigError(_unknown_key(key, _TYPES), key=f"{prefix}{key}",
                                     source=source)
        _check_type(value, _TYPES[key], f"{prefix}{key}", source)
    logging_ = values.get("LOGGING") or {}
    _check_section(logging_, LOGGING_KEYS, f"{prefix}LOGGING", source)
    level = logging_.get("logging_level")
    if isinstance(level, str) and level.upper() not in LEVELS:
        raise EventorConfigError(f"unknown level {level!r}; use one of {', '.join(LEVELS)}",
                                 key=f"{prefix}LOGGING.logging_level", source=source)
    if logging_.get("renderer") not in (None, *RENDERERS):
        raise EventorConfigError(f"unknown renderer {logging_['renderer']!r}; use "
                                 f"{' or '.join(RENDERERS)}", key=f"{prefix}LOGGING.renderer",
                                 source=source)
    for tag, entry in (values.get("DATABASES") or {}).items():
        key = f"{prefix}DATABASES.{tag}"
        if not isinstance(entry, Mapping):
            raise EventorConfigError(f"expected a mapping, got {entry!r}", key=key, source=source)
        _check_section(entry, DATABASE_KEYS, key, source)
    for name, entry in (values.get("HOSTS") or {}).items():
        _check_host(entry, f"{prefix}HOSTS.{name}", source)
    dask = values.get("DASK") or {}
    _check_section(dask, DASK_KEYS, f"{prefix}DASK", source)
    if dask.get("address") and dask.get("cluster_class"):
        raise EventorConfigError("give address (a running scheduler) or cluster_class (a cluster "
                                 "to start), not both", key=f"{prefix}DASK", source=source)
    if dask.get("cluster_class") and "." not in dask["cluster_class"]:
        raise EventorConfigError(f"expected an import path, e.g. dask_jobqueue.SLURMCluster, got "
                                 f"{dask['cluster_class']!r}", key=f"{prefix}DASK.cluster_class",
                                 source=source)
    if dask.get("connect_timeout") is not None and not dask["connect_timeout"] > 0:
        raise EventorConfigError(f"expected seconds > 0, got {dask['connect_timeout']!r}",
                                 key=f"{prefix}DASK.connect_timeout", source=source)
    for name, limit in (values.get("POOLS") or {}).items():
        if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
            raise EventorConfigError(f"expected a positive int (the pool's limit), got {limit!r}",
                                     key=f"{prefix}POOLS.{name}", source=source)
    if "POOLS" in values:
        values["POOLS"] = MappingProxyType(dict(values["POOLS"]))
    if values.get("timeout") == 0:
        values["timeout"] = None  # 0 has always meant no timeout in a config file
    steps = StepOptions.from_config(
        {k: values[k] for k in StepOptions.keys(inherited=True) if values.get(k) is not None})
    for problem in steps.problems():
        raise EventorConfigError(f"{problem.message} {problem.fix}", key=f"{prefix}{problem.key}",
                                 source=source)
    interval = values.get("heartbeat_interval", 10.0)
    grace = values.get("heartbeat_grace", 60.0)
    if not interval > 0 or not grace > 2 * interval:
        raise EventorConfigError(
            f"heartbeat_grace ({grace}) must be more than twice heartbeat_interval ({interval}), "
            "which must be > 0, or a live engine could be taken for dead",
            key=f"{prefix}heartbeat_grace", source=source)
    limit = values.get("max_concurrent", -1)
    if limit == 0 or limit < -1:
        raise EventorConfigError(f"expected a positive int or -1 (no limit), got {limit!r}",
                                 key=f"{prefix}max_concurrent", source=source)
    for key in ("process_workers", "thread_workers"):
        if values.get(key) is not None and values[key] < 1:
            raise EventorConfigError(f"expected a positive int (tasks at once), got {values[key]!r}",
                                     key=f"{prefix}{key}", source=source)
    if "LOGGING" in values:
        values["LOGGING"] = MappingProxyType(dict(values["LOGGING"]))
    for section in ("DATABASES", "HOSTS", "DASK"):
        if section in values:
            values[section] = MappingProxyType(dict(values[section]))
    return Config(**values, source=source)


def _check_host(entry: Any, key: str, source: str) -> None:
    if entry is None:
        return  # "h1:" alone: every setting from ~/.ssh/config or the defaults
    if not isinstance(entry, Mapping):
        raise EventorConfigError(f"expected a mapping of host settings, got {entry!r}",
                                 key=key, source=source)
    _check_section(entry, HOST_KEYS, key, source)
    for name in ("connect_timeout", "lost_after"):
        if entry.get(name) is not None and not entry[name] > 0:
            raise EventorConfigError(f"expected seconds > 0, got {entry[name]!r}",
                                     key=f"{key}.{name}", source=source)
    port = entry.get("port")
    if port is not None and not 0 < port < 65536:
        raise EventorConfigError(f"expected a TCP port (1-65535), got {port!r}",
                                 key=f"{key}.port", source=source)
    for name, value in (entry.get("env") or {}).items():
        if not isinstance(value, str | int | float) or isinstance(value, bool):
            raise EventorConfigError(f"expected a string, got {value!r}",
                                     key=f"{key}.env.{name}", source=source)


def _unknown_key(key: Any, known: Iterable[str]) -> str:
    """'unknown key; did you mean ...?' for a near one, else the keys there are."""
    close = closest(key, known)
    if close:
        return f"unknown key; did you mean {close!r}?"
    return f"unknown key; known keys: {', '.join(known)}"


def _check_section(section: Mapping[str, Any], known: Mapping[str, tuple[type, ...]],
                   key: str, source: str) -> None:
    for name, value in section.items():
        if name not in known:
            raise EventorConfigError(_unknown_key(name, known),
                                     key=f"{key}.{name}", source=source)
        _check_type(value, known[name], f"{key}.{name}", source)


def default_program() -> str:
    """
    The calling program's name: ``simple_classic`` for ``python examples/simple_classic.py``.

    ``$EVENTOR_PROGRAM`` overrides it: the ``eventor`` command sets it to the flow file's
    name, so ``eventor run etl.py:Etl`` uses the same default store as ``python etl.py``.
    """
    if os.environ.get("EVENTOR_PROGRAM"):
        return os.environ["EVENTOR_PROGRAM"]
    argv0 = sys.argv[0] if sys.argv and sys.argv[0] not in ("", "-c", "-m") else ""
    return os.path.splitext(os.path.basename(argv0))[0] or "eventor"
