#!/usr/bin/env bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# Copyright (c) 2026 The lanyard authors
#
# `make bench`: the same wrk load from an enrolled cgroup against the upstream directly,
# through lanyardd (a fresh JWT per request), through nginx and through HAProxy (a static
# header of the same size); then connect() cost and JWT mint rate.  Ratios, not absolutes.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
BIN=$ROOT/build/bin
PY=/usr/bin/python3
DUR=${BENCH_DURATION:-10}
CONN=${BENCH_CONN:-32}
THREADS=${BENCH_THREADS:-1}
ROUNDS=${BENCH_ROUNDS:-2}
WARM=${BENCH_WARMUP:-2}
MICRO=${BENCH_MICRO:-1}
LISTEN_PORT=${BENCH_LISTEN_PORT:-15001}
ADMIN_PORT=${BENCH_ADMIN_PORT:-15002}
UP_PORT=${BENCH_UPSTREAM_PORT:-18080}
NGINX_PORT=$((UP_PORT + 1))
HAPROXY_PORT=$((UP_PORT + 2))
ISSUER=http://127.0.0.1:$ADMIN_PORT
# direct and lanyard reach the same upstream from the same cgroup: only 127.0.0.2 is routed
ROUTE=127.0.0.2:$UP_PORT
CG_TOP=/lanyard-bench-$$
CG=$CG_TOP/client   # enrolled; wrk runs here for every target
CG_PLAIN=$CG_TOP/plain # not enrolled; for the connect() micro-benchmark
PIN_DIR=/sys/fs/bpf/lanyard-bench-$$
TARGETS=(direct lanyard nginx haproxy)

T='' CG_MNT='' UP_PID='' LD_PID='' NG_PID='' HA_PID='' PROBE_PID='' STATS_OLD=''

# colours only on a terminal
B='' R='' N=''
[ ! -t 1 ] || { B=$'\033[1m' R=$'\033[31m' N=$'\033[0m'; }
say() { printf '%s\n' "$*"; }
step() { printf '\n%s== %s%s\n' "$B" "$*" "$N"; }
die() {
	printf '\n%sbench FAILED: %s%s\n' "$R" "$*" "$N" >&2
	if [ -n "$T" ] && [ -s "$T/lanyardd.log" ]; then
		printf -- '--- last lines of lanyardd.log:\n' >&2
		tail -n 10 "$T/lanyardd.log" >&2
	fi
	exit 1
}

# stop PID [SIGNAL]: signal one of our children and reap it (5 s, then SIGKILL)
stop() {
	local pid=$1
	[ -n "$pid" ] || return 0
	kill -"${2:-TERM}" "$pid" 2>/dev/null || return 0
	for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
	kill -KILL "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
}

cleanup() {
	local rc=$? cg pid
	trap - EXIT INT TERM
	set +e
	stop "$PROBE_PID"
	stop "$NG_PID" QUIT # nginx: graceful stop of master and worker
	stop "$HA_PID"
	stop "$UP_PID"
	stop "$LD_PID" # --ephemeral: detaches and unpins on SIGTERM
	[ -z "$STATS_OLD" ] || sysctl -qw kernel.bpf_stats_enabled="$STATS_OLD"
	if [ -d "$PIN_DIR" ]; then
		"$BIN/lanyardd" --detach --pin-dir "$PIN_DIR" >/dev/null 2>&1
		rm -rf "$PIN_DIR"
	fi
	if [ -n "$CG_MNT" ] && [ -d "$CG_MNT$CG_TOP" ]; then
		# anything still in our cgroups was started by this script (wrk, a helper)
		for cg in "$CG" "$CG_PLAIN"; do
			[ -f "$CG_MNT$cg/cgroup.procs" ] || continue
			while read -r pid; do kill -KILL "$pid"; done <"$CG_MNT$cg/cgroup.procs"
		done
		sleep 0.2
		rmdir "$CG_MNT$CG" "$CG_MNT$CG_PLAIN" "$CG_MNT$CG_TOP" 2>/dev/null
	fi
	[ -n "$T" ] && rm -rf "$T"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

wait_for() {
	local n=$(($1 * 10))
	shift
	while ! "$@" >/dev/null 2>&1; do
		n=$((n - 1))
		[ "$n" -gt 0 ] || return 1
		sleep 0.1
	done
}
port_busy() { [ -n "$(ss -Hltn "sport = :$1" 2>/dev/null)" ]; }
port_listening() { port_busy "$1"; }
port_free() { ! port_busy "$1"; }
# jpy EXPR: evaluate a python expression over the JSON "d" read from stdin
jpy() { "$PY" -c "import json,sys; d=json.load(sys.stdin); print($1)"; }
# counters: "injected requests" from one `lanyard --json status` (one snapshot, no race)
counters() {
	"$BIN/lanyard" --socket "$T/control.sock" --json status |
		jpy 'd["metrics"]["injected"], d["metrics"]["requests"]'
}
enrolled() {
	[ "$("$BIN/lanyard" --socket "$T/control.sock" --json workloads |
		jpy 'all(w["enrolled"] for w in d["workloads"])')" = True ]
}
# fill TEMPLATE OUT: substitute the @VARS@ of an nginx/haproxy template
fill() {
	sed -e "s|@DIR@|$T|g" -e "s|@UP_PORT@|$UP_PORT|g" -e "s|@PORT@|$3|g" \
		-e "s|@TOKEN@|$TOKEN|g" "$1" >"$2"
}
url_of() {
	case $1 in
	direct) echo "http://127.0.0.1:$UP_PORT/bench" ;;
	lanyard) echo "http://$ROUTE/bench" ;;
	nginx) echo "http://127.0.0.1:$NGINX_PORT/bench" ;;
	haproxy) echo "http://127.0.0.1:$HAPROXY_PORT/bench" ;;
	esac
}

