#!/usr/bin/env bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# Copyright (c) 2026 The lanyard authors
#
# `make bench`: the same wrk load from an enrolled cgroup against the upstream directly,
# through lanyardd (a fresh JWT per request), through nginx and through HAProxy (a static
# header of the same size); the same over HTTPS (lanyardd intercept vs nginx terminating and
# re-encrypting), TLS handshake rate and first-request latency for new names; a jwt route
# against an oauth2 route (a token from an identity provider) and the issuance latency of
# each credential source; then connect() cost, JWT mint rate and the cost of the TLS uprobes
# per SSL_write.  Ratios, not absolutes.
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
TLS=${BENCH_TLS:-1}
TLS_PORT=${BENCH_TLS_PORT:-18443}
NGINX_TLS_PORT=$((TLS_PORT + 1))
HS_CONN=${BENCH_HS_CONN:-4}
HS_DUR=${BENCH_HS_DURATION:-$DUR}
FRESH=${BENCH_FRESH_NAMES:-50}
UPROBE=${BENCH_UPROBE:-1}
UPROBE_WRITES=${BENCH_UPROBE_WRITES:-100000}
UPROBE_HEADS=${BENCH_UPROBE_HEADS:-20000}
UPROBE_ROUNDS=${BENCH_UPROBE_ROUNDS:-5}
COVER_N=${BENCH_COVER_N:-20}
COVER_PORT=${BENCH_COVER_PORT:-18997}
SOURCES=${BENCH_SOURCES:-1}
ISSUES=${BENCH_ISSUES:-20}
IDP_PORT=${BENCH_IDP_PORT:-18090}
IDP_CTL_PORT=$((IDP_PORT + 1))
TLS_NAME=api.bench.lanyard # the upstream's name; its certificate also has *.bench.lanyard
TLS_ROUTE=127.0.0.2:$TLS_PORT # intercept, server_name $TLS_NAME: wrk sends no SNI to an IP
FRESH_ROUTE=127.0.0.3:$TLS_PORT # intercept, any SNI: a new name mints a new leaf
ISSUER=http://127.0.0.1:$ADMIN_PORT
# direct and lanyard reach the same upstream from the same cgroup: only 127.0.0.2 is routed
ROUTE=127.0.0.2:$UP_PORT
OAUTH_ROUTE=127.0.0.4:$UP_PORT # the same upstream again, behind an oauth2 credential
STATIC_ROUTE=127.0.0.5:$UP_PORT # and behind a static one as long as the JWT
TOKEN_URL=https://localhost:$IDP_PORT/token
CG_TOP=/lanyard-bench-$$
CG=$CG_TOP/client   # enrolled; wrk runs here for every target
CG_PLAIN=$CG_TOP/plain # not enrolled; for the connect() micro-benchmark
CG_OBS=$CG_TOP/observed # mode: observe; for the uprobe benchmark
CG_SRC=$CG_TOP/sources # the workload whose credentials the issuance runs revoke (no traffic)
PIN_DIR=/sys/fs/bpf/lanyard-bench-$$
TARGETS=(direct lanyard nginx haproxy)
TLS_TARGETS=(direct-tls lanyard-tls nginx-tls)

T='' CG_MNT='' UP_PID='' LD_PID='' NG_PID='' HA_PID='' PROBE_PID='' STATS_OLD='' COVER_PID=''
UPT_PID='' NGT_PID='' IDP_PID=''
COUNTS='' # where run_wrk appends lanyardd's counters around a lanyard run

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
	stop "$COVER_PID"
	stop "$NG_PID" QUIT # nginx: graceful stop of master and worker
	stop "$NGT_PID" QUIT
	stop "$HA_PID"
	stop "$UP_PID"
	stop "$UPT_PID"
	stop "$LD_PID" # --ephemeral: detaches and unpins on SIGTERM
	stop "$IDP_PID"
	[ -z "$STATS_OLD" ] || sysctl -qw kernel.bpf_stats_enabled="$STATS_OLD"
	if [ -d "$PIN_DIR" ]; then
		"$BIN/lanyardd" --detach --pin-dir "$PIN_DIR" >/dev/null 2>&1
		rm -rf "$PIN_DIR"
	fi
	if [ -n "$CG_MNT" ] && [ -d "$CG_MNT$CG_TOP" ]; then
		# anything still in our cgroups was started by this script (wrk, a helper)
		for cg in "$CG" "$CG_PLAIN" "$CG_OBS" "$CG_SRC"; do
			[ -f "$CG_MNT$cg/cgroup.procs" ] || continue
			while read -r pid; do kill -KILL "$pid"; done <"$CG_MNT$cg/cgroup.procs"
		done
		sleep 0.2
		rmdir "$CG_MNT$CG" "$CG_MNT$CG_PLAIN" "$CG_MNT$CG_OBS" "$CG_MNT$CG_SRC" \
			"$CG_MNT$CG_TOP" 2>/dev/null
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
# fill TEMPLATE OUT PORT [UPSTREAM_PORT]: substitute the @VARS@ of an nginx/haproxy template
fill() {
	sed -e "s|@DIR@|$T|g" -e "s|@UP_PORT@|${4:-$UP_PORT}|g" -e "s|@PORT@|$3|g" \
		-e "s|@TOKEN@|$TOKEN|g" -e "s|@NAME@|$TLS_NAME|g" "$1" >"$2"
}
url_of() {
	case $1 in
	direct) echo "http://127.0.0.1:$UP_PORT/bench" ;;
	lanyard | lanyard-jwt) echo "http://$ROUTE/bench" ;;
	lanyard-oauth2) echo "http://$OAUTH_ROUTE/bench" ;;
	lanyard-static) echo "http://$STATIC_ROUTE/bench" ;;
	nginx) echo "http://127.0.0.1:$NGINX_PORT/bench" ;;
	haproxy) echo "http://127.0.0.1:$HAPROXY_PORT/bench" ;;
	direct-tls) echo "https://direct.bench.lanyard:$TLS_PORT/bench" ;;
	lanyard-tls) echo "https://$TLS_NAME:$TLS_PORT/bench" ;;
	nginx-tls) echo "https://nginx.bench.lanyard:$NGINX_TLS_PORT/bench" ;;
	esac
}

