#!/bin/sh
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# Copyright (c) 2026 The lanyard authors
#
# Run libFuzzer binaries: tools/fuzz/run.sh smoke|long BIN...
# Each fuzz_NAME starts from a temp copy of tools/fuzz/corpus/NAME/ (the repo corpus is
# never modified) and tools/fuzz/NAME.dict when present.  Prints one line per fuzzer;
# exits non-zero if any crashed, keeping the crashing input under <bindir>/artifacts/.
# Extra libFuzzer flags may be passed in FUZZ_ARGS (e.g. FUZZ_ARGS=-max_len=70000).
set -eu

usage() {
	echo "usage: $0 smoke|long BIN..." >&2
	exit 2
}

[ $# -ge 1 ] || usage
case "$1" in
smoke) secs=10 ;;
long) secs=300 ;;
*) usage ;;
esac
shift

here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d "${TMPDIR:-/tmp}/lanyard-fuzz.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
trap 'exit 130' INT TERM

# a UBSan report must stop the run like an ASan one does (the build lets UB recover)
export UBSAN_OPTIONS="${UBSAN_OPTIONS:+$UBSAN_OPTIONS:}halt_on_error=1:print_stacktrace=1"

failed=0
for bin in "$@"; do
	name=$(basename "$bin")
	short=${name#fuzz_}
	if [ ! -x "$bin" ]; then
		echo "fuzz: $name FAILED (no such executable: $bin)"
		failed=1
		continue
	fi
	corpus="$tmp/$short"
	mkdir -p "$corpus"
	if [ -d "$here/corpus/$short" ]; then
		cp -R "$here/corpus/$short/." "$corpus/"
	fi
	artifacts="$(cd "$(dirname "$bin")" && pwd)/artifacts/$name"
	mkdir -p "$artifacts"
	dict=""
	if [ -f "$here/$short.dict" ]; then
		dict="-dict=$here/$short.dict"
	fi
	log="$tmp/$name.log"
	# shellcheck disable=SC2086
	if "$bin" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=0 \
		-artifact_prefix="$artifacts/" $dict ${FUZZ_ARGS:-} "$corpus" >"$log" 2>&1; then
		runs=$(sed -n 's/^Done \([0-9][0-9]*\) runs.*/\1/p' "$log" | tail -n 1)
		echo "fuzz: $name ok (${runs:-?} runs)"
	else
		echo "fuzz: $name FAILED (exit $?), last lines of its log:"
		tail -n 40 "$log" | sed 's/^/    /'
		echo "    crashing inputs: $artifacts/"
		failed=1
	fi
done
exit "$failed"
