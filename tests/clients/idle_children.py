#!/usr/bin/env python3
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# Copyright (c) 2026 The lanyard authors
"""Many processes that do nothing, for tests of how lanyardd keeps track of processes.

usage: idle_children.py N

Forks N children (os.fork, no exec) that sleep until killed, prints "ready" once all are
running, then sleeps too.  The test's cgroup clean-up kills them all.
"""
import os
import signal
import sys


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    for _ in range(int(sys.argv[1])):
        if os.fork() == 0:
            while True:
                signal.pause()
    print("ready", flush=True)
    while True:
        signal.pause()


if __name__ == "__main__":
    main()