# run_wrk TARGET SECONDS OUT: one wrk run from the enrolled cgroup; lanyardd's counters
# are read around the lanyard runs, into $COUNTS, to check that every request got a credential
run_wrk() {
	local bi br ai ar ns=() through=0
	case $1 in lanyard*) through=1 ;; esac
	[ "$through" = 0 ] || read -r bi br <<<"$(counters)"
	# wrk sends the URL's host as SNI, an IP literal too (which RFC 6066 3 forbids and
	# lanyardd refuses): the HTTPS runs use names, which $T/hosts resolves for wrk alone
	if [ "${1%-tls}" != "$1" ]; then
		# shellcheck disable=SC2016 # $0 and $@ are the inner sh's
		ns=(unshare -m -- sh -c 'mount --bind "$0" /etc/hosts && exec "$@"' "$T/hosts")
	fi
	"$BIN/ly-cgexec" "$CG" -- "${ns[@]}" wrk -t"$THREADS" -c"$CONN" -d"$2"s --latency \
		-s tools/bench/report.lua "$(url_of "$1")" >"$3" 2>&1 ||
		die "wrk against $1 failed: $(tail -n 3 "$3")"
	grep -q '^WRK_RESULT' "$3" || die "wrk against $1 printed no result: $(tail -n 3 "$3")"
	if [ "$through" = 1 ]; then
		read -r ai ar <<<"$(counters)"
		echo "$((ai - bi)) $((ar - br))" \
			"$(sed -n 's/^WRK_RESULT requests=\([0-9]*\).*/\1/p' "$3")" >>"$COUNTS"
	fi
}

# check_injected WHAT: every request wrk completed through lanyard in the runs of $COUNTS
# carried a credential (WHAT names them)
check_injected() {
	local inj req wrk nruns
	read -r inj req wrk <<<"$(awk '{ i += $1; r += $2; w += $3 } END { print i, r, w }' \
		"$COUNTS")"
	nruns=$(wc -l <"$COUNTS")
	say "  credentials: lanyardd injected $inj $1 into $req requests; wrk completed $wrk"
	say "  (wrk does not count the requests in flight when it stops: up to $CONN per run," \
		"$nruns runs)"
	if [ "$inj" -eq "$req" ] && [ "$inj" -ge "$wrk" ] &&
		[ $((inj - wrk)) -le $((CONN * nruns)) ]; then
		say "  ok: every request through lanyard carried a credential"
	else
		die "lanyard's injected counter does not match the requests"
	fi
}

# make_certs: a throw-away CA (P-256) and the TLS upstream's certificate, which nginx also
# serves: api.bench.lanyard, *.bench.lanyard (the never-seen names) and the loopback addresses
make_certs() {
	local d=$T/tls ossl=/usr/bin/openssl
	local san="DNS:$TLS_NAME,DNS:*.bench.lanyard,IP:127.0.0.1,IP:127.0.0.2,IP:127.0.0.3"
	mkdir -p "$d"
	printf '%s\n' "subjectAltName=$san" basicConstraints=critical,CA:FALSE \
		keyUsage=critical,digitalSignature extendedKeyUsage=serverAuth >"$d/ext"
	"$ossl" req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
		-keyout "$d/ca.key" -out "$d/ca.crt" -subj "/CN=lanyard bench CA $$" \
		-addext basicConstraints=critical,CA:TRUE \
		-addext keyUsage=critical,keyCertSign,cRLSign 2>"$d/err" &&
		"$ossl" req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
			-keyout "$d/server.key" -out "$d/server.csr" -subj "/CN=$TLS_NAME" 2>"$d/err" &&
		"$ossl" x509 -req -in "$d/server.csr" -CA "$d/ca.crt" -CAkey "$d/ca.key" -days 2 \
			-set_serial "0x1$("$ossl" rand -hex 15)" -extfile "$d/ext" \
			-out "$d/server.crt" 2>"$d/err"
}

