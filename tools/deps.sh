#!/bin/sh
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# Copyright (c) 2026 The lanyard authors
#
# Install every Debian package that the build, the tests, the demo and the
# bench need.  Idempotent: when everything is present it only runs dpkg-query.
set -eu

PKGS="
clang llvm make gcc pkg-config
libbpf-dev bpftool libelf-dev zlib1g-dev
libssl-dev openssl ca-certificates
libyaml-dev libjansson-dev libcurl4-openssl-dev
libcriterion-dev liburing-dev
curl wget python3 python3-jwt python3-cryptography gnutls-bin golang-go
iproute2 procps psmisc
nginx haproxy wrk
"

missing=""
for p in $PKGS; do
	if ! dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$'; then
		missing="$missing $p"
	fi
done

if [ -z "$missing" ]; then
	exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
	echo "deps.sh: missing packages:$missing (run as root)" >&2
	exit 1
fi

echo "deps.sh: installing:$missing" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing >/dev/null
# Debian starts nginx and haproxy on install; the tests and the bench start
# their own instances on their own ports, so the system units are stopped.
for s in nginx haproxy; do
	if command -v systemctl >/dev/null 2>&1; then
		systemctl stop "$s" >/dev/null 2>&1 || true
		systemctl disable "$s" >/dev/null 2>&1 || true
	fi
	pkill -x "$s" >/dev/null 2>&1 || true
done
exit 0
