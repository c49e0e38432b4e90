"""Configuration that picks the store, purging old runs, and secrets kept out of messages."""

from __future__ import annotations

import logging
import time

import pytest

import eventor as evr

QUIET = {"LOGGING": {"console": False}, "task_construct": "thread"}


def one_run(store, **kwargs):
    with evr.Eventor(name="m", store=store, config=QUIET, **kwargs) as ev:
        ev.add_event("go")
        ev.add_assoc("go", ev.add_step("s", lambda: 1))
        ev.trigger_event("go")
        assert ev.run()
        return ev.run_id


def test_purge_deletes_old_runs_only_when_asked(tmp_path):
    store = str(tmp_path / "p.db")
    old = one_run(store)
    # nothing is purged by running, whatever day_to_keep_db says
    one_run(store, config_tag=None)
    with evr.Eventor(store=store, config={**QUIET, "day_to_keep_db": 0}) as ev:
        assert len(ev.store.runs()) == 2
    in_a_week = time.time() + 7 * 86400
    assert evr.purge(store, days=30, now=in_a_week) == []
    assert len(evr.purge(store, config={"day_to_keep_db": 5}, now=in_a_week)) == 2
    with evr.Eventor(store=store, config=QUIET) as ev:
        assert ev.store.runs() == [] and ev.store.tasks(old) == []
    with pytest.raises(evr.EventorUsageError, match="purge needs an age"):
        evr.purge(store)


def test_purge_keeps_a_run_whose_attempt_never_ended(tmp_path):
    store = evr.Eventor(store=str(tmp_path / "p.db"), config=QUIET).store
    store.begin_attempt("crashed", "p", "restart", now=1.0, host="elsewhere", pid=1)
    assert store.purge(time.time()) == []
    store.close()


def test_a_missing_database_tag_is_a_config_error_naming_it(tmp_path, monkeypatch):
    databases = {"DATABASES": {"local": {"dialect": "sqlite", "database": str(tmp_path / "l.db")}}}
    with pytest.raises(evr.EventorConfigError, match=r"DATABASES.pgdb2: store= 'pgdb2', which is "
                       r"not a database tag of the config \(tags: local\)"):
        evr.Eventor(store="pgdb2", config={**QUIET, **databases})
    monkeypatch.setenv("EVENTOR_DB_CONFIG_TAG", "local")
    with evr.Eventor(config={**QUIET, **databases}) as ev:
        assert ev.store.address.endswith("l.db")
    monkeypatch.setenv("EVENTOR_DB_CONFIG_TAG", "nope")
    with pytest.raises(evr.EventorConfigError, match=r"DATABASES.nope: \$EVENTOR_DB_CONFIG_TAG names"):
        evr.Eventor(config={**QUIET, **databases})


def test_passwords_stay_out_of_errors_and_logs(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("DB_PASSWORD", "s3cr3t-pw")
    config = {**QUIET, "DATABASES": {"pg": {
        "dialect": "postgresql", "drivername": "psycopg", "username": "u",
        "password": "${DB_PASSWORD}", "host": "127.0.0.1", "port": 1, "database": "d"}}}
    with caplog.at_level(logging.DEBUG), pytest.raises(evr.StoreError) as info:
        evr.Eventor(store="pg", config=config)
    assert "s3cr3t-pw" not in str(info.value) and "***" in str(info.value)
    with pytest.raises(evr.StoreError) as info:
        evr.Eventor(store="postgresql+psycopg://u:s3cr3t-pw@127.0.0.1:1/d", config=QUIET)
    assert "s3cr3t-pw" not in str(info.value)
    with pytest.raises(evr.EventorConfigError) as info:
        evr.load_config({"DATABASES": {"pg": {"password": 12345678}}})
    assert "12345678" not in str(info.value) and "password: expected str, got ***" in str(info.value)
    assert "s3cr3t-pw" not in caplog.text