# run_wrk TARGET SECONDS OUT: one wrk run from the enrolled cgroup; lanyardd's counters
# are read around the lanyard runs to check that every request got a credential
run_wrk() {
	local bi br ai ar
	[ "$1" != lanyard ] || read -r bi br <<<"$(counters)"
	"$BIN/ly-cgexec" "$CG" -- wrk -t"$THREADS" -c"$CONN" -d"$2"s --latency \
		-s tools/bench/report.lua "$(url_of "$1")" >"$3" 2>&1 ||
		die "wrk against $1 failed: $(tail -n 3 "$3")"
	grep -q '^WRK_RESULT' "$3" || die "wrk against $1 printed no result: $(tail -n 3 "$3")"
	if [ "$1" = lanyard ]; then
		read -r ai ar <<<"$(counters)"
		echo "$((ai - bi)) $((ar - br))" \
			"$(sed -n 's/^WRK_RESULT requests=\([0-9]*\).*/\1/p' "$3")" >>"$T/lanyard-counts"
	fi
}

# --- preconditions -------------------------------------------------------------------------

[ "$(id -u)" -eq 0 ] || die "run as root (sudo make bench): lanyardd loads bpf programs"
./tools/deps.sh || die "tools/deps.sh could not install the packages the bench needs"
for b in lanyardd lanyard ly-cgexec ly-upstream; do
	[ -x "$BIN/$b" ] || die "$BIN/$b is missing: run make first"
done
for c in wrk /usr/sbin/nginx /usr/sbin/haproxy "$PY"; do
	command -v "$c" >/dev/null || die "$c is missing: run ./tools/deps.sh"
done
for p in "$LISTEN_PORT" "$ADMIN_PORT" "$UP_PORT" "$NGINX_PORT" "$HAPROXY_PORT"; do
	port_busy "$p" && die "port $p is in use (ss -ltnp 'sport = :$p'); free it or set" \
		"BENCH_LISTEN_PORT / BENCH_ADMIN_PORT / BENCH_UPSTREAM_PORT (+1 nginx, +2 haproxy)"
done
CG_MNT=$(awk '$3 == "cgroup2" { print $2; exit }' /proc/mounts)
[ -n "$CG_MNT" ] || die "no cgroup2 mount"

umask 077
T=$(mktemp -d /tmp/lanyard-bench.XXXXXX)
mkdir -p "$T/nginx-tmp" "$T/res" "$T/state-mint"
: >"$T/lanyard-counts"
# the micro-benchmark helpers are built here, not by the Makefile: only the bench uses them
HELPER_CFLAGS=(-O2 -std=gnu11 -D_GNU_SOURCE -Wall -Wextra -Werror -Iinclude -Iuserspace -Ibuild)
if [ "$MICRO" = 1 ]; then
	cc "${HELPER_CFLAGS[@]}" tools/bench/connect_cost.c -lpthread -o "$T/ly-bench-connect" ||
		die "cannot build tools/bench/connect_cost.c"
	cc "${HELPER_CFLAGS[@]}" tools/bench/jwt_mint.c build/liblanyard.a -lbpf -lelf -lz -lyaml \
		-ljansson -lssl -lcrypto -lpthread -o "$T/ly-bench-jwt" ||
		die "cannot build tools/bench/jwt_mint.c"