# make_idp_cert: the identity provider's certificate (localhost, 127.0.0.1) from the bench CA
make_idp_cert() {
	local d=$T/tls ossl=/usr/bin/openssl
	[ -s "$d/ca.crt" ] || make_certs || return 1
	printf '%s\n' "subjectAltName=DNS:localhost,IP:127.0.0.1" basicConstraints=critical,CA:FALSE \
		keyUsage=critical,digitalSignature extendedKeyUsage=serverAuth >"$d/idp.ext"
	"$ossl" req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
		-keyout "$d/idp.key" -out "$d/idp.csr" -subj "/CN=localhost" 2>"$d/err" &&
		"$ossl" x509 -req -in "$d/idp.csr" -CA "$d/ca.crt" -CAkey "$d/ca.key" -days 2 \
			-set_serial "0x1$("$ossl" rand -hex 15)" -extfile "$d/idp.ext" \
			-out "$d/idp.crt" 2>"$d/err"
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
PORTS=("$LISTEN_PORT" "$ADMIN_PORT" "$UP_PORT" "$NGINX_PORT" "$HAPROXY_PORT")
[ "$TLS" != 1 ] || PORTS+=("$TLS_PORT" "$NGINX_TLS_PORT")
[ "$SOURCES" != 1 ] || PORTS+=("$IDP_PORT" "$IDP_CTL_PORT")
for p in "${PORTS[@]}"; do
	port_busy "$p" && die "port $p is in use (ss -ltnp 'sport = :$p'); free it or set" \
		"BENCH_LISTEN_PORT / BENCH_ADMIN_PORT / BENCH_UPSTREAM_PORT (+1 nginx, +2 haproxy)" \
		"/ BENCH_TLS_PORT (+1 nginx) / BENCH_IDP_PORT (+1 its control port)"
done
CG_MNT=$(awk '$3 == "cgroup2" { print $2; exit }' /proc/mounts)
[ -n "$CG_MNT" ] || die "no cgroup2 mount"

umask 077
T=$(mktemp -d /tmp/lanyard-bench.XXXXXX)
mkdir -p "$T/nginx-tmp" "$T/res" "$T/state-mint"
COUNTS=$T/lanyard-counts
: >"$COUNTS"
# the micro-benchmark helpers are built here, not by the Makefile: only the bench uses them
HELPER_CFLAGS=(-O2 -std=gnu11 -D_GNU_SOURCE -Wall -Wextra -Werror -Iinclude -Iuserspace -Ibuild)
if [ "$MICRO" = 1 ]; then
	cc "${HELPER_CFLAGS[@]}" tools/bench/connect_cost.c -lpthread -o "$T/ly-bench-connect" ||
		die "cannot build tools/bench/connect_cost.c"
	cc "${HELPER_CFLAGS[@]}" tools/bench/jwt_mint.c build/liblanyard.a -lbpf -lelf -lz -lyaml \
		-ljansson -lssl -lcrypto -lpthread -o "$T/ly-bench-jwt" ||
		die "cannot build tools/bench/jwt_mint.c"
fi
if [ "$TLS" = 1 ]; then
	cc "${HELPER_CFLAGS[@]}" tools/bench/tls_conn.c -lssl -lcrypto -lpthread \
		-o "$T/ly-bench-tls" || die "cannot build tools/bench/tls_conn.c"
	make_certs || die "openssl could not make the bench certificates: $(cat "$T/tls/err")"
	{
		cat /etc/hosts
		echo "127.0.0.1 direct.bench.lanyard nginx.bench.lanyard"
		echo "${TLS_ROUTE%:*} $TLS_NAME"
	} >"$T/hosts"
	chmod 644 "$T/hosts"
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

# sources_setup: what the credential sources fetch from, before lanyardd starts (its first
# fetches happen at once): the test identity provider over TLS (clients authenticate with
# lanyard's key, by its JWKS; token exchange takes lanyard's JWTs for https://sts.bench;
# tokens live an hour, so none is refreshed during the bench), an exec helper and a static
# credential file (root, 0600, like all of $T)
sources_setup() {
	make_idp_cert || die "openssl could not make the provider's certificate: $(cat "$T/tls/err")"
	"$PY" -u tests/servers/idp.py --listen "127.0.0.1:$IDP_PORT" --cert "$T/tls/idp.crt" \
		--key "$T/tls/idp.key" --ctl "127.0.0.1:$IDP_CTL_PORT" --token-url "$TOKEN_URL" \
		--jwks "$ISSUER/.well-known/jwks.json" --client bench \
		--subject-audience https://sts.bench --expires-in 3600 --log "$T/idp.jsonl" \
		>"$T/idp.out" 2>&1 &
	IDP_PID=$!
	wait_for 10 grep -q listening "$T/idp.out" || die "idp.py did not start: $(cat "$T/idp.out")"
	# about the smallest helper there is: a shell and one fork for date(1)
	cat >"$T/helper.sh" <<'EOF'
#!/bin/sh
now=$(date +%s)
printf '{"token": "exec-bench-%s-%s", "expires_at": %s}\n' "$$" "$now" $((now + 3600))
EOF
	chmod 700 "$T/helper.sh"
	printf 'static-%s\n' "$(head -c 32 /dev/urandom | base64 -w0 | tr '+/' '-_' | tr -d '=')" \
		>"$T/static.key"
	echo placeholder >"$T/static-hot.key" # replaced once the JWT's length is known
	mkdir -p "$CG_MNT$CG_SRC"
}
[ "$SOURCES" != 1 ] || sources_setup

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
# the TLS routes use the plain route's audience, so that their JWTs have the same length
[ "$TLS" != 1 ] || cat >>"$T/policy.yaml" <<EOF
      - to: $TLS_ROUTE
        tls: intercept
        ca_file: $T/tls/ca.crt
        server_name: $TLS_NAME
        credential: { type: jwt, audience: http://$ROUTE, ttl: 5m }
      - to: $FRESH_ROUTE
        tls: intercept
        ca_file: $T/tls/ca.crt
        credential: { type: jwt, audience: http://$ROUTE, ttl: 5m }
EOF
# the oauth2 and static routes of the hot-path runs, and one route per source for the
# issuance runs
[ "$SOURCES" != 1 ] || cat >>"$T/policy.yaml" <<EOF
      - to: $OAUTH_ROUTE
        credential: { type: oauth2, token_url: "$TOKEN_URL", client_id: bench,
                      ca_file: $T/tls/ca.crt }
      - to: $STATIC_ROUTE
        credential: { type: static, file: $T/static-hot.key }
  - name: sources
    match: { cgroup: $CG_SRC }
    routes:
      - to: 127.0.2.1:$UP_PORT
        credential: { type: jwt, audience: "https://jwt.sources.bench", ttl: 1h }
      - to: 127.0.2.2:$UP_PORT
        credential: { type: oauth2, token_url: "$TOKEN_URL", client_id: bench,
                      ca_file: $T/tls/ca.crt }
      - to: 127.0.2.3:$UP_PORT
        credential: { type: token_exchange, token_url: "$TOKEN_URL",
                      subject_audience: "https://sts.bench", ca_file: $T/tls/ca.crt }
      - to: 127.0.2.4:$UP_PORT
        credential: { type: exec, command: [$T/helper.sh], timeout: 5s }
      - to: 127.0.2.5:$UP_PORT
        credential: { type: static, file: $T/static.key }
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

# sources_probe: every source has its first credential; one request through the oauth2
# route reaches an upstream that reports the token's length and fingerprint: it must be the
# route's credential (lanyard tokens) and one the provider issued (its log), not a JWT; the
# static route of the hot path gets its value
sources_ready() {
	"$BIN/lanyard" --socket "$T/control.sock" --json tokens | jpy \
		"all(t['fingerprint'] for t in d['tokens'] if t['workload'] == 'sources' or
		     t['route'] in ('$OAUTH_ROUTE', '$STATIC_ROUTE'))" | grep -qx True
}
sources_probe() {
	local fp
	wait_for 15 sources_ready || die "a credential source has no credential:" \
		"$("$BIN/lanyard" --socket "$T/control.sock" tokens)"
	"$PY" tests/servers/jwt_upstream.py --listen "$OAUTH_ROUTE" \
		--jwks "$ISSUER/.well-known/jwks.json" --audience "http://$ROUTE" \
		>"$T/probe-oauth2.out" 2>&1 &
	PROBE_PID=$!
	wait_for 10 grep -q listening "$T/probe-oauth2.out" || die "jwt_upstream.py did not start"
	"$BIN/ly-cgexec" "$CG" -- curl -s "http://$OAUTH_ROUTE/probe" >"$T/probe-oauth2.json" ||
		die "the probe request through the oauth2 route failed"
	stop "$PROBE_PID"
	PROBE_PID=
	fp=$("$BIN/lanyard" --socket "$T/control.sock" --json tokens |
		jpy "next(t['fingerprint'] for t in d['tokens'] if t['route'] == '$OAUTH_ROUTE')")
	# the provider logs the SHA-256 of each token it issues; a fingerprint is its first 16 digits
	if [ "$(jpy "d['verified'] is False and d.get('token_sha256') == '$fp'" \
		<"$T/probe-oauth2.json")" != True ] ||
		! grep -q "\"token_sha256\": \"${fp#sha256:}" "$T/idp.jsonl"; then
		die "the oauth2 route did not send the provider's token: $(cat "$T/probe-oauth2.json")"
	fi
	OAUTH_LEN=$(jpy 'd["token_len"]' <"$T/probe-oauth2.json")
	say "  oauth2 route $OAUTH_ROUTE: the provider's token ($OAUTH_LEN bytes, $fp) reached" \
		"the upstream"
	# the static route serves a value as long as lanyard's JWT: it tells a difference of
	# source from a difference of length (lanyardd sees the new file within its 2 s poll)
	head -c $((TOKEN_LEN * 2)) /dev/urandom | base64 -w0 | tr '+/' '-_' | tr -d '=' |
		cut -c1-"$TOKEN_LEN" | tr -d '\n' >"$T/static-hot.key.new"
	mv -f "$T/static-hot.key.new" "$T/static-hot.key"
	fp=sha256:$(sha256sum "$T/static-hot.key" | cut -c1-16)
	# shellcheck disable=SC2016 # $1 and $2 are the inner sh's
	wait_for 10 sh -c '"$0" --socket "$1" --json tokens | grep -q "\"fingerprint\": *\"$2\""' \
		"$BIN/lanyard" "$T/control.sock" "$fp" ||
		die "lanyardd did not take the static route's new value"
	say "  static route $STATIC_ROUTE: a value of $TOKEN_LEN bytes, like the JWT ($fp)"
}
[ "$SOURCES" != 1 ] || sources_probe
wait_for 5 port_free "$UP_PORT" || true

UP_LISTEN=(--listen "127.0.0.1:$UP_PORT" --listen "$ROUTE")
[ "$SOURCES" != 1 ] || UP_LISTEN+=(--listen "$OAUTH_ROUTE" --listen "$STATIC_ROUTE")
"$BIN/ly-upstream" "${UP_LISTEN[@]}" >"$T/upstream.out" 2>&1 &
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
say "  upstream ly-upstream 127.0.0.1:$UP_PORT + $ROUTE$([ "$SOURCES" != 1 ] ||
	echo " + $OAUTH_ROUTE + $STATIC_ROUTE"); nginx :$NGINX_PORT (1 worker);" \
	"haproxy :$HAPROXY_PORT (nbthread 1)"
if [ "$TLS" = 1 ]; then
	"$BIN/ly-upstream" --listen "127.0.0.1:$TLS_PORT" --listen "$TLS_ROUTE" \
		--listen "$FRESH_ROUTE" --tls-cert "$T/tls/server.crt" --tls-key "$T/tls/server.key" \
		>"$T/upstream-tls.out" 2>&1 &
	UPT_PID=$!
	fill tools/bench/nginx-tls.conf.in "$T/nginx-tls.conf" "$NGINX_TLS_PORT" "$TLS_PORT"
	/usr/sbin/nginx -p "$T/" -e "$T/nginx-tls-error.log" -c "$T/nginx-tls.conf" \
		-g 'daemon off;' >"$T/nginx-tls.out" 2>&1 &
	NGT_PID=$!
	wait_for 10 grep -q listening "$T/upstream-tls.out" ||
		die "ly-upstream (TLS) did not start: $(cat "$T/upstream-tls.out")"
	wait_for 10 port_listening "$NGINX_TLS_PORT" ||
		die "nginx (TLS) did not start: $(cat "$T/nginx-tls-error.log")"
	[ -s "$T/state/ca.crt" ] || die "lanyardd made no CA in $T/state"
	say "  TLS upstream ly-upstream 127.0.0.1:$TLS_PORT + $TLS_ROUTE + $FRESH_ROUTE" \
		"($TLS_NAME, *.bench.lanyard, bench CA); nginx TLS :$NGINX_TLS_PORT"
fi

# --- the load ------------------------------------------------------------------------------

# tls_conn TARGET OUT ARGS...: ly-bench-tls from the enrolled cgroup against TARGET; each
# connection is verified (the bench CA for the upstream and nginx, lanyardd's CA for lanyard)
tls_conn() {
	local t=$1 out=$2
	shift 2
	case $t in
	direct) set -- -p "$TLS_PORT" -a "$T/tls/ca.crt" "$@" 127.0.0.1 ;;
	lanyard) set -- -p "$TLS_PORT" -a "$T/state/ca.crt" "$@" "${TLS_ROUTE%:*}" ;;
	lanyard-new) set -- -p "$TLS_PORT" -a "$T/state/ca.crt" "$@" "${FRESH_ROUTE%:*}" ;;
	nginx) set -- -p "$NGINX_TLS_PORT" -a "$T/tls/ca.crt" "$@" 127.0.0.1 ;;
	esac
	"$BIN/ly-cgexec" "$CG" -- "$T/ly-bench-tls" "$@" >"$out" 2>"$out.err" ||
		die "ly-bench-tls against $t failed: $(cat "$out.err")"
}
if [ "$TLS" = 1 ]; then
	step "first request for never-seen TLS server names"
	# first request on a new connection, one at a time: a never-seen name (lanyardd mints a
	# leaf, then connects and verifies upstream) against a name whose leaf is cached; first
	# of all, on a quiet lanyardd (measured right after a load, this was 2-3 ms slower)
	tls_conn lanyard-new "$T/res/first-warm" -n 1 -s cached.bench.lanyard
	for r in $(seq "$ROUNDS"); do
		printf '  round %d/%d  first requests: %d never-seen names, %d to a cached one, %d direct\n' \
			"$r" "$ROUNDS" "$FRESH" "$FRESH" "$FRESH"
		tls_conn lanyard-new "$T/res/first-new.$r" -n "$FRESH" -f -s bench.lanyard
		tls_conn lanyard-new "$T/res/first-cached.$r" -n "$FRESH" -s cached.bench.lanyard
		tls_conn direct "$T/res/first-direct.$r" -n "$FRESH" -s cached.bench.lanyard
	done
