-- SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
-- Copyright (c) 2026 The lanyard authors
--
-- wrk script of `make bench`: prints one machine-readable line at the end of a run, so
-- bench.sh does not parse wrk's human units.  Latencies are in microseconds.
done = function(summary, latency, requests)
	local e = summary.errors
	io.write(string.format(
		"WRK_RESULT requests=%d duration_us=%d p50_us=%d p99_us=%d " ..
		"err_connect=%d err_read=%d err_write=%d err_status=%d err_timeout=%d\n",
		summary.requests, summary.duration,
		latency:percentile(50), latency:percentile(99),
		e.connect, e.read, e.write, e.status, e.timeout))
end
