#!/usr/bin/env bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# Copyright (c) 2026 The lanyard authors
#
# `make demo`: an unmodified curl in an enrolled cgroup calls an API that demands a JWT, and
# gets in; the same curl outside the cgroup gets 401.  Shows what the app sent, what the
# upstream verified and what was audited - never a token.  Doubles as a smoke test.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
BIN=$ROOT/build/bin
PY=/usr/bin/python3 # Debian's python: python3-jwt, python3-cryptography
LISTEN_PORT=${DEMO_LISTEN_PORT:-15001}
ADMIN_PORT=${DEMO_ADMIN_PORT:-15002}
UP_PORT=${DEMO_UPSTREAM_PORT:-18090}
UP=127.0.0.1:$UP_PORT
ISSUER=http://127.0.0.1:$ADMIN_PORT
CG_TOP=/lanyard-demo-$$
CG=$CG_TOP/billing
PIN_DIR=/sys/fs/bpf/lanyard-demo-$$
# a JWS compact serialisation (header.payload.signature): what a leaked token looks like
JWT_RE='eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{8,}'

T='' CG_MNT='' UP_PID='' LD_PID=''

# colours only on a terminal
B='' G='' R='' N=''
[ ! -t 1 ] || { B=$'\033[1m' G=$'\033[32m' R=$'\033[31m' N=$'\033[0m'; }
say() { printf '%s\n' "$*"; }
step() { printf '\n%s== %s%s\n' "$B" "$*" "$N"; }
ok() { printf '  %sok%s  %s\n' "$G" "$N" "$*"; }
die() {
	printf '\n%sdemo FAILED: %s%s\n' "$R" "$*" "$N" >&2
	if [ -n "$T" ] && [ -s "$T/lanyardd.log" ]; then
		printf -- '--- last lines of lanyardd.log:\n' >&2
		tail -n 15 "$T/lanyardd.log" >&2
	fi
	exit 1
}
# json FILE EXPR: evaluate a python expression over the parsed JSON "d"
json() { "$PY" -c "import json,sys; d=json.load(open(sys.argv[1])); print($2)" "$1"; }

cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	set +e
	[ -n "$UP_PID" ] && kill "$UP_PID" 2>/dev/null && wait "$UP_PID" 2>/dev/null
	if [ -n "$LD_PID" ] && kill -TERM "$LD_PID" 2>/dev/null; then
		# --ephemeral: lanyardd detaches its programs and removes its pins on SIGTERM
		for _ in $(seq 50); do kill -0 "$LD_PID" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "$LD_PID" 2>/dev/null
		wait "$LD_PID" 2>/dev/null
	fi
	# belt and braces: whatever is left under our pin folder goes
	if [ -d "$PIN_DIR" ]; then
		"$BIN/lanyardd" --detach --pin-dir "$PIN_DIR" >/dev/null 2>&1
		rm -rf "$PIN_DIR" 2>/dev/null
	fi
	if [ -n "$CG_MNT" ] && [ -d "$CG_MNT$CG" ]; then
		# anything still in the cgroup was started by this script (an interrupted curl)
		while read -r pid; do kill -KILL "$pid"; done <"$CG_MNT$CG/cgroup.procs"
		for _ in $(seq 20); do [ -s "$CG_MNT$CG/cgroup.procs" ] || break; sleep 0.1; done
	fi
	[ -z "$CG_MNT" ] || rmdir "$CG_MNT$CG" "$CG_MNT$CG_TOP" 2>/dev/null
	[ -n "$T" ] && rm -rf "$T"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# wait_for SECONDS CMD...: poll CMD every 0.1 s
wait_for() {
	local n=$(($1 * 10))
	shift
	while ! "$@" >/dev/null 2>&1; do
		n=$((n - 1))
		[ "$n" -gt 0 ] || return 1
		[ -z "$LD_PID" ] || kill -0 "$LD_PID" 2>/dev/null || die "lanyardd exited"
		sleep 0.1
	done
}

port_busy() { [ -n "$(ss -Hltn "sport = :$1" 2>/dev/null)" ]; }

enrolled() {
	"$BIN/lanyard" --socket "$T/control.sock" --json workloads >"$T/wl.json" &&
		[ "$(json "$T/wl.json" 'all(w["enrolled"] for w in d["workloads"])')" = True ]
}

# --- preconditions -------------------------------------------------------------------------