fi

# load TARGET...: a warm-up run per target, then ROUNDS rounds of all of them in turn
load() {
	local t r order=("$@")
	for t in "$@"; do
		printf '  warm-up %s\n' "$t"
		run_wrk "$t" "$WARM" "$T/res/$t.warm"
	done
	for r in $(seq "$ROUNDS"); do
		for t in "${order[@]}"; do
			printf '  round %d/%d  %-11s %s\n' "$r" "$ROUNDS" "$t" "$(url_of "$t")"
			run_wrk "$t" "$DUR" "$T/res/$t.$r"
		done
		# rotate the order so that no target always runs first (or last) in a round
		order=("${order[@]:1}" "${order[0]}")
	done
}

# report RIVAL TARGET...: the table of wrk's results; the first target is the baseline, and
# lanyard's ratio is compared with RIVAL's
report() {
	"$PY" - "$T/res" "$ROUNDS" "$@" <<'EOF'
import statistics, sys
d, rounds, rival, targets = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4:]
base = targets[0]
runs = {}
for t in targets:
    runs[t] = []
    for r in range(1, rounds + 1):
        line = next(l for l in open(f"{d}/{t}.{r}") if l.startswith("WRK_RESULT"))
        kv = {k: int(v) for k, v in (x.split("=") for x in line.split()[1:])}
        kv["rps"] = kv["requests"] / (kv["duration_us"] / 1e6)
        runs[t].append(kv)
