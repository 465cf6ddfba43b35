#!/usr/bin/python3
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# Copyright (c) 2026 The lanyard authors
#
# raw.py: a raw TCP client for the bad-input tests.  Connects, sends the bytes of a file
# exactly as they are, never half-closes (a partial head must stay partial), and records
# every byte that comes back until EOF, a reset or the timeout.
"""raw.py --host H --port P --send FILE --out FILE [--timeout S] [--split-last N] [--stall S] [--half-close]

exit 0: connected (whatever came back is in --out); 3: connect failed; 2: usage."""

import argparse
import socket
import sys
import time


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--host", required=True)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--send", required=True, help="file with the bytes to send")
    ap.add_argument("--out", required=True, help="file that gets the bytes received")
    ap.add_argument("--timeout", type=float, default=5.0, help="stop reading after S seconds")
    ap.add_argument("--split-last", type=int, default=0,
                    help="send all but the last N bytes, pause 0.3 s, then those N in one write")
    ap.add_argument("--stall", type=float, default=0,
                    help="read nothing for S seconds after sending (a peer that stops reading)")
    ap.add_argument("--half-close", action="store_true",
                    help="shut the write side once everything is sent (shutdown SHUT_WR)")
    args = ap.parse_args()

    with open(args.send, "rb") as f:
        data = f.read()
    family = socket.AF_INET6 if ":" in args.host else socket.AF_INET
    s = socket.socket(family, socket.SOCK_STREAM)
    s.settimeout(5)
    try:
        s.connect((args.host, args.port))
    except OSError as e:
        print(f"raw.py: connect: {e}", file=sys.stderr)
        return 3
    got = bytearray()
    note = "eof"
    try:
        # the server may answer and close before everything is sent (431): keep what it said
        if args.split_last:
            s.sendall(data[: -args.split_last])
            time.sleep(0.3)
            s.sendall(data[-args.split_last :])
        else:
            s.sendall(data)
        if args.half_close:
            s.shutdown(socket.SHUT_WR)
    except OSError as e:
        note = f"send: {e.__class__.__name__}"
    time.sleep(args.stall)
    deadline = time.monotonic() + args.timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            note = "timeout"
            break
        s.settimeout(left)
        try:
            chunk = s.recv(65536)
        except socket.timeout:
            note = "timeout"
            break
        except OSError as e:
            note = f"recv: {e.__class__.__name__}"
            break
        if not chunk:
            break
        got += chunk
    s.close()
    with open(args.out, "wb") as f:
        f.write(got)
    print(f"raw.py: sent {len(data)} bytes, received {len(got)} bytes, ended by {note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
