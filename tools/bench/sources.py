#!/usr/bin/python3
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# Copyright (c) 2026 The lanyard authors
#
# The credential-source part of `make bench` (tools/bench.sh): the table of the wrk runs
# against a jwt route and an oauth2 route, and the issuance latency of each source, driven
# through lanyard's CLI and read from lanyardd's audit log.  It never prints a credential:
# only route names, fingerprints and times.
"""sources.py hot RESDIR ROUNDS BASE:LABEL:TOKEN_LEN OTHER:LABEL:TOKEN_LEN...
sources.py issue --lanyard BIN --socket PATH --audit FILE --workload NAME --n N

hot: reads the WRK_RESULT line of RESDIR/TARGET.ROUND (tools/bench/report.lua) for each
  target and prints req/s, p50, p99 and the ratio OTHER/BASE (per round, then the median).
issue: for each route of the workload, N times in turn: revoke its current credential by
  fingerprint (`lanyard revoke --jti`), which makes lanyardd issue a fresh one at once, and
  wait for the credential.issue audit event of that route; prints took_us (the time the
  worker spent fetching, or the loop signing) per source, and the time from the revoke to
  the new credential by lanyardd's own audit timestamps.  A static source reads its file
  again (unchanged).
"""

import argparse
import datetime
import json
import math
import os
import statistics
import subprocess
import sys
import time

WAIT_S = 10  # for one issuance; the slowest source here takes a few milliseconds


def die(msg):
    print(f"sources.py: {msg}", file=sys.stderr, flush=True)
    sys.exit(1)


# --- hot path ---------------------------------------------------------------------------------


def wrk_result(path):
    with open(path, encoding="utf-8") as f:
        line = next((l for l in f if l.startswith("WRK_RESULT")), None)
    if line is None:
        die(f"{path}: no WRK_RESULT line")
    kv = {k: int(v) for k, v in (x.split("=") for x in line.split()[1:])}
    kv["rps"] = kv["requests"] / (kv["duration_us"] / 1e6)
    kv["errors"] = sum(v for k, v in kv.items() if k.startswith("err_"))
    return kv


def hot(args):
    rounds = int(args.rounds)
    targets = [t.split(":", 2) for t in args.targets]
    runs = {t: [wrk_result(f"{args.resdir}/{t}.{r}") for r in range(1, rounds + 1)]
            for t, _, _ in targets}
    base = targets[0][0]
    # a round's runs are back to back: the ratio cancels most of the machine's drift
    ratios = {t: [x["rps"] / b["rps"] for x, b in zip(runs[t], runs[base])]
              for t, _, _ in targets}
    print("  %-20s %6s %9s %8s %8s %6s %6s   %s" % ("route (credential)", "token", "req/s",
                                                   "p50 ms", "p99 ms", "ratio", "errors",
                                                   "ratio per round"))
    for t, label, tlen in targets:
        x = runs[t]
        print("  %-20s %6s %9.0f %8.3f %8.3f %6.2f %6d   %s" % (
            label, tlen, statistics.median(r["rps"] for r in x),
            statistics.median(r["p50_us"] for r in x) / 1000,
            statistics.median(r["p99_us"] for r in x) / 1000,
            statistics.median(ratios[t]), sum(r["errors"] for r in x),
            " ".join("%.2f" % v for v in ratios[t])))
    print("\n  req/s, median of the rounds' ratios (token: bytes of the bearer token): %s" %
          ", ".join("%s / %s %.2f" % (label.split()[0], targets[0][1].split()[0],
                                      statistics.median(ratios[t]))
                    for t, label, _ in targets[1:]))
    if any(r["errors"] for t, _, _ in targets for r in runs[t]):
        print("  note: a target had socket errors or non-2xx answers (errors column)")


# --- issuance latency -------------------------------------------------------------------------


class Audit:
    """The audit log from its current end: complete JSON lines as they are appended."""

    def __init__(self, path):
        self.f = open(path, "rb")  # noqa: SIM115 - open for the whole run
        self.f.seek(0, os.SEEK_END)
        self.partial = b""

    def lines(self):
        data = self.partial + self.f.read()
        *full, self.partial = data.split(b"\n")
        out = []
        for raw in full:
            try:
                out.append(json.loads(raw))
            except ValueError:
                die("a line of the audit log is not JSON")
        return out


