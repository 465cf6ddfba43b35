#!/usr/bin/python3
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# Copyright (c) 2026 The lanyard authors
#
# keepalive.py: an ordinary long-running app.  http.client on ONE keep-alive connection
# (auto_open off: a dropped connection is an error, not a silent reconnect), a request
# every --interval seconds for --duration seconds or --count requests, then optionally
# --hold seconds of sleep with every response body still in memory.
"""keepalive.py --host H --port P [--interval S] [--duration S | --count N] [--hold S]"""

import argparse
import http.client
import json
import sys
import time


def say(obj):
    print(json.dumps(obj, separators=(",", ":")), flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--host", required=True)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--interval", type=float, default=0.3)
    ap.add_argument("--duration", type=float, default=0)
    ap.add_argument("--count", type=int, default=0)
    ap.add_argument("--path", default="/ka")
    ap.add_argument("--hold", type=float, default=0, help="sleep this long at the end")
    args = ap.parse_args()

    conn = http.client.HTTPConnection(args.host, args.port, timeout=10)
    conn.connect()
    conn.auto_open = 0
    bodies = []  # kept on purpose: the memory test looks for them
    ok = failed = 0
    i = 0
    end = time.monotonic() + args.duration
    while (args.count and i < args.count) or (not args.count and time.monotonic() < end):
        i += 1
        t0 = time.time()
        try:
            conn.request("GET", f"{args.path}/{i}")
            resp = conn.getresponse()
            body = resp.read()
            bodies.append(body)
            say({"i": i, "status": resp.status, "t0": t0, "t": time.time()})
            if resp.status == 200:
                ok += 1
            else:
                failed += 1
        except (OSError, http.client.HTTPException) as e:
            failed += 1
            say({"i": i, "error": e.__class__.__name__, "t0": t0, "t": time.time()})
            break
        time.sleep(args.interval)
    say({"done": True, "ok": ok, "failed": failed})
    if args.hold:
        say({"holding": True, "bodies": len(bodies)})
        time.sleep(args.hold)
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