fi

step "setup"
say "  $(nproc) CPUs, kernel $(uname -r); wrk -t$THREADS -c$CONN -d${DUR}s, $ROUNDS round(s)" \
	"+ ${WARM}s warm-up per target"
say "  $(/usr/sbin/nginx -v 2>&1 | sed 's/^nginx version: //')," \
	"$(/usr/sbin/haproxy -v | head -n 1 | cut -d' ' -f1-3)"

# connect_runs NAME CGROUP N: N runs of the connect() micro-benchmark from CGROUP, pinned to
# one CPU (steadier on a small machine); with this bench's programs attached, the kernel's
# bpf run-time statistics for them are recorded around each run too
CONNECTS=20000
CPU=$(($(nproc) - 1))
connect_runs() {
	local before
	for _ in $(seq "$3"); do
		[ -z "$LD_PID" ] || before=$(bpf_stats)
		"$BIN/ly-cgexec" "$2" -- taskset -c "$CPU" "$T/ly-bench-connect" "$CONNECTS" \
			>>"$T/connect.$1" || die "ly-bench-connect failed"
		[ -z "$LD_PID" ] || echo "$before $(bpf_stats)" >>"$T/bpfstats.$1"
	done
}
# bpf_stats: "run_cnt run_time_ns" of this bench's ly_connect4, then of its ly_sockops
bpf_stats() {
	local l id out=''
	for l in connect4 sockops; do
		id=$(bpftool link show pinned "$PIN_DIR/link_$l" -j | jpy 'd["prog_id"]')
		out+="$(bpftool prog show id "$id" -j | jpy 'd.get("run_cnt", 0), d.get("run_time_ns", 0)') "
	done
	echo "$out"
}
# lanyard programs attached at the cgroup2 root (another lanyardd may be running)
ly_progs() { bpftool cgroup show "$CG_MNT" 2>/dev/null | grep -cw ly_connect4 || true; }
if [ "$MICRO" = 1 ]; then
	# baseline, part 1: before this bench's lanyardd attaches its programs
	mkdir -p "$CG_MNT$CG_PLAIN"
	connect_runs detached "$CG_PLAIN" 3
	PROGS_BEFORE=$(ly_progs)
fi

