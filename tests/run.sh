#!/usr/bin/env bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# Copyright (c) 2026 The lanyard authors
#
# Run test binaries and summarise them; the last line is "tests: N passed, M failed".
#   tests/run.sh unit BIN...        Criterion unit tests (Criterion's parallel jobs)
#   tests/run.sh e2e BIN...         Criterion end-to-end tests (--jobs 1: one kernel, one host)
#   tests/run.sh all UNIT... -- fuzz FUZZ... -- E2E...     (make check)
# A binary that crashes or times out without its Criterion synthesis counts as one failure;
# so does each failing fuzz binary.  With LANYARD_REQUIRE_BPF=1 a skipped test is a failure.
# Per-binary time limit: LANYARD_TEST_TIMEOUT seconds (default 900).
set -u

usage() {
	sed -n '5,8s/^# \{0,1\}//p' "$0" >&2
	exit 2
}

[ $# -ge 1 ] || usage
mode=$1
shift

here=$(cd "$(dirname "$0")/.." && pwd)
limit=${LANYARD_TEST_TIMEOUT:-900}
require_bpf=${LANYARD_REQUIRE_BPF:-0}
work=$(mktemp -d /tmp/lanyard-run.XXXXXX) || exit 2
# sanitizer builds: halt on UBSan, leaks of third-party libraries suppressed
export LSAN_OPTIONS="suppressions=$here/tests/lsan.supp:print_suppressions=0${LSAN_OPTIONS:+:$LSAN_OPTIONS}"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}"
trap 'rm -rf "$work"' EXIT

synthesis='Synthesis: Tested: [0-9]+ \| Passing: [0-9]+ \| Failing: [0-9]+ \| Crashing: [0-9]+'
total_pass=0
total_fail=0
nlog=0
failed_logs=()
failed_names=()

# Remember a failing binary's output, shown at the end.
keep_failure() {
	failed_names+=("$1")
	failed_logs+=("$2")
}

# One Criterion binary: run_criterion KIND BIN [ARGS...]
run_criterion() {
	local kind=$1 bin=$2
	shift 2
	local log="$work/$((nlog += 1)).log" rc syn pass fail crash skip leaks note=""

	if [ ! -x "$bin" ]; then
		echo "missing or not executable: $bin" >"$log"
		printf '  FAIL  %-40s not built\n' "$bin"
		total_fail=$((total_fail + 1))
		keep_failure "$bin" "$log"
		return
	fi
	# --verbose prints one [SKIP] line per skipped test, which the synthesis leaves out
	# in a subshell, so that "Segmentation fault" from the shell lands in the log too
	(
		timeout -k 10 "$limit" "$bin" --verbose "$@" </dev/null
		exit $?
	) >"$log" 2>&1
	rc=$?
	sed -i 's/\x1b\[[0-9;]*m//g' "$log"
	syn=$(grep -E "$synthesis" "$log" | tail -n 1)
	skip=$(grep -E '^\[SKIP\] ' "$log" | grep -cv ': Test is disabled$')
	if [ -z "$syn" ]; then
		case $rc in
		124 | 137) note="timed out after ${limit}s" ;;
		*) note="no Criterion synthesis (exit $rc)" ;;
		esac
		printf '  FAIL  %-40s %s\n' "$bin" "$note"
		total_fail=$((total_fail + 1))
		keep_failure "$bin" "$log"
		return
	fi
	pass=$(sed -E 's/.*Passing: ([0-9]+).*/\1/' <<<"$syn")
	fail=$(sed -E 's/.*Failing: ([0-9]+).*/\1/' <<<"$syn") # crashes are in Failing too
	crash=$(sed -E 's/.*Crashing: ([0-9]+).*/\1/' <<<"$syn")
	[ "$crash" -gt 0 ] && note="$note ($crash crashed)"
	if [ "$skip" -gt 0 ]; then
		note="$note, $skip skipped"
		if [ "$require_bpf" = 1 ]; then
			note="$note (LANYARD_REQUIRE_BPF=1: skips fail)"
			fail=$((fail + skip))
		fi
	fi
	if [ "$fail" -eq 0 ] && [ "$rc" -ne 0 ]; then
		note="$note, exit status $rc"
		fail=1
	fi
	# a leak report does not fail a Criterion test by itself
	leaks=$(grep -c 'ERROR: LeakSanitizer' "$log")
	if [ "$leaks" -gt 0 ]; then
		note="$note, $leaks leak reports"
		fail=$((fail + leaks))
	fi
	total_pass=$((total_pass + pass))
	total_fail=$((total_fail + fail))
	if [ "$fail" -gt 0 ]; then
		printf '  FAIL  %-40s %d passed, %d failed%s\n' "$bin" "$pass" "$fail" "$note"
		keep_failure "$bin" "$log"
	else
		printf '  ok    %-40s %d passed%s\n' "$bin" "$pass" "$note"
	fi
}

