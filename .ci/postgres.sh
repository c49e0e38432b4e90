#!/usr/bin/env bash
# A throwaway PostgreSQL cluster on a loopback port, for the tests that run against a real
# server. Source it: start_postgres exports CI_POSTGRES_URL (a SQLAlchemy URL), and
# stop_postgres stops only the cluster it started. Installs PostgreSQL when absent.
# CI_PG_PORT and CI_PG_DIR (default 55432, /tmp/eventor-ci-pg) choose another cluster.
#
#     source .ci/postgres.sh && start_postgres && trap stop_postgres EXIT


_pg_bin() {
    local bin
    bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
    if [ -z "$bin" ]; then
        export DEBIAN_FRONTEND=noninteractive
        apt-get install -y -qq postgresql >/dev/null 2>&1 \
            || (apt-get update -qq && apt-get install -y -qq postgresql >/dev/null)
        bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
    fi
    echo "$bin"
}

start_postgres() {
    local bin
    PG_PORT="${CI_PG_PORT:-55432}"  # read when called: CI_PG_PORT=55499 start_postgres works
    PG_DIR="${CI_PG_DIR:-/tmp/eventor-ci-pg}"
    bin=$(_pg_bin)
    # A cluster left by an earlier, killed run of this script: stop it before starting anew.
    if [ -f "$PG_DIR/data/postmaster.pid" ]; then
        runuser -u postgres -- "$bin/pg_ctl" -D "$PG_DIR/data" -m immediate stop >/dev/null 2>&1 || true
    fi
    rm -rf "$PG_DIR"
    install -d -m 0700 -o postgres -g postgres "$PG_DIR"
    runuser -u postgres -- "$bin/initdb" -D "$PG_DIR/data" -U postgres --auth-local=trust \
        --auth-host=scram-sha-256 -E UTF8 --locale=C.UTF-8 >/dev/null
    runuser -u postgres -- "$bin/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/server.log" -w -t 60 \
        -o "-c listen_addresses=127.0.0.1 -c port=$PG_PORT -c unix_socket_directories=$PG_DIR -c fsync=off -c max_connections=200" \
        start >/dev/null
    runuser -u postgres -- "$bin/psql" -q -h "$PG_DIR" -p "$PG_PORT" -U postgres \
        -c "CREATE ROLE eventor LOGIN CREATEDB PASSWORD 'eventor'" \
        -c "CREATE DATABASE eventor OWNER eventor" >/dev/null
    export CI_POSTGRES_URL="postgresql+psycopg://eventor:eventor@127.0.0.1:$PG_PORT/eventor"
    _PG_STARTED_BIN="$bin"
}

stop_postgres() {
    if [ -n "${_PG_STARTED_BIN:-}" ]; then
        runuser -u postgres -- "$_PG_STARTED_BIN/pg_ctl" -D "$PG_DIR/data" -m fast stop >/dev/null 2>&1 || true
        rm -rf "$PG_DIR"
    fi
}