def ts_us(event):
    """The audit timestamp ("2026-11-23T08:41:07.214711Z") in microseconds."""
    t = datetime.datetime.strptime(event["ts"], "%Y-%m-%dT%H:%M:%S.%fZ")
    return int(t.replace(tzinfo=datetime.timezone.utc).timestamp() * 1e6)


def cli(args, *argv):
    """One lanyard CLI call: (exit code, output)."""
    p = subprocess.run([args.lanyard, "--socket", args.socket, *argv], capture_output=True,
                       text=True, timeout=30, check=False)
    return p.returncode, p.stdout + p.stderr


def tokens(args):
    rc, out = cli(args, "--json", "tokens")
    if rc:
        die(f"lanyard tokens failed: {out.strip()}")
    return [t for t in json.loads(out)["tokens"] if t["workload"] == args.workload]


def fingerprint(args, route):
    """The route's current fingerprint, once it has a credential."""
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        t = next(t for t in tokens(args) if t["route"] == route)
        if t.get("fingerprint"):
            return t["fingerprint"]
        time.sleep(0.01)
    die(f"route {route} has no credential: {t.get('error') or 'none issued'}")
    return None


def issue_once(args, audit, route, typ):
    """Revoke the route's credential and wait for the next one: (took_us, revoke_to_new_us)."""
    fp = fingerprint(args, route)
    audit.lines()  # what came before the revoke is not this issuance's
    rc, out = cli(args, "revoke", "--jti", fp)
    if rc:
        die(f"lanyard revoke --jti {fp} ({route}) failed: {out.strip()}")
    issued = revoked = None
    deadline = time.monotonic() + WAIT_S
    while issued is None and time.monotonic() < deadline:
        for e in audit.lines():
            if e.get("event") == "credential.revoke" and e.get("jti") == fp:
                revoked = e
            elif (e.get("event") == "credential.issue" and e.get("workload") == args.workload
                  and e.get("route") == route):
                issued = e
        if issued is None:
            time.sleep(0.002)
    if issued is None:
        die(f"no credential.issue for {route} ({typ}) within {WAIT_S} s of the revoke")
    if issued.get("type") != typ:
        die(f"route {route}: issued type {issued.get('type')}, expected {typ}")
    # jwt: signed inside the revoke command, so its issue event comes first (no wait at all)
    gap = None
    if revoked is not None and typ != "jwt":
        gap = ts_us(issued) - ts_us(revoked)
    return int(issued["took_us"]), gap


def pct(values, p):
    """Nearest-rank percentile."""
    v = sorted(values)
    return v[max(0, math.ceil(p / 100 * len(v)) - 1)]


def issue(args):
    routes = [(t["route"], t["type"]) for t in tokens(args)]
    if not routes:
        die(f"workload {args.workload} has no routes")
    audit = Audit(args.audit)
    took = {r: [] for r, _ in routes}
    gaps = {r: [] for r, _ in routes}
    t0 = time.monotonic()
    # round robin over the sources, so that slow drift of the machine touches them alike
    for _ in range(args.n):
        for route, typ in routes:
            us, gap = issue_once(args, audit, route, typ)
            took[route].append(us)
            if gap is not None:
                gaps[route].append(gap)
    print("  %d issuances per source, triggered by `lanyard revoke --jti`, round robin (%.1f s)"
          % (args.n, time.monotonic() - t0))
    print("  %-16s %5s %10s %10s %10s   %s" % ("source", "n", "p50 ms", "p90 ms", "max ms",
                                               "revoke to new credential, p50 ms"))
    for route, typ in routes:
        v = took[route]
        g = ("%.3f" % (statistics.median(gaps[route]) / 1000) if gaps[route]
             else "- (signed inside the revoke)" if typ == "jwt" else "-")
        print("  %-16s %5d %10.3f %10.3f %10.3f   %s" % (
            typ, len(v), pct(v, 50) / 1000, pct(v, 90) / 1000, max(v) / 1000, g))


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    h = sub.add_parser("hot")
    h.add_argument("resdir")
    h.add_argument("rounds")
    h.add_argument("targets", nargs="+", metavar="TARGET:LABEL:TOKEN_LEN")
    i = sub.add_parser("issue")
    i.add_argument("--lanyard", required=True)
    i.add_argument("--socket", required=True)
    i.add_argument("--audit", required=True)
    i.add_argument("--workload", required=True)
    i.add_argument("--n", type=int, default=20)
    args = ap.parse_args()
    if args.cmd == "issue" and args.n < 1:
        die("--n must be at least 1")
    if args.cmd == "hot":
        hot(args)
    else:
        issue(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