# a round's targets run back to back, so dividing by that round's baseline run cancels
# most of the slow drift of a shared machine's load
ratios = {t: [x["rps"] / b["rps"] for x, b in zip(runs[t], runs[base])] for t in targets}
print("  %-11s %9s %8s %8s %6s %6s   %s" % ("target", "req/s", "p50 ms", "p99 ms", "ratio",
                                           "errors", "ratio per round"))
for t in targets:
    x = runs[t]
    print("  %-11s %9.0f %8.3f %8.3f %6.2f %6d   %s" % (
        t, statistics.median(r["rps"] for r in x),
        statistics.median(r["p50_us"] for r in x) / 1000,
        statistics.median(r["p99_us"] for r in x) / 1000,
        statistics.median(ratios[t]),
        sum(v for r in x for k, v in r.items() if k.startswith("err_")),
        " ".join("%.2f" % v for v in ratios[t])))
ly = statistics.median(next(ratios[t] for t in targets if t.startswith("lanyard")))
ha = statistics.median(ratios[rival])
print("\n  lanyard ratio %.2f %s %s ratio %.2f: lanyard %s" % (
    ly, ">=" if ly >= ha else "<", rival, ha,
    "keeps up with " + rival if ly >= ha else "is slower than " + rival))
if any(v for t in targets for r in runs[t] for k, v in r.items() if k.startswith("err_")):
    print("  note: a target had socket errors or non-2xx answers (errors column)")
EOF
}

step "wrk from the enrolled cgroup"
load "${TARGETS[@]}"
if [ "$TLS" = 1 ]; then
	step "wrk over HTTPS from the enrolled cgroup"
	load "${TLS_TARGETS[@]}"
fi

step "results (median of $ROUNDS round(s); ratio: to direct's req/s in the same round)"
report haproxy "${TARGETS[@]}"
if [ "$TLS" = 1 ]; then
	step "HTTPS results (median of $ROUNDS round(s); ratio: to direct-tls in the same round)"
	report nginx-tls "${TLS_TARGETS[@]}"
fi

say ""
check_injected JWTs

# --- TLS handshakes ------------------------------------------------------------------------