run_unit() {
	local b
	[ $# -gt 0 ] || return 0
	echo "unit:"
	for b in "$@"; do
		run_criterion unit "$b"
	done
}

run_e2e() {
	local b
	[ $# -gt 0 ] || return 0
	echo "e2e:"
	for b in "$@"; do
		LANYARD_TEST_DUMP=1 run_criterion e2e "$b" --jobs 1
	done
}

# The fuzz smoke run: one `tools/fuzz/run.sh smoke BIN` per binary, so a failure names it.
run_fuzz() {
	local script="$here/tools/fuzz/run.sh" b log rc
	echo "fuzz:"
	if [ ! -x "$script" ]; then
		log="$work/$((nlog += 1)).log"
		echo "tools/fuzz/run.sh is missing or not executable" >"$log"
		printf '  FAIL  %-40s %s\n' "tools/fuzz/run.sh" "missing"
		total_fail=$((total_fail + 1))
		keep_failure "tools/fuzz/run.sh" "$log"
		return
	fi
	[ $# -gt 0 ] || echo "  (no fuzz binaries)"
	for b in "$@"; do
		log="$work/$((nlog += 1)).log"
		timeout -k 10 "$limit" "$script" smoke "$b" >"$log" 2>&1 </dev/null
		rc=$?
		if [ "$rc" -eq 0 ]; then
			printf '  ok    %-40s smoke run clean\n' "$b"
			total_pass=$((total_pass + 1))
		else
			printf '  FAIL  %-40s exit %d\n' "$b" "$rc"
			total_fail=$((total_fail + 1))
			keep_failure "$b" "$log"
		fi
	done
}

case $mode in
unit) run_unit "$@" ;;
e2e) run_e2e "$@" ;;
all)
	units=()
	fuzzes=()
	e2es=()
	while [ $# -gt 0 ] && [ "$1" != "--" ]; do
		units+=("$1")
		shift
	done
	[ $# -gt 0 ] && shift
	[ "${1:-}" = fuzz ] || usage
	shift
	while [ $# -gt 0 ] && [ "$1" != "--" ]; do
		fuzzes+=("$1")
		shift
	done
	[ $# -gt 0 ] && shift
	e2es=("$@")
	run_unit ${units[@]+"${units[@]}"}
	run_fuzz ${fuzzes[@]+"${fuzzes[@]}"}
	run_e2e ${e2es[@]+"${e2es[@]}"}
	;;
*) usage ;;
esac

# What failed, first and short: a CI page that keeps only the start of the output still
# names the failing tests and their assertions.
for i in "${!failed_logs[@]}"; do
	echo
	echo "======== failures in ${failed_names[$i]} ========"
	grep -E -A2 '^\[----\] .*(Assertion Failed|Timed out|crash)|^\[FAIL\] ' \
		"${failed_logs[$i]}" | grep -E '^\[(----|FAIL)\]' | head -n 40
done
# Then each failing binary's output; for e2e binaries only the failing tests' part of it
# (from a test's [RUN ] to the next one, with its dumped logs).
for i in "${!failed_logs[@]}"; do
	echo
	echo "======== output of ${failed_names[$i]} ========"
	awk '
		/^\[RUN \] / { if (sect != "" && bad) printf "%s", sect; sect = ""; bad = 0 }
		{ sect = sect $0 "\n" }
		/^\[FAIL\] |^\[----\] .*(Assertion Failed|Timed out|crash)/ { bad = 1 }
		/^\[====\] Synthesis/ { if (bad) printf "%s", sect; sect = ""; bad = 0; print; next }
		END { if (sect != "") printf "%s", sect }
	' "${failed_logs[$i]}"
done
[ ${#failed_logs[@]} -gt 0 ] && echo
echo "tests: $total_pass passed, $total_fail failed"
[ "$total_fail" -eq 0 ]