mkdir -p "$CG_MNT$CG" # before lanyardd starts, so it is enrolled at once
cat >"$T/policy.yaml" <<EOF
trust_domain: bench.lanyard.internal
listen: { port: $LISTEN_PORT }
admin: { listen: 127.0.0.1:$ADMIN_PORT }
state_dir: $T/state
audit: { path: $T/audit.jsonl }
control_socket: $T/control.sock
workloads:
  - name: client
    match: { cgroup: $CG }
    routes:
      - to: $ROUTE
        credential: { type: jwt, audience: http://$ROUTE, ttl: 5m }
EOF
"$BIN/lanyardd" --config "$T/policy.yaml" --pin-dir "$PIN_DIR" --ephemeral 2>"$T/lanyardd.log" &
LD_PID=$!
wait_for 15 curl -sf "$ISSUER/healthz" || die "lanyardd did not come up"
wait_for 10 enrolled || die "the bench cgroup $CG is not enrolled"
say "  lanyardd pid $LD_PID; cgroup $CG enrolled; route $ROUTE -> JWT"

# One request through lanyard to an upstream that verifies the JWT: proves the credential is
# valid and gives its length, so nginx and HAProxy inject a static one of the same size.
"$PY" tests/servers/jwt_upstream.py --listen "$ROUTE" --jwks "$ISSUER/.well-known/jwks.json" \
	--audience "http://$ROUTE" --issuer "$ISSUER" >"$T/probe.out" 2>&1 &
PROBE_PID=$!
wait_for 10 grep -q listening "$T/probe.out" || die "jwt_upstream.py did not start"
"$BIN/ly-cgexec" "$CG" -- curl -s "http://$ROUTE/probe" >"$T/probe.json" ||
	die "the probe request through lanyard failed"
stop "$PROBE_PID"
PROBE_PID=
[ "$(jpy 'd["verified"]' <"$T/probe.json")" = True ] ||
	die "the upstream did not verify lanyard's JWT: $(cat "$T/probe.json")"
TOKEN_LEN=$(jpy 'd["token_len"]' <"$T/probe.json")
say "  lanyard's JWT verified by PyJWT (ES256, aud, iss, exp); $TOKEN_LEN bytes"
# a dummy token of the same length (not a credential: nothing verifies it)
TOKEN=$(head -c $((TOKEN_LEN * 2)) /dev/urandom | base64 -w0 | tr '+/' '-_' | tr -d '=' |
	cut -c1-"$TOKEN_LEN")
wait_for 5 port_free "$UP_PORT" || true

"$BIN/ly-upstream" --listen "127.0.0.1:$UP_PORT" --listen "$ROUTE" >"$T/upstream.out" 2>&1 &
UP_PID=$!
fill tools/bench/nginx.conf.in "$T/nginx.conf" "$NGINX_PORT"
/usr/sbin/nginx -p "$T/" -e "$T/nginx-error.log" -c "$T/nginx.conf" -g 'daemon off;' \
	>"$T/nginx.out" 2>&1 &
NG_PID=$!
fill tools/bench/haproxy.cfg.in "$T/haproxy.cfg" "$HAPROXY_PORT"
/usr/sbin/haproxy -f "$T/haproxy.cfg" -db >"$T/haproxy.out" 2>&1 &
HA_PID=$!
wait_for 10 grep -q listening "$T/upstream.out" || die "ly-upstream did not start"
wait_for 10 port_listening "$NGINX_PORT" || die "nginx did not start: $(cat "$T/nginx-error.log")"
wait_for 10 port_listening "$HAPROXY_PORT" || die "haproxy did not start: $(cat "$T/haproxy.out")"
say "  upstream ly-upstream 127.0.0.1:$UP_PORT + $ROUTE; nginx :$NGINX_PORT (1 worker);" \
	"haproxy :$HAPROXY_PORT (nbthread 1)"

# --- the load ------------------------------------------------------------------------------

step "wrk from the enrolled cgroup"
for t in "${TARGETS[@]}"; do
	printf '  warm-up %s\n' "$t"
	run_wrk "$t" "$WARM" "$T/res/$t.warm"
done
order=("${TARGETS[@]}")
for r in $(seq "$ROUNDS"); do
	for t in "${order[@]}"; do
		printf '  round %d/%d  %-8s %s\n' "$r" "$ROUNDS" "$t" "$(url_of "$t")"
		run_wrk "$t" "$DUR" "$T/res/$t.$r"
	done
	# rotate the order so that no target always runs first (or last) in a round
	order=("${order[@]:1}" "${order[0]}")
done

step "results (median of $ROUNDS round(s); ratio: to direct's req/s in the same round)"
"$PY" - "$T/res" "$ROUNDS" "${TARGETS[@]}" <<'EOF'
import statistics, sys
d, rounds, targets = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
runs = {}
for t in targets:
    runs[t] = []
    for r in range(1, rounds + 1):
        line = next(l for l in open(f"{d}/{t}.{r}") if l.startswith("WRK_RESULT"))
        kv = {k: int(v) for k, v in (x.split("=") for x in line.split()[1:])}
        kv["rps"] = kv["requests"] / (kv["duration_us"] / 1e6)
        runs[t].append(kv)
# a round's targets run back to back, so dividing by that round's direct run cancels
# most of the slow drift of a shared machine's load
ratios = {t: [x["rps"] / b["rps"] for x, b in zip(runs[t], runs["direct"])] for t in targets}
print("  %-8s %9s %8s %8s %6s %6s   %s" % ("target", "req/s", "p50 ms", "p99 ms", "ratio",
                                          "errors", "ratio per round"))
for t in targets:
    x = runs[t]
    print("  %-8s %9.0f %8.3f %8.3f %6.2f %6d   %s" % (
        t, statistics.median(r["rps"] for r in x),
        statistics.median(r["p50_us"] for r in x) / 1000,
        statistics.median(r["p99_us"] for r in x) / 1000,
        statistics.median(ratios[t]),
        sum(v for r in x for k, v in r.items() if k.startswith("err_")),
        " ".join("%.2f" % v for v in ratios[t])))
ly, ha = statistics.median(ratios["lanyard"]), statistics.median(ratios["haproxy"])
print("\n  lanyard ratio %.2f %s HAProxy ratio %.2f: lanyard %s" % (
    ly, ">=" if ly >= ha else "<", ha,
    "keeps up with HAProxy" if ly >= ha else "is slower than HAProxy"))
if any(v for t in targets for r in runs[t] for k, v in r.items() if k.startswith("err_")):
    print("  note: a target had socket errors or non-2xx answers (errors column)")
EOF

# every request wrk completed through lanyard carried a credential
read -r INJ REQ WRK <<<"$(awk '{ i += $1; r += $2; w += $3 } END { print i, r, w }' \
	"$T/lanyard-counts")"
NRUNS=$(wc -l <"$T/lanyard-counts")
say ""
say "  credentials: lanyardd injected $INJ JWTs into $REQ requests; wrk completed $WRK"
say "  (wrk does not count the requests in flight when it stops: up to $CONN per run, $NRUNS runs)"
if [ "$INJ" -eq "$REQ" ] && [ "$INJ" -ge "$WRK" ] && [ $((INJ - WRK)) -le $((CONN * NRUNS)) ]; then
	say "  ok: every request through lanyard carried a credential"
else
	die "lanyard's injected counter does not match the requests"
fi

# --- micro-benchmarks ----------------------------------------------------------------------

if [ "$MICRO" = 1 ]; then
	step "micro-benchmarks"
	# run-time statistics of bpf programs (kernel.bpf_stats_enabled), restored by cleanup
	STATS_OLD=$(sysctl -n kernel.bpf_stats_enabled)
	sysctl -qw kernel.bpf_stats_enabled=1
	for _ in 1 2 3; do
		connect_runs enrolled "$CG" 1
		connect_runs plain "$CG_PLAIN" 1
	done
	# baseline, part 2: after this bench's lanyardd detached its programs (--ephemeral)
	stop "$LD_PID"
	LD_PID=''
	connect_runs detached "$CG_PLAIN" 3
	PROGS_AFTER=$(ly_progs)
	# wall: median over runs of each run's median connect() time, and the spread of those
	wall() { "$PY" -c '
import re, statistics, sys
v = [int(re.search(r"median_ns=(\d+)", l).group(1)) / 1000 for l in open(sys.argv[1])]
print("%6.2f us  (%.2f-%.2f)" % (statistics.median(v), min(v), max(v)))' "$1"; }
	# bpf: run time of this bench's two programs per connect() made by the helper
	# (the helper's 1000 warm-up connects included; other traffic on the host adds a little)
	bpf() { "$PY" -c '
import sys
n = 0
c4 = so = 0
for l in open(sys.argv[1]):
    a = list(map(int, l.split()))
    c4 += a[5] - a[1]; so += a[7] - a[3]; n += int(sys.argv[2]) + 1000
print("%5.0f ns  (connect4 %.0f + sockops %.0f)" % ((c4 + so) / n, c4 / n, so / n))' \
		"$1" "$CONNECTS"; }
	say "  connect(): one TCP connect() from a helper pinned to CPU $CPU, to a listener on"
	say "  127.0.0.1 that no route matches, $CONNECTS calls per run. wall = median over runs"
	say "  of the median call (range over runs); bpf = kernel run time of this lanyardd's"
	say "  programs per connect() (bpf_stats)"
	say "                                          wall                  bpf"
	say "    enrolled cgroup, no matching route   $(wall "$T/connect.enrolled")" \
		"  $(bpf "$T/bpfstats.enrolled")"
	say "    unenrolled cgroup, hooks attached    $(wall "$T/connect.plain")" \
		"  $(bpf "$T/bpfstats.plain")"
	say "    this bench's hooks not attached      $(wall "$T/connect.detached")"
	say "    (lanyard programs of other daemons at the cgroup2 root meanwhile: $PROGS_BEFORE before," \
		"$PROGS_AFTER after)"
	"$T/ly-bench-jwt" "$T/state-mint" 2 >"$T/jwt.out" 2>/dev/null || die "ly-bench-jwt failed"
	say "  JWT mint: lanyard's jwt_mint() (ES256, OpenSSL $(openssl version | cut -d' ' -f2))," \
		"one thread, 2 s:"
	sed -n 's/.* per_s=\([0-9]*\) us_per_mint=\([0-9.]*\).*/    \1 JWTs\/s (\2 us each)/p' \
		"$T/jwt.out"
fi
say ""
say "bench done; cleaning up"
