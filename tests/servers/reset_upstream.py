#!/usr/bin/env python3
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# Copyright (c) 2026 The lanyard authors
"""An upstream that answers with more than its client reads, then resets the connection.

usage: reset_upstream.py PORT

For each connection: reads a request head, sends a 200 head announcing 64 MiB and as much
of the body as the socket takes for one second, then closes with SO_LINGER 0 (a reset).
Prints "ready" once listening and "reset" after each reset.
"""
import socket
import struct
import sys
import time


def serve(conn):
    conn.settimeout(5)
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = conn.recv(4096)
        if not chunk:
            return
        head += chunk
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 67108864\r\n\r\n")
    conn.setblocking(False)
    block = b"r" * 65536
    deadline = time.monotonic() + 1.0
    while time.monotonic() < deadline:
        try:
            conn.send(block)
        except BlockingIOError:
            time.sleep(0.01)
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    conn.close()
    print("reset", flush=True)


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", int(sys.argv[1])))
    s.listen(8)
    print("ready", flush=True)
    while True:
        conn, _ = s.accept()
        serve(conn)


if __name__ == "__main__":
    main()