[ "$(id -u)" -eq 0 ] || die "run as root (sudo make demo): lanyardd loads bpf programs"
./tools/deps.sh || die "tools/deps.sh could not install the packages the demo needs"
for b in lanyardd lanyard ly-cgexec; do
	[ -x "$BIN/$b" ] || die "$BIN/$b is missing: run make first"
done
for p in "$LISTEN_PORT" "$ADMIN_PORT" "$UP_PORT"; do
	port_busy "$p" && die "port $p is in use (ss -ltnp 'sport = :$p'); free it or set" \
		"DEMO_LISTEN_PORT / DEMO_ADMIN_PORT / DEMO_UPSTREAM_PORT"
done
CG_MNT=$(awk '$3 == "cgroup2" { print $2; exit }' /proc/mounts)
[ -n "$CG_MNT" ] || die "no cgroup2 mount"

umask 077
T=$(mktemp -d /tmp/lanyard-demo.XXXXXX)
cat >"$T/policy.yaml" <<EOF
trust_domain: demo.lanyard.internal
listen: { port: $LISTEN_PORT }
admin: { listen: 127.0.0.1:$ADMIN_PORT }
state_dir: $T/state
audit: { path: $T/audit.jsonl }
control_socket: $T/control.sock
workloads:
  - name: billing
    match: { cgroup: $CG }
    routes:
      - to: $UP
        credential: { type: jwt, audience: http://$UP, ttl: 5m }
EOF

# --- 1. start ------------------------------------------------------------------------------

step "1. start an API that demands a JWT, and lanyardd"
say "  policy: workload 'billing' = cgroup $CG (and below);"
say "          its route $UP gets a JWT (aud http://$UP, ttl 5m)"
mkdir -p "$CG_MNT$CG" # before lanyardd starts, so it is enrolled at once
"$PY" tests/servers/jwt_upstream.py --listen "$UP" --jwks "$ISSUER/.well-known/jwks.json" \
	--audience "http://$UP" --issuer "$ISSUER" --log "$T/upstream.jsonl" \
	>"$T/upstream.out" 2>&1 &
UP_PID=$!
"$BIN/lanyardd" --config "$T/policy.yaml" --pin-dir "$PIN_DIR" --ephemeral \
	2>"$T/lanyardd.log" &
LD_PID=$!
wait_for 10 grep -q listening "$T/upstream.out" ||
	die "the upstream did not start: $(cat "$T/upstream.out")"
wait_for 15 curl -sf "$ISSUER/healthz" ||
	die "lanyardd's admin endpoint $ISSUER/healthz is not up"
wait_for 10 enrolled || die "workload billing is not enrolled (lanyard workloads)"
say "  upstream  http://$UP  (PyJWT: ES256 via $ISSUER/.well-known/jwks.json, aud, iss, exp)"
say "  lanyardd  pid $LD_PID, listener 127.0.0.1:$LISTEN_PORT, bpf pins in $PIN_DIR"
"$BIN/lanyard" --socket "$T/control.sock" workloads | sed 's/^/  | /'

# --- 2. inside the cgroup ------------------------------------------------------------------

step "2. an unmodified curl INSIDE the billing cgroup"
say "  \$ ly-cgexec $CG -- curl -sv http://$UP/invoices"
"$BIN/ly-cgexec" "$CG" -- curl -sv "http://$UP/invoices" >"$T/in.body" 2>"$T/in.err" ||
	die "curl in the cgroup failed: $(tail -n 3 "$T/in.err")"
say "  what the app sent (curl's request head):"
tr -d '\r' <"$T/in.err" | grep '^> ' | grep -v '^> *$' | sed 's/^/    /'
grep -qi '^> authorization' "$T/in.err" && die "curl itself sent an Authorization header"
say "  what the upstream received and verified:"
grep '^< HTTP/' "$T/in.err" | sed 's/^/    /'
grep -q '^< HTTP/1.1 200' "$T/in.err" || die "the upstream refused the request: $(cat "$T/in.body")"
json "$T/in.body" '"\n".join([
	"    verified  %s  (ES256 signature via the JWKS, aud, iss, exp)" % str(d["verified"]).lower(),
	"    sub       " + d["sub"], "    aud       " + d["aud"],
	"    exp       %d = %s  (iat + %d s)" % (d["exp"], __import__("time").strftime(
		"%Y-%m-%d %H:%M:%SZ", __import__("time").gmtime(d["exp"])), d["exp"] - d["iat"]),
	"    jti       " + d["jti"],
	"    token     %d bytes, %s  (the value is never shown)" % (d["token_len"], d["token_sha256"]),
	"    headers   " + ", ".join(d["headers_received"])])'
