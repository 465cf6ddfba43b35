#!/usr/bin/python3
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# Copyright (c) 2026 The lanyard authors
#
# driver.py: ONE keep-alive HTTP/1.1 connection driven by a test.  Each line "GET /path"
# read from the FIFO sends one request on that connection and prints the result as one
# JSON line.  It never reconnects, so a test knows every answer came on the same
# connection (and sees when that connection was closed).
"""driver.py --host H --port P --fifo PATH"""

import argparse
import json
import socket
import sys


def say(obj):
    print(json.dumps(obj, separators=(",", ":")), flush=True)


def read_response(f):
    """One response from the buffered socket file: (status, headers, body) or None at EOF."""
    line = f.readline()
    if not line:
        return None
    parts = line.decode("latin-1").split(" ", 2)
    status = int(parts[1])
    headers = {}
    while True:
        h = f.readline()
        if not h:
            return None
        if h in (b"\r\n", b"\n"):
            break
        name, _, value = h.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    if 100 <= status < 200:
        return read_response(f)  # interim: the final answer follows
    body = f.read(int(headers.get("content-length", "0")))
    return status, headers, body.decode("latin-1")


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--host", required=True)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--fifo", required=True)
    args = ap.parse_args()

    family = socket.AF_INET6 if ":" in args.host else socket.AF_INET
    s = socket.socket(family, socket.SOCK_STREAM)
    s.settimeout(10)
    try:
        s.connect((args.host, args.port))
    except OSError as e:
        say({"connected": False, "error": str(e)})
        return 1
    local = s.getsockname()
    say({"connected": True, "local": f"{local[0]}:{local[1]}"})
    f = s.makefile("rb")
    host = f"[{args.host}]" if ":" in args.host else args.host
    closed = False
    n = 0
    with open(args.fifo, "r", encoding="ascii") as cmds:
        for cmd in cmds:
            words = cmd.split()
            if not words:
                continue
            if words[0] == "quit":
                break
            n += 1
            if closed:
                say({"n": n, "error": "closed"})
                continue
            req = f"GET {words[1]} HTTP/1.1\r\nHost: {host}:{args.port}\r\n\r\n"
            try:
                s.sendall(req.encode("ascii"))
                r = read_response(f)
            except OSError as e:
                r = None
                say({"n": n, "error": f"{e.__class__.__name__}"})
                closed = True
                continue
            if r is None:
                closed = True
                say({"n": n, "error": "closed"})
                continue
            status, headers, body = r
            say({"n": n, "status": status, "headers": headers, "body": body})
            if headers.get("connection", "").lower() == "close":
                closed = True
    s.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
