#!/usr/bin/env python3
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# Copyright (c) 2026 The lanyard authors
"""A TLS client whose own SSL_write the tests can look at.

usage: probed.py CAFILE PORT PATH [--go FILE] [--fork] [--hold]

Loads the host's libssl through Python's ssl module, prints "ssl_write 0x<address>" and
"ssl_write_ex 0x<address>" (where they are in this process) and "ready", then waits until FILE exists (--go), and sends
one HTTPS request GET PATH to localhost:PORT with an X-Api-Key header.  With --fork the
request is sent by a child made with os.fork() (no exec) at once, which prints
"child <pid>" and waits for FILE itself.
Prints "status <code>" for the request; with --hold it then sleeps until killed.
"""
import ctypes
import http.client
import os
import ssl
import sys
import time


def request(cafile, port, path):
    ctx = ssl.create_default_context(cafile=cafile)
    conn = http.client.HTTPSConnection("localhost", port, context=ctx, timeout=10)
    conn.request("GET", path, headers={"X-Api-Key": "probed-" + path.strip("/")})
    resp = conn.getresponse()
    resp.read()
    conn.close()
    print("status %d" % resp.status, flush=True)


def wait_for(path):
    while path and not os.path.exists(path):
        time.sleep(0.05)


def main():
    args = sys.argv[1:]
    if len(args) < 3:
        sys.exit(__doc__)
    cafile, port, path = args[0], int(args[1]), args[2]
    go = args[args.index("--go") + 1] if "--go" in args else None
    # the ssl module loaded libssl.so.3 already: dlopen hands back that copy
    libssl = ctypes.CDLL("libssl.so.3")
    for name in ("SSL_write", "SSL_write_ex"):
        addr = ctypes.cast(getattr(libssl, name), ctypes.c_void_p).value
        print("%s 0x%x" % (name.lower(), addr), flush=True)
    print("ready", flush=True)
    if "--fork" in args:
        pid = os.fork()
        if pid == 0:
            print("child %d" % os.getpid(), flush=True)
            wait_for(go)
            request(cafile, port, path)
            os._exit(0)
        _, status = os.waitpid(pid, 0)
        if status:
            sys.exit(1)
    else:
        wait_for(go)
        request(cafile, port, path)
    while "--hold" in args:
        time.sleep(1)


if __name__ == "__main__":
    main()