if [ "$TLS" = 1 ]; then
	step "TLS handshakes (ly-bench-tls: full handshakes, no resumption, verified)"
	HS_TARGETS=(direct lanyard nginx)
	for t in "${HS_TARGETS[@]}"; do # warm-up: lanyard's leaf for $TLS_NAME gets cached
		tls_conn "$t" "$T/res/hs-$t.warm" -c "$HS_CONN" -d 1 -s "$TLS_NAME"
	done
	order=("${HS_TARGETS[@]}")
	for r in $(seq "$ROUNDS"); do
		for t in "${order[@]}"; do
			printf '  round %d/%d  %-8s new connections, %d threads, %ss\n' "$r" "$ROUNDS" \
				"$t" "$HS_CONN" "$HS_DUR"
			tls_conn "$t" "$T/res/hs-$t.$r" -c "$HS_CONN" -d "$HS_DUR" -s "$TLS_NAME"
		done
		order=("${order[@]:1}" "${order[0]}")
	done
	"$PY" - "$T/res" "$ROUNDS" "$FRESH" "$HS_CONN" "${HS_TARGETS[@]}" <<'EOF'
import statistics, sys
d, rounds, fresh, conns = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
targets = sys.argv[5:]
def res(name):
    line = next(l for l in open(f"{d}/{name}") if l.startswith("TLS_RESULT"))
    return {k: float(v) for k, v in (x.split("=") for x in line.split()[1:])}
runs = {t: [res(f"hs-{t}.{r}") for r in range(1, rounds + 1)] for t in targets}
ratios = {t: [x["per_s"] / b["per_s"] for x, b in zip(runs[t], runs["direct"])] for t in targets}
print("\n  new TLS connections/s (%s threads; handshake + GET + close; ratio: to direct in the"
      " same round)" % conns)
print("  %-11s %9s %8s %8s %6s   %s" % ("target", "conn/s", "p50 ms", "p99 ms", "ratio",
                                      "ratio per round"))
for t in targets:
    x = runs[t]
    print("  %-11s %9.0f %8.3f %8.3f %6.2f   %s" % (
        t, statistics.median(r["per_s"] for r in x),
        statistics.median(r["p50_us"] for r in x) / 1000,
        statistics.median(r["p99_us"] for r in x) / 1000,
        statistics.median(ratios[t]), " ".join("%.2f" % v for v in ratios[t])))
print("\n  first request on a new connection (connect to first response byte), %s names"
      " per round, one at a time" % fresh)
print("  %-34s %8s %8s %8s" % ("", "p50 ms", "p95 ms", "max ms"))
rows = [("lanyard, never-seen SNI (new leaf)", "first-new"),
        ("lanyard, cached leaf", "first-cached"), ("direct", "first-direct")]
p50 = {}
for label, f in rows:
    x = [res(f"{f}.{r}") for r in range(1, rounds + 1)]
    p50[f] = statistics.median(r["p50_us"] for r in x) / 1000
    p95 = statistics.median(r["p95_us"] for r in x) / 1000
    print("  %-34s %8.3f %8.3f %8.3f" % (label, p50[f], p95, max(r["max_us"] for r in x) / 1000))
print("\n  never-seen SNI: p50 %.3f ms %s the 5 ms target (a new leaf adds %.3f ms over a"
      " cached one)" % (p50["first-new"], "within" if p50["first-new"] <= 5 else "MISSES",
                         p50["first-new"] - p50["first-cached"]))
EOF
fi

# --- credential sources --------------------------------------------------------------------

# issued ROUTE: how many credentials lanyardd issued for ROUTE so far (audit credential.issue)
issued() { grep -c "\"event\":\"credential.issue\".*\"route\":\"$1\"" "$T/audit.jsonl" || true; }
if [ "$SOURCES" = 1 ]; then
	step "credential sources: the hot path, a jwt route against an oauth2 and a static route"
	say "  the same upstream through lanyardd: $ROUTE (lanyard's JWT, minted by lanyardd)," \
		"$OAUTH_ROUTE (the provider's token, fetched once and cached) and $STATIC_ROUTE" \
		"(a static value as long as the JWT)"
	COUNTS=$T/sources-counts
	: >"$COUNTS"
	FETCHES=$(($(issued "$OAUTH_ROUTE") + $(issued "$STATIC_ROUTE")))
	load lanyard-jwt lanyard-oauth2 lanyard-static
	FETCHES=$(($(issued "$OAUTH_ROUTE") + $(issued "$STATIC_ROUTE") - FETCHES))
	step "credential sources: hot-path results (median of $ROUNDS round(s); ratio: to the jwt" \
		"route in the same round)"
	"$PY" tools/bench/sources.py hot "$T/res" "$ROUNDS" "lanyard-jwt:jwt (lanyard):$TOKEN_LEN" \
		"lanyard-oauth2:oauth2 (provider):$OAUTH_LEN" \
		"lanyard-static:static (JWT-long):$TOKEN_LEN" || die "tools/bench/sources.py hot failed"
	say "  oauth2 or static credentials issued during the load: $FETCHES (the cached ones served" \
		"every request)"
	check_injected "credentials (JWTs, the provider's tokens, the static value)"
	[ "$FETCHES" -eq 0 ] || die "a credential was issued during the load: the ratio mixes" \
		"refreshes in"

	step "credential sources: issuance latency"
	say "  workload sources: one route per source; the provider is tests/servers/idp.py" \
		"(Python, TLS, on this host)"
	"$PY" tools/bench/sources.py issue --lanyard "$BIN/lanyard" --socket "$T/control.sock" \
		--audit "$T/audit.jsonl" --workload sources --n "$ISSUES" ||
		die "tools/bench/sources.py issue failed"
	say "  took: the credential.issue audit event's took_us (jwt: signing on the event loop;" \
		"the others: the fetch on a worker thread)"
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

# --- TLS uprobes ---------------------------------------------------------------------------

