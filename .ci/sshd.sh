#!/usr/bin/env bash
# Real sshd servers for the SSH executor's tests. Source it:
#
#     source .ci/sshd.sh && start_sshd && start_ssh_hosts && trap stop_sshd EXIT
#
# start_sshd: one sshd on 127.0.0.1 (CI_SSH_PORT, default 2222) with generated host and client
# keys; exports CI_SSH_ADDRESS, CI_SSH_PORT, CI_SSH_USER, CI_SSH_KEY and CI_SSH_KNOWN_HOSTS
# (which holds the right host key).
# start_ssh_hosts: two more hosts, each an sshd in a network namespace of its own on a bridge
# (evr-h1 at 10.200.0.11, evr-h2 at 10.200.0.12, port 22), for the multi-host tests, which
# take a host's link down and up again; exports CI_SSH_NETNS="evr-h1=10.200.0.11 evr-h2=...".
# stop_sshd: stops only what these functions started. Installs openssh-server when absent.

SSH_DIR="${CI_SSH_DIR:-/tmp/eventor-ci-ssh}"
_SSHD_PIDS=()
_SSH_NETNS=()

_sshd_install() {
    if [ ! -x /usr/sbin/sshd ]; then
        export DEBIAN_FRONTEND=noninteractive
        apt-get install -y -qq --no-install-recommends openssh-server >/dev/null 2>&1 \
            || (apt-get update -qq && apt-get install -y -qq --no-install-recommends openssh-server >/dev/null)
    fi
    install -d -m 0755 /run/sshd  # sshd refuses to start without its privilege separation dir
}

# _sshd_stop_leftover NAME: an sshd left by an earlier, killed run of this script (its pid file
# names a process whose command line is our own config) is stopped before starting anew.
_sshd_stop_leftover() {
    local pidfile="$SSH_DIR/$1.pid" pid
    if [ -f "$pidfile" ]; then
        pid=$(cat "$pidfile")
        if tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q "$SSH_DIR/$1.conf"; then
            kill "$pid" 2>/dev/null || true
        fi
    fi
}

# _sshd_run NAME ADDRESS PORT [NETNS]: start sshd and wait until its log says it listens.
_sshd_run() {
    local name=$1 address=$2 port=$3 netns=${4:-} pid i
    cat >"$SSH_DIR/$name.conf" <<EOF
Port $port
ListenAddress $address
HostKey $SSH_DIR/host_key
PidFile $SSH_DIR/$name.pid
AuthorizedKeysFile $SSH_DIR/authorized_keys
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
UsePAM no
StrictModes no
MaxStartups 100:30:200
MaxSessions 100
EOF
    : >"$SSH_DIR/$name.log"
    if [ -n "$netns" ]; then
        ip netns exec "$netns" /usr/sbin/sshd -D -f "$SSH_DIR/$name.conf" -E "$SSH_DIR/$name.log" &
    else
        /usr/sbin/sshd -D -f "$SSH_DIR/$name.conf" -E "$SSH_DIR/$name.log" &
    fi
    pid=$!
    _SSHD_PIDS+=("$pid")
    for i in $(seq 100); do
        # sshd's own line, not a probe of the port: a stranger may listen there
        if grep -q "Server listening on $address port $port" "$SSH_DIR/$name.log"; then
            kill -0 "$pid" && return 0
        fi
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    echo "sshd $name did not start on $address:$port:" >&2
    cat "$SSH_DIR/$name.log" >&2
    return 1
}

start_sshd() {
    local port="${CI_SSH_PORT:-2222}"
    _sshd_install
    _sshd_stop_leftover loopback
    rm -rf "$SSH_DIR"
    install -d -m 0755 "$SSH_DIR"
    ssh-keygen -q -t ed25519 -N '' -C eventor-ci-host -f "$SSH_DIR/host_key"
    ssh-keygen -q -t ed25519 -N '' -C eventor-ci-client -f "$SSH_DIR/client_key"
    install -m 0644 "$SSH_DIR/client_key.pub" "$SSH_DIR/authorized_keys"
    _sshd_run loopback 127.0.0.1 "$port"
    # a non-22 port is written [address]:port in known_hosts
    echo "[127.0.0.1]:$port $(cut -d' ' -f1,2 "$SSH_DIR/host_key.pub")" >"$SSH_DIR/known_hosts"
    export CI_SSH_ADDRESS=127.0.0.1 CI_SSH_PORT="$port" CI_SSH_USER=root
    export CI_SSH_KEY="$SSH_DIR/client_key" CI_SSH_KNOWN_HOSTS="$SSH_DIR/known_hosts"
}

# start_ssh_hosts: call after start_sshd (it shares its keys and known_hosts file).
start_ssh_hosts() {
    local n ns address hosts=""
    ip link del evr-br0 2>/dev/null || true
    for n in 1 2; do  # what an earlier, killed run of this script left
        _sshd_stop_leftover "h$n"
        ip netns pids "evr-h$n" 2>/dev/null | xargs -r kill -9 2>/dev/null || true
        ip netns del "evr-h$n" 2>/dev/null || true
        ip link del "evr-h$n-p" 2>/dev/null || true  # the pair goes with it
    done
    ip link add evr-br0 type bridge
    ip addr add 10.200.0.1/24 dev evr-br0
    ip link set evr-br0 up
    for n in 1 2; do
        ns="evr-h$n" address="10.200.0.1$n"
        ip netns add "$ns"
        _SSH_NETNS+=("$ns")
        ip link add "$ns-p" type veth peer name eth0 netns "$ns"
        ip link set "$ns-p" master evr-br0
        ip link set "$ns-p" up
        ip -n "$ns" addr add "$address/24" dev eth0
        ip -n "$ns" link set eth0 up
        ip -n "$ns" link set lo up
        _sshd_run "h$n" "$address" 22 "$ns"
        echo "$address $(cut -d' ' -f1,2 "$SSH_DIR/host_key.pub")" >>"$SSH_DIR/known_hosts"
        hosts="$hosts $ns=$address"
    done
    export CI_SSH_NETNS="${hosts# }"
}

stop_sshd() {
    local pid ns
    for pid in "${_SSHD_PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for ns in "${_SSH_NETNS[@]}"; do
        ip netns pids "$ns" 2>/dev/null | xargs -r kill -9 2>/dev/null || true
        ip netns del "$ns" 2>/dev/null || true
    done
    if [ ${#_SSH_NETNS[@]} -gt 0 ]; then
        ip link del evr-br0 2>/dev/null || true
    fi
    _SSHD_PIDS=() _SSH_NETNS=()
}