JTI=$(json "$T/in.body" 'd["jti"]')
FP=$(json "$T/in.body" 'd["token_sha256"]')

# --- 3. audit ------------------------------------------------------------------------------

step "3. the audit log for this flow ($T/audit.jsonl)"
flow_events() {
	"$PY" - "$T/audit.jsonl" "$JTI" <<'EOF'
import json, sys, textwrap
ev = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
flows = {e.get("flow") for e in ev if e.get("jti") == sys.argv[2] and "flow" in e}
for e in ev:
    if e.get("flow") in flows or e.get("jti") == sys.argv[2]:
        rest = " ".join("%s=%s" % (k, v) for k, v in e.items() if k not in ("ts", "event"))
        print(textwrap.fill(rest, 100, initial_indent="  %-17s " % e["event"],
                            subsequent_indent=" " * 20, break_on_hyphens=False))
EOF
}
# flow.close is written when curl's connection closes; give the loop a moment
wait_for 3 grep -q '"flow.close"' "$T/audit.jsonl" || true
flow_events >"$T/flow.txt"
cat "$T/flow.txt"
grep -q 'credential.use' "$T/flow.txt" || die "no credential.use event with jti $JTI"
grep -q "\"jti\":\"$JTI\"" "$T/audit.jsonl" || die "jti $JTI is not in the audit log"
ok "the jti the upstream verified is the one audited"

# --- 4. tokens -----------------------------------------------------------------------------

step "4. lanyard tokens"
"$BIN/lanyard" --socket "$T/control.sock" tokens >"$T/tokens.txt" || die "lanyard tokens failed"
sed 's/^/  | /' "$T/tokens.txt"
grep -q -- "$FP" "$T/tokens.txt" || die "lanyard tokens does not list fingerprint $FP"
ok "its fingerprint $FP is the one the upstream computed from the token it received"

# --- 5. outside the cgroup -----------------------------------------------------------------

step "5. the same curl OUTSIDE the cgroup"
say "  \$ curl -sv http://$UP/invoices"
curl -sv "http://$UP/invoices" >"$T/out.body" 2>"$T/out.err" || die "curl outside failed"
grep '^< HTTP/' "$T/out.err" | sed 's/^/    /'
grep -q '^< HTTP/1.1 401' "$T/out.err" || die "outside the cgroup the upstream did not answer 401"
say "    reason: $(json "$T/out.body" 'd["reason"]')"
ok "not redirected: no credential, the API says 401"

# --- 6. direct connection to lanyardd -----------------------------------------------------

step "6. a process that dials lanyardd's listener itself"
say "  \$ curl -s http://127.0.0.1:$LISTEN_PORT/invoices -H 'Host: $UP'"
if curl -s -o "$T/direct.body" -w '%{http_code}' -H "Host: $UP" \
	"http://127.0.0.1:$LISTEN_PORT/invoices" >"$T/direct.code" 2>/dev/null; then
	say "    answer: HTTP $(cat "$T/direct.code"), $(wc -c <"$T/direct.body") bytes"
else
	say "    connection closed by lanyardd, nothing returned"
fi
grep -q '"flow.reject"' "$T/audit.jsonl" ||
	wait_for 3 grep -q '"flow.reject"' "$T/audit.jsonl" || die "no flow.reject audited"
grep '"flow.reject"' "$T/audit.jsonl" | tail -n 1 >"$T/reject.json"
json "$T/reject.json" '"    audit: flow.reject", d.get("peer", ""), d.get("reason", "")'
[ -s "$T/direct.body" ] && grep -Eq "$JWT_RE" "$T/direct.body" && die "lanyardd returned a token"
ok "no kernel flow record -> no credential"

# --- checks ------------------------------------------------------------------------------

step "checks"
for f in audit.jsonl lanyardd.log upstream.jsonl tokens.txt in.err in.body out.err out.body; do
	[ -e "$T/$f" ] || continue
	grep -Eq "$JWT_RE" "$T/$f" && die "a JWT-shaped string is in $f"
done
ok "no JWT-shaped string (eyJ...) in the audit log, the daemon log, the upstream log,"
say "      curl's output or the CLI output"
say ""
say "demo passed; cleaning up (processes, cgroup $CG_TOP, bpf pins, $T)"