# uprobe_run NAME CGROUP WRITES MODE [trap]: one run of the SSL_write loop from CGROUP,
# appended to $T/uprobe.NAME (one "ns_per_write=..." line per run)
uprobe_run() {
	"$BIN/ly-cgexec" "$2" -- "$T/ly-bench-uprobe" "$3" 64 "${@:4}" >>"$T/uprobe.$1" ||
		die "ly-bench-uprobe failed"
}
# without lanyardd: no uprobes, and the reference: a bare uprobe (no program) on SSL_write
uprobe_baseline() {
	for _ in $(seq "$UPROBE_ROUNDS"); do
		uprobe_run none-body "$CG_PLAIN" "$UPROBE_WRITES" body
		uprobe_run none-head "$CG_PLAIN" "$UPROBE_HEADS" head
		uprobe_run trap-body "$CG_PLAIN" "$UPROBE_WRITES" body trap
		uprobe_run none-sys "$CG_PLAIN" "$UPROBE_WRITES" syscall
	done
}
uprobe_lanyardd_up() {
	"$BIN/lanyard" --socket "$T/control-uprobe.sock" --json workloads 2>/dev/null |
		jpy 'all(w["enrolled"] for w in d["workloads"])' | grep -q True &&
		grep -qE 'uprobes on|probed in each process' "$T/lanyardd-uprobe.log"
}
# lanyardd on policy-uprobe.yaml, in LD_PID, once its probes are in place
uprobe_lanyardd_start() {
	"$BIN/lanyardd" --config "$T/policy-uprobe.yaml" --pin-dir "$PIN_DIR" --ephemeral \
		2>"$T/lanyardd-uprobe.log" &
	LD_PID=$!
	wait_for 15 uprobe_lanyardd_up ||
		die "lanyardd (observe) did not come up with its uprobes:" \
			"$(tail -n 5 "$T/lanyardd-uprobe.log")"
}
# uprobe_cover NAME: COVER_N fresh curls from the observed cgroup, one after the other and
# then 10 at a time; prints how many of each lanyardd saw (a flow.tls event with their path:
# letters only, the audit hides a path segment that mixes letters and digits, an id)
uprobe_cover() {
	local i run batch pids
	for run in one:1 ten:10; do
		batch=${run#*:}
		pids=''
		for i in $(seq "$COVER_N"); do
			"$BIN/ly-cgexec" "$CG_OBS" -- curl -sk -o /dev/null \
				"https://127.0.0.1:$COVER_PORT/cover/$1/${run%:*}" &
			pids="$pids $!"
			if [ $((i % batch)) = 0 ]; then
				wait $pids || die "curl (cover) failed"
				pids=''
			fi
		done
		[ -z "$pids" ] || wait $pids || die "curl (cover) failed"
	done
	sleep 1 # lanyardd drains its ring buffer
	printf '%s %s\n' "$(grep -c "\"path\":\"/cover/$1/one\"" "$T/audit-uprobe.jsonl")" \
		"$(grep -c "\"path\":\"/cover/$1/ten\"" "$T/audit-uprobe.jsonl")"
}
if [ "$UPROBE" = 1 ]; then
	step "TLS uprobes: the cost of one SSL_write"
	cc "${HELPER_CFLAGS[@]}" tools/bench/uprobe_write.c -lssl -lcrypto -lpthread \
		-o "$T/ly-bench-uprobe" || die "cannot build tools/bench/uprobe_write.c"
	# a lanyardd of its own that observes one cgroup: the bench's main one goes first
	stop "$LD_PID"
	LD_PID=''
	mkdir -p "$CG_MNT$CG_PLAIN" "$CG_MNT$CG_OBS"
	# no probes, part 1: before this lanyardd attaches its uprobes
	uprobe_baseline
	cat >"$T/policy-uprobe.yaml" <<EOF
trust_domain: bench.lanyard.internal
listen: { port: $LISTEN_PORT }
admin: { listen: 127.0.0.1:$ADMIN_PORT }
state_dir: $T/state-uprobe
audit: { path: $T/audit-uprobe.jsonl }
control_socket: $T/control-uprobe.sock
tls_probes: host
workloads:
  - name: observed
    match: { cgroup: $CG_OBS }
    mode: observe
EOF
	# for the coverage rows: an HTTPS server that short-lived curls call
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 \
		-subj /CN=cover.bench.lanyard -keyout "$T/cover.key" -out "$T/cover.crt" \
		2>/dev/null || die "cannot make the cover certificate"
	openssl s_server -accept "127.0.0.1:$COVER_PORT" -cert "$T/cover.crt" \
		-key "$T/cover.key" -www -quiet >/dev/null 2>&1 &
	COVER_PID=$!
	wait_for 10 port_listening "$COVER_PORT" || die "openssl s_server did not start"
	uprobe_lanyardd_start
	say "  $(grep -m1 'uprobes on' "$T/lanyardd-uprobe.log" | sed 's/.*info: //')"
	COVER_HOST=$(uprobe_cover host)
	for _ in $(seq "$UPROBE_ROUNDS"); do
		uprobe_run unobs-body "$CG_PLAIN" "$UPROBE_WRITES" body
		uprobe_run obs-body "$CG_OBS" "$UPROBE_WRITES" body
		uprobe_run obs-head "$CG_OBS" "$UPROBE_HEADS" head
	done
	sleep 1 # lanyardd drains its ring buffer
	HEADS_SEEN=$(grep -c '"event":"flow.tls".*"path":"/bench"' "$T/audit-uprobe.jsonl" || true)
	stop "$LD_PID"
	LD_PID=''
	# the same with tls_probes: process: probes on the observed cgroup's processes only
	sed -i 's/^tls_probes: host$/tls_probes: process/' "$T/policy-uprobe.yaml"
	uprobe_lanyardd_start
	for _ in $(seq "$UPROBE_ROUNDS"); do
		uprobe_run unobs-proc "$CG_PLAIN" "$UPROBE_WRITES" body
		uprobe_run obs-proc "$CG_OBS" "$UPROBE_WRITES" body probed
		uprobe_run sys-proc "$CG_PLAIN" "$UPROBE_WRITES" syscall
	done
	COVER_PROC=$(uprobe_cover proc)
	stop "$COVER_PID"
	COVER_PID=''
	stop "$LD_PID"
	LD_PID=''
	# the same once more with the send hook of kernels before 6.3: sys_enter
	LANYARD_SEND_TRACEPOINT=0 uprobe_lanyardd_start
	grep -q 'sends are seen at sys_enter' "$T/lanyardd-uprobe.log" ||
		die "LANYARD_SEND_TRACEPOINT=0: lanyardd did not use sys_enter"
	for _ in $(seq "$UPROBE_ROUNDS"); do
		uprobe_run unobs-sysenter "$CG_PLAIN" "$UPROBE_WRITES" body
		uprobe_run sys-sysenter "$CG_PLAIN" "$UPROBE_WRITES" syscall
	done
	stop "$LD_PID"
	LD_PID=''
	# no probes, part 2: after it detached (--ephemeral)
	uprobe_baseline
	UPROBES_OTHER=$(bpftool prog show 2>/dev/null | grep -cE 'name ly_(ssl|gnutls)_' || true)
	say "  one loopback TLS 1.3 connection, 64-byte SSL_write calls to a sink thread;"
	say "  $UPROBE_ROUNDS runs of each, alternating ($UPROBE_WRITES writes per run; request" \
		"heads: $UPROBE_HEADS); ns per call: median over runs (range)"
	"$PY" - "$T" "$HEADS_SEEN" "$COVER_N" $COVER_HOST $COVER_PROC <<'EOF'
import re, statistics, sys
d, seen = sys.argv[1], int(sys.argv[2])
cover_n, cover = int(sys.argv[3]), [int(a) for a in sys.argv[4:8]]
def field(name, key):
    return [float(re.search(key + r"=(\d+)", l).group(1)) for l in open(f"{d}/uprobe.{name}")]
def runs(name):
    return field(name, "ns_per_write")
med = {n: statistics.median(runs(n)) for n in
       ("none-body", "none-head", "trap-body", "unobs-body", "obs-body", "obs-head",
        "unobs-proc", "obs-proc", "unobs-sysenter", "none-sys", "sys-proc", "sys-sysenter")}
# every write of the head runs is a head, the untimed warm-up ones included
heads = int(sum(field("obs-head", "writes")) + sum(field("obs-head", "warmup")))
rows = [("no uprobes (before and after)", "none-body", None),
        ("bare uprobe, no program (reference)", "trap-body", "none-body"),
        ("tls_probes: host, unobserved", "unobs-body", "none-body"),
        ("tls_probes: host, observed", "obs-body", "none-body"),
        ("no uprobes, request heads", "none-head", None),
        ("tls_probes: host, observed, heads", "obs-head", "none-head"),
        ("tls_probes: process, unobserved", "unobs-proc", "none-body"),
        ("tls_probes: process, observed", "obs-proc", "none-body"),
        ("  the same, sends seen at sys_enter", "unobs-sysenter", "none-body"),
        ("getppid(), no lanyardd", "none-sys", None),
        ("getppid(), tls_probes: process", "sys-proc", "none-sys"),
        ("  the same, sends seen at sys_enter", "sys-sysenter", "none-sys")]
print("  %-36s %8s %19s %8s" % ("", "ns/call", "range", "added"))
for label, n, base in rows:
    v = runs(n)
    add = "%+8.0f" % (med[n] - med[base]) if base else "%8s" % "-"
    print("  %-36s %8.0f %9.0f-%-9.0f %s" % (label, med[n], min(v), max(v), add))
obs = med["obs-body"] - med["none-body"]
heads_added = med["obs-head"] - med["none-head"]
unobs = med["unobs-body"] - med["none-body"]
noise = (max(runs("none-body")) - min(runs("none-body"))) / 2
print("\n  observed: %+.2f us per call, %+.2f us per captured request head (target <= 2 us: %s)"
      % (obs / 1000, heads_added / 1000,
         "within" if max(obs, heads_added) <= 2000 else "MISSES"))
print("  unobserved with tls_probes: host: %+.2f us per call; the no-uprobe runs spread"
      " +/- %.2f us: %s" % (
      unobs / 1000, noise / 1000,
      "no measurable change" if abs(unobs) <= noise else "MEASURABLE"))
unobs_proc = med["unobs-proc"] - med["none-body"]
print("  unobserved with tls_probes: process (auto on Linux 6.10+): %+.2f us per call: %s" % (
      unobs_proc / 1000,
      "no measurable change" if abs(unobs_proc) <= noise else "MEASURABLE"))
noise_sys = (max(runs("none-sys")) - min(runs("none-sys"))) / 2
for label, n in (("sock_send_length", "sys-proc"), ("sys_enter (before Linux 6.3)", "sys-sysenter")):
    add = med[n] - med["none-sys"]
    print("  any other syscall of an unobserved process, sends seen at %s: %+.2f us: %s" % (
          label, add / 1000, "no measurable change" if abs(add) <= noise_sys else "MEASURABLE"))
print("  the kernel's uprobe trap alone: %+.2f us per call; lanyard's programs add %+.2f us"
      " to it (observed)" % ((med["trap-body"] - med["none-body"]) / 1000,
                             (med["obs-body"] - med["trap-body"]) / 1000))
print("  lanyardd audited %d flow.tls events for the %d request heads written" % (seen, heads))
print("\n  coverage: fresh curl processes in the observed cgroup whose request lanyardd saw")
print("  %-36s %14s %14s" % ("", "one by one", "10 at a time"))
for label, (sq, par) in (("tls_probes: host", cover[0:2]), ("tls_probes: process", cover[2:4])):
    print("  %-36s %8d of %-3d %8d of %-3d" % (label, sq, cover_n, par, cover_n))
EOF
	say "  (TLS programs of other lanyardd instances loaded at the end: $UPROBES_OTHER)"
fi
say ""
say "bench done; cleaning up"
