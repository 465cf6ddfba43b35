// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Copyright (c) 2026 The lanyard authors */
/*
 * The kernel join of TLS observation (bpf/tls.bpf.c + tlsobs.c): real clients (curl with
 * OpenSSL, wget with GnuTLS, python3's ssl) in real cgroups write through uprobed libraries;
 * the audit's flow.tls must name the right SNI, method, path, pid and flow, and must stay
 * silent for unenrolled cgroups and for lanyardd's own TLS writes.
 */
#include <dirent.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <criterion/criterion.h>

#include "lib/lanyard.h"
#include "lib/tlsfix.h"

TestSuite(uprobe, H_FIXTURES, .timeout = 90);

#define SECRET_KEY "uprobe-test-key-5f1e9c"
#define SECRET_QUERY "uprobe-test-query-77ab0d"

/*
 * A TLS upstream (the test CA's certificate for localhost); workload "obs" in mode observe;
 * workload "app" enforced with a passthrough route to localhost:<up_port> and an originate
 * route localhost:<orig_port> -> the same upstream.
 */
struct world {
	struct ly_daemon d;
	struct tlsfix_ca *ca;
	const char *obs, *app;	/* cgroups */
	int up_port, orig_port;
	const char *up_log;
};

static void world_start(struct world *w)
{
	char *cert = NULL, *key = NULL;
	const char *routes;

	memset(w, 0, sizeof(*w));
	h_require_root_bpf();
	w->ca = ly_ca_and_server("uprobe test root", &cert, &key);
	w->up_port = ly_tls_upstream("up", cert, key, NULL);
	w->orig_port = h_free_port();
	w->up_log = h_path("up.jsonl");
	w->obs = h_cgroup_create("obs");
	w->app = h_cgroup_create("app");
	cr_assert(w->obs && w->app);
	routes = h_strf("      - to: \"localhost:%d\"\n        tls: passthrough\n%s"
			"        tls: originate\n        ca_file: %s\n        upstream: { port: %d }\n",
			w->up_port, ly_yaml_route(h_strf("localhost:%d", w->orig_port), LY_AUD, "5m",
						  NULL),
			tlsfix_ca_cert_path(w->ca), w->up_port);
	ly_start(&w->d, h_strf("  - name: obs\n    match: { cgroup: %s }\n    mode: observe\n%s",
			       w->obs, ly_yaml_workload("app", w->app, routes)));
}

static const char *url(const struct world *w, const char *path)
{
	return h_strf("https://localhost:%d%s", w->up_port, path);
}

static const char *str_of(const json_t *o, const char *key)
{
	return json_string_value(json_object_get(o, key));
}

/* The flow.tls record whose path is @path; NULL after @timeout_ms.  New reference. */
static json_t *wait_tls(const struct world *w, const char *path, int timeout_ms)
{
	for (int i = 0; i <= timeout_ms / 50; i++) {
		json_t *all = ly_jsonl_all(w->d.audit, "event", "flow.tls"), *ev;
		size_t k;

		json_array_foreach(all, k, ev) {
			const char *p = str_of(ev, "path");

			if (p && !strcmp(p, path)) {
				json_incref(ev);
				json_decref(all);
				return ev;
			}
		}
		json_decref(all);
		usleep(50 * 1000);
	}
	return NULL;
}

/* Neither secret the clients sent is in lanyardd's audit or output. */
static void expect_no_secrets(const struct world *w)
{
	const char *secrets[] = { SECRET_KEY, SECRET_QUERY };

	for (size_t i = 0; i < 2; i++)
		cr_expect_eq(h_grep_tree_for(secrets[i], w->d.audit, h_out_path(w->d.name),
					     h_err_path(w->d.name), NULL), 0,
			     "a secret the client sent is in lanyardd's output");
}

/* curl's request from the observed cgroup: a flow.tls with its SNI, method, path, pid. */
static void curl_is_tagged(struct world *w)
{
	json_t *ev;
	pid_t pid;

	pid = h_spawnl("curl", w->obs, LY_CURL, "--cacert", tlsfix_ca_cert_path(w->ca), "-H",
		       "X-Api-Key: " SECRET_KEY, url(w, "/v1/items?key=" SECRET_QUERY), NULL);
	cr_assert_gt(pid, 0);
	cr_assert_eq(h_wait_exit(pid, 15000), 0, "curl failed");
	ev = wait_tls(w, "/v1/items", 5000);
	cr_assert(ev, "no flow.tls for curl's request");
	cr_expect_str_eq(str_of(ev, "sni"), "localhost");
	cr_expect_str_eq(str_of(ev, "method"), "GET");
	cr_expect_str_eq(str_of(ev, "lib"), "openssl");
	cr_expect_str_eq(str_of(ev, "workload"), "obs");
	cr_expect_str_eq(str_of(ev, "exe"), "/usr/bin/curl");
	cr_expect_str_eq(str_of(ev, "dst"), h_strf("localhost:%d", w->up_port));
	cr_expect_eq(json_integer_value(json_object_get(ev, "pid")), pid);
	cr_expect_eq((uint64_t)json_integer_value(json_object_get(ev, "cgroup")),
		     h_cgroup_id(w->obs));
	cr_expect_eq(json_integer_value(json_object_get(ev, "flow")), 0, "observed: not a flow");
	/* curl gives OpenSSL a BIO of its own, no fd: only the send hook names the socket */
	cr_expect_eq(ly_kernel_stat(&w->d, "tls_nofd"), 0, "a write whose socket was not seen");
	json_decref(ev);
	expect_no_secrets(w);
}

Test(uprobe, curl_openssl_in_an_observed_cgroup_is_tagged_with_sni_method_path_and_pid)
{
	struct world w;

	world_start(&w);
	curl_is_tagged(&w);
	tlsfix_ca_free(w.ca);
}

Test(uprobe, wget_gnutls_in_an_observed_cgroup_is_tagged)
{
	struct world w;
	json_t *ev;
	pid_t pid;

	world_start(&w);
	pid = h_spawnl("wget", w.obs, "wget", "-q", "-O", "/dev/null", "--no-proxy",
		       "--ca-certificate", tlsfix_ca_cert_path(w.ca), "--header",
		       "Authorization: Basic " SECRET_KEY, url(&w, "/gnu/path"), NULL);
	cr_assert_gt(pid, 0);
	cr_assert_eq(h_wait_exit(pid, 15000), 0, "wget failed");
	ev = wait_tls(&w, "/gnu/path", 5000);
	cr_assert(ev, "no flow.tls for wget's request");
	cr_expect_str_eq(str_of(ev, "lib"), "gnutls");
	cr_expect_str_eq(str_of(ev, "sni"), "localhost");
	cr_expect_str_eq(str_of(ev, "method"), "GET");
	cr_expect_eq(json_integer_value(json_object_get(ev, "pid")), pid);
	json_decref(ev);
	expect_no_secrets(&w);
	tlsfix_ca_free(w.ca);
}

Test(uprobe, a_client_in_an_unenrolled_cgroup_produces_nothing)
{
	struct world w;
	const char *other;
	json_t *req, *ev;
	char *out = NULL;

	world_start(&w);
	other = h_cgroup_create("other");
	cr_assert_eq(ly_curl(other, &out, "--cacert", tlsfix_ca_cert_path(w.ca),
			     url(&w, "/unenrolled"), NULL), 0, "curl: %s", out);
	free(out);
	req = h_jsonl_wait(w.up_log, "target", "/unenrolled", 5000);
	cr_assert(req, "the upstream never received /unenrolled");
	json_decref(req);
	/* the same request from the observed cgroup shows up: the probes do work */
	cr_assert_eq(ly_curl(w.obs, &out, "--cacert", tlsfix_ca_cert_path(w.ca),
			     url(&w, "/observed"), NULL), 0, "curl: %s", out);
	free(out);
	ev = wait_tls(&w, "/observed", 5000);
	cr_assert(ev, "no flow.tls for the observed request");
	json_decref(ev);
	cr_expect_null(wait_tls(&w, "/unenrolled", 0), "an unenrolled cgroup was observed");
	tlsfix_ca_free(w.ca);
}

/* python3 (OpenSSL through _ssl) keeps a passthrough connection open after one request. */
static const char py_hold[] =
	"import socket, ssl, sys, time\n"
	"ctx = ssl.create_default_context(cafile=sys.argv[1])\n"
	"s = ctx.wrap_socket(socket.create_connection(('localhost', int(sys.argv[2]))),\n"
	"                    server_hostname='localhost')\n"
	"s.sendall(b'GET /pt/held?q=" SECRET_QUERY " HTTP/1.1\\r\\nHost: localhost\\r\\n\\r\\n')\n"
	"print(s.recv(4096)[:12], flush=True)\n"
	"time.sleep(float(sys.argv[3]))\n";

/* The flow of `lanyard flows --json` whose sni is @sni; NULL after 5 s.  New reference. */
static json_t *wait_flow_sni(const struct world *w, const char *sni)
{
	for (int i = 0; i < 100; i++) {
		json_t *r = ly_cli_json(&w->d, "flows"), *f;
		size_t k;

		json_array_foreach(json_object_get(r, "flows"), k, f) {
			const char *s = str_of(f, "sni");

			if (s && !strcmp(s, sni)) {
				json_incref(f);
				json_decref(r);
				return f;
			}
		}
		json_decref(r);
		usleep(50 * 1000);
	}
	return NULL;
}

Test(uprobe, a_passthrough_flow_is_joined_to_its_sni_and_request)
{
	struct world w;
	json_t *flow, *ev, *open;
	const char *script;
	pid_t pid;

	world_start(&w);
	script = h_path("hold.py");
	cr_assert_eq(h_write_file(script, py_hold, 0644), 0);
	pid = h_spawnl("hold", w.app, LY_PYTHON, script, tlsfix_ca_cert_path(w.ca),
		       h_strf("%d", w.up_port), "4", NULL);
	cr_assert_gt(pid, 0);
	cr_assert_eq(h_wait_output(pid, "HTTP/1.1", 10000), 0, "the passthrough request failed");
	flow = wait_flow_sni(&w, "localhost");
	cr_assert(flow, "lanyard flows shows no flow with sni localhost");
	cr_expect_str_eq(str_of(flow, "request"), "GET /pt/held");
	ev = wait_tls(&w, "/pt/held", 5000);
	cr_assert(ev, "no flow.tls for the passthrough request");
	cr_expect_eq(json_integer_value(json_object_get(ev, "flow")),
		     json_integer_value(json_object_get(flow, "flow")), "not joined to its flow");
	cr_expect_str_eq(str_of(ev, "sni"), "localhost");
	cr_expect_str_eq(str_of(ev, "workload"), "app");
	cr_expect_str_eq(str_of(ev, "dst"), h_strf("localhost:%d", w.up_port));
	cr_expect_eq(json_integer_value(json_object_get(ev, "pid")), pid);
	/* the first record of that flow id is its flow.open, a passthrough one */
	open = h_jsonl_find(w.d.audit, "flow",
			    h_strf("%lld", json_integer_value(json_object_get(flow, "flow"))));
	cr_expect_str_eq(str_of(open, "event"), "flow.open");
	cr_expect_str_eq(str_of(open, "mode"), "passthrough");
	json_decref(open);
	json_decref(ev);
	json_decref(flow);
	expect_no_secrets(&w);
	tlsfix_ca_free(w.ca);
}

/* lanyardd's own TLS writes (an originated request, with its credential) are not seen. */
static void own_writes_unseen(struct world *w)
{
	json_t *req, *all, *ev;
	char *out = NULL;
	size_t k;

	/* plain HTTP from the enforced app; lanyardd itself writes TLS (with a credential) */
	cr_assert_eq(ly_curl(w->app, &out, h_strf("http://localhost:%d/orig", w->orig_port), NULL),
		     0, "curl: %s", out);
	free(out);
	req = h_jsonl_wait(w->up_log, "target", "/orig", 5000);
	cr_assert(req, "the upstream never received /orig");
	cr_expect(ly_req_token(req, "authorization", "Bearer "), "no credential was injected");
	json_decref(req);
	/* a request the probes see, so that the check below is not vacuous */
	cr_assert_eq(ly_curl(w->obs, &out, "--cacert", tlsfix_ca_cert_path(w->ca),
			     url(w, "/after"), NULL), 0, "curl: %s", out);
	free(out);
	ev = wait_tls(w, "/after", 5000);
	cr_assert(ev, "no flow.tls for the observed request");
	json_decref(ev);
	all = ly_jsonl_all(w->d.audit, "event", "flow.tls");
	json_array_foreach(all, k, ev) {
		cr_expect_neq(json_integer_value(json_object_get(ev, "pid")), w->d.pid,
			      "lanyardd's own write was observed");
		cr_expect(!str_of(ev, "path") || strcmp(str_of(ev, "path"), "/orig"),
			  "the originated request was observed");
	}
	json_decref(all);
}

Test(uprobe, lanyardds_own_tls_writes_produce_nothing)
{
	struct world w;

	world_start(&w);
	own_writes_unseen(&w);
	tlsfix_ca_free(w.ca);
}

/*
 * Plain HTTP from the observed cgroup is captured with no library; the enforced
 * workload's is not (it goes through lanyardd).
 */
static void plain_is_captured(struct world *w)
{
	int plain_port;
	json_t *ev;
	char *out = NULL;

	plain_port = h_free_port();
	cr_assert_gt(h_upstream("plain", plain_port, NULL), 0);
	cr_assert_eq(ly_curl(w->obs, &out, "-H", "X-Api-Key: " SECRET_KEY,
			     h_strf("http://127.0.0.1:%d/plain/path?k=%s", plain_port, SECRET_QUERY),
			     NULL), 0, "curl: %s", out);
	free(out);
	ev = wait_tls(w, "/plain/path", 5000);
	cr_assert(ev, "no flow.tls for the plain request");
	cr_expect_str_eq(str_of(ev, "lib"), "plain");
	cr_expect_str_eq(str_of(ev, "method"), "GET");
	cr_expect_null(json_object_get(ev, "sni"));
	cr_expect_str_eq(str_of(ev, "dst"), h_strf("127.0.0.1:%d", plain_port));
	json_decref(ev);
	/* the enforced workload's plain HTTP is lanyardd's to see, not the write hook's */
	cr_assert_eq(ly_curl(w->app, &out, h_strf("http://127.0.0.1:%d/app/plain", plain_port),
			     NULL), 0, "curl: %s", out);
	free(out);
	ev = h_jsonl_wait(h_path("plain.jsonl"), "target", "/app/plain", 5000);
	cr_assert(ev, "the upstream never received /app/plain");
	json_decref(ev);
	cr_expect_null(wait_tls(w, "/app/plain", 500), "an enforced workload's plain write");
	expect_no_secrets(w);
}

Test(uprobe, plain_http_of_an_observed_workload_is_captured_without_a_library)
{
	struct world w;

	world_start(&w);
	plain_is_captured(&w);
	tlsfix_ca_free(w.ca);
}

/*
 * The raw tracepoints lanyardd (pid) holds links to, each name followed by a space;
 * asserts.  The links' ids are in its fds' fdinfo.
 */
static char *tracepoints_held(pid_t pid)
{
	DIR *d = opendir(h_strf("/proc/%d/fdinfo", pid));
	struct dirent *de;
	char *names = h_strf("%s", "");

	cr_assert(d, "lanyardd is gone");
	while ((de = readdir(d))) {
		char *info = de->d_name[0] == '.' ? NULL :
			     h_read_file(h_strf("/proc/%d/fdinfo/%s", pid, de->d_name), NULL);
		const char *at = info ? strstr(info, "link_id:") : NULL;
		struct bpf_link_info li = { 0 };
		__u32 len = sizeof(li);
		char tp[64] = "";
		int fd;

		fd = at ? bpf_link_get_fd_by_id((__u32)strtoul(at + 8, NULL, 10)) : -1;
		free(info);
		if (fd < 0)
			continue;
		li.raw_tracepoint.tp_name = (__u64)(uintptr_t)tp;
		li.raw_tracepoint.tp_name_len = sizeof(tp);
		if (bpf_obj_get_info_by_fd(fd, &li, &len) == 0 &&
		    li.type == BPF_LINK_TYPE_RAW_TRACEPOINT)
			names = h_strf("%s%s ", names, tp);
		close(fd);
	}
	closedir(d);
	return names;
}

/* Has the running kernel the sock_send_length tracepoint (Linux 6.3)?  Its BTF says. */
static bool kernel_has_send_tracepoint(void)
{
	size_t len = 0;
	char *btf = h_read_file("/sys/kernel/btf/vmlinux", &len);
	const char *name = "btf_trace_sock_send_length";
	bool has;

	cr_assert(btf, "no kernel BTF");
	has = memmem(btf, len, name, strlen(name) + 1) != NULL;
	free(btf);
	return has;
}

/* Linux 6.3+: sends are seen at sock_send_length; no hook on every syscall of the host. */
Test(uprobe, sends_are_seen_at_the_send_tracepoint_not_at_every_syscall)
{
	bool has = kernel_has_send_tracepoint();
	const char *want = has ? "sock_send_length " : "sys_enter ";
	const char *other = has ? "sys_enter " : "sock_send_length ";
	struct world w;
	char *tps;

	world_start(&w);
	tps = tracepoints_held(w.d.pid);
	cr_expect(strstr(tps, want), "no %slink: %s", want, tps);
	cr_expect(strstr(tps, "sched_process_exec "), "no sched_process_exec link: %s", tps);
	cr_expect_null(strstr(tps, other), "a %slink: %s", other, tps);
	tlsfix_ca_free(w.ca);
}

/* Before 6.3 (forced here): sys_enter finds the socket from the fd, with the same result. */
Test(uprobe, without_the_send_tracepoint_sys_enter_sees_tls_and_plain_writes)
{
	struct world w;
	char *tps, *log;

	cr_assert_eq(setenv("LANYARD_SEND_TRACEPOINT", "0", 1), 0);
	world_start(&w);
	tps = tracepoints_held(w.d.pid);
	cr_expect(strstr(tps, "sys_enter "), "no sys_enter link: %s", tps);
	cr_expect_null(strstr(tps, "sock_send_length "), "a sock_send_length link: %s", tps);
	log = h_read_file(h_err_path(w.d.name), NULL);
	cr_expect(log && strstr(log, "sends are seen at sys_enter"), "no fallback logged");
	free(log);
	curl_is_tagged(&w);
	plain_is_captured(&w);
	own_writes_unseen(&w);
	tlsfix_ca_free(w.ca);
}



/* --- what the kernel captures: the head, never the body ---------------------------------- */

#define CANARY_BODY "uprobe-body-canary-3c9d41"
#define CANARY_PARTIAL "uprobe-partial-canary-a80e6f"

/* A head ended by a bare "\n\n" (which discovery accepts), then a body with a canary. */
static const char py_lf_head[] =
	"import socket, ssl, sys\n"
	"ctx = ssl.create_default_context(cafile=sys.argv[1])\n"
	"s = ctx.wrap_socket(socket.create_connection(('localhost', int(sys.argv[2]))),\n"
	"                    server_hostname='localhost')\n"
	"body = b'Authorization: Bearer " CANARY_BODY "\\r\\n\\r\\n' + b'B' * 300\n"
	"s.sendall(b'POST /lf/body HTTP/1.1\\nHost: localhost\\nContent-Length: %d\\n\\n'\n"
	"          % len(body) + body)\n"
	"print('sent', flush=True)\n"
	"s.settimeout(3)\n"
	"try:\n"
	"    s.recv(4096)\n"
	"except Exception:\n"
	"    pass\n";

/* A head longer than the capture (2048): its line across the limit holds a canary. */
static const char py_long_head[] =
	"import socket, ssl, sys\n"
	"ctx = ssl.create_default_context(cafile=sys.argv[1])\n"
	"s = ctx.wrap_socket(socket.create_connection(('localhost', int(sys.argv[2]))),\n"
	"                    server_hostname='localhost')\n"
	"head = b'GET /long/head HTTP/1.1\\r\\nHost: localhost\\r\\n'\n"
	"i = 0\n"
	"while len(head) < 1950:\n"
	"    head += b'X-Pad-%02d: %s\\r\\n' % (i, b'p' * 60)\n"
	"    i += 1\n"
	"head += b'X-Partial: " CANARY_PARTIAL "' + b'q' * 300 + b'\\r\\n\\r\\n'\n"
	"s.sendall(head)\n"
	"print('sent', flush=True)\n"
	"s.settimeout(3)\n"
	"try:\n"
	"    s.recv(4096)\n"
	"except Exception:\n"
	"    pass\n";

/*
 * How many tls_scratch maps (the per-CPU buffer events are built in, of every lanyardd
 * running) exist; *hit set when one of them holds needle on some CPU.
 */
static int scratch_maps(const char *needle, int *hit)
{
	int ncpu = libbpf_num_possible_cpus(), n = 0;
	__u32 id = 0, zero = 0;

	*hit = 0;
	cr_assert_gt(ncpu, 0);
	while (bpf_map_get_next_id(id, &id) == 0) {
		struct bpf_map_info info = { 0 };
		__u32 len = sizeof(info);
		size_t stride, size;
		char *v;
		int fd = bpf_map_get_fd_by_id(id);

		if (fd < 0)
			continue;
		if (bpf_obj_get_info_by_fd(fd, &info, &len) || strcmp(info.name, "tls_scratch")) {
			close(fd);
			continue;
		}
		stride = (info.value_size + 7) & ~7U;	/* per-CPU values are 8-byte aligned */
		size = stride * (size_t)ncpu;
		v = calloc(1, size);
		cr_assert(v);
		if (bpf_map_lookup_elem(fd, &zero, v) == 0) {
			n++;
			if (memmem(v, size, needle, strlen(needle)))
				*hit = 1;
		}
		free(v);
		close(fd);
	}
	return n;
}

/* needle is nowhere lanyardd writes: audit, stdout, stderr, discovery inventory. */
static void expect_nowhere(const struct world *w, const char *needle)
{
	json_t *disc = ly_cli_json(&w->d, "discover");
	char *s = disc ? json_dumps(disc, 0) : NULL;

	cr_assert(s, "lanyard discover failed");
	cr_expect_null(strstr(s, needle), "%s is in lanyard discover", needle);
	free(s);
	json_decref(disc);
	cr_expect_eq(h_grep_tree_for(needle, w->d.audit, h_out_path(w->d.name),
				     h_err_path(w->d.name), NULL), 0, "%s is in lanyardd's output",
		     needle);
}

static void run_script(const struct world *w, const char *name, const char *text)
{
	const char *script = h_path(h_strf("%s.py", name));
	pid_t pid;

	cr_assert_eq(h_write_file(script, text, 0644), 0);
	pid = h_spawnl(name, w->obs, LY_PYTHON, script, tlsfix_ca_cert_path(w->ca),
		       h_strf("%d", w->up_port), NULL);
	cr_assert_gt(pid, 0);
	cr_assert_eq(h_wait_output(pid, "sent", 10000), 0, "%s: the request was not sent", name);
	h_wait_exit(pid, 10000);
}

Test(uprobe, a_head_ended_by_a_bare_lf_is_captured_without_its_body)
{
	struct world w;
	json_t *ev;
	int hit;

	world_start(&w);
	run_script(&w, "lfhead", py_lf_head);
	ev = wait_tls(&w, "/lf/body", 5000);
	cr_assert(ev, "no flow.tls for a head ended by LF LF");
	cr_expect_str_eq(str_of(ev, "method"), "POST");
	cr_expect_str_eq(str_of(ev, "sni"), "localhost");
	json_decref(ev);
	/* the kernel's own buffer: the body was never copied there, or was wiped */
	cr_assert_gt(scratch_maps(CANARY_BODY, &hit), 0, "no tls_scratch map found");
	cr_expect_eq(hit, 0, "the body is in the kernel's capture buffer");
	expect_nowhere(&w, CANARY_BODY);
	tlsfix_ca_free(w.ca);
}

Test(uprobe, a_head_longer_than_the_capture_is_cut_after_its_last_complete_line)
{
	struct world w;
	json_t *ev;
	int hit;

	world_start(&w);
	run_script(&w, "longhead", py_long_head);
	ev = wait_tls(&w, "/long/head", 5000);
	cr_assert(ev, "no flow.tls for a head longer than the capture");
	cr_expect_str_eq(str_of(ev, "method"), "GET");
	json_decref(ev);
	cr_assert_gt(scratch_maps(CANARY_PARTIAL, &hit), 0, "no tls_scratch map found");
	cr_expect_eq(hit, 0, "a partial header line is in the kernel's capture buffer");
	expect_nowhere(&w, CANARY_PARTIAL);
	tlsfix_ca_free(w.ca);
}

/*
 * An SNI with bytes that are not printable ASCII (OpenSSL's client and server take any
 * byte but NUL): flow.tls still comes, with the name escaped.
 */
Test(uprobe, an_sni_with_odd_bytes_is_escaped_not_dropped)
{
	struct world w;
	const char *cmd;
	json_t *ev;
	pid_t pid;

	world_start(&w);
	cmd = h_strf("printf 'GET /odd/sni HTTP/1.1\\r\\nHost: localhost\\r\\n\\r\\n' | "
		     "openssl s_client -quiet -no_ign_eof -connect localhost:%d -CAfile %s "
		     "-servername 'odd\x01" "name\xff\xfe' >/dev/null 2>&1", w.up_port,
		     tlsfix_ca_cert_path(w.ca));
	pid = h_spawnl("oddsni", w.obs, "/bin/sh", "-c", cmd, NULL);
	cr_assert_gt(pid, 0);
	h_wait_exit(pid, 15000);
	ev = wait_tls(&w, "/odd/sni", 5000);
	cr_assert(ev, "no flow.tls for a request with an odd SNI");
	cr_expect_str_eq(str_of(ev, "sni"), "odd\\x01name\\xff\\xfe");
	cr_expect_str_eq(str_of(ev, "lib"), "openssl");
	json_decref(ev);
	tlsfix_ca_free(w.ca);
}

/* --- the attach helper ------------------------------------------------------------------- */

static unsigned long long status_hex(const char *st, const char *field)
{
	const char *p = strstr(st, field);

	cr_assert(p, "no %s in status", field);
	return strtoull(p + strlen(field), NULL, 16);
}

Test(uprobe, the_attach_helper_holds_three_capabilities_and_no_other_fd)
{
	const unsigned long long want = 1ULL << 21 | 1ULL << 38 | 1ULL << 39;	/* SYS_ADMIN,
										 * PERFMON, BPF */
	struct world w;
	struct dirent *de;
	int nsock = 0, nprog = 0;
	char *st;
	pid_t pid;
	DIR *d;

	world_start(&w);
	pid = ly_tls_helper_pid(&w.d);
	cr_assert_gt(pid, 0, "lanyardd has no lanyardd-tls child");
	st = h_read_file(h_strf("/proc/%d/status", pid), NULL);
	cr_assert(st);
	cr_expect_eq(status_hex(st, "\nCapEff:"), want);
	cr_expect_eq(status_hex(st, "\nCapPrm:"), want);
	cr_expect_eq(status_hex(st, "\nCapBnd:"), want);
	cr_expect_eq(strtol(strstr(st, "\nNoNewPrivs:") + 12, NULL, 10), 1);
	free(st);
	d = opendir(h_strf("/proc/%d/fd", pid));
	cr_assert(d);
	while ((de = readdir(d))) {
		char link[256] = "";
		ssize_t n;

		if (de->d_name[0] == '.')
			continue;
		n = readlink(h_strf("/proc/%d/fd/%s", pid, de->d_name), link, sizeof(link) - 1);
		link[n > 0 ? n : 0] = '\0';
		if (!strncmp(link, "socket:", 7))
			nsock++;
		else if (!strcmp(link, "anon_inode:bpf-prog"))
			nprog++;
		else if (strcmp(link, "anon_inode:[perf_event]") &&
			 strcmp(link, "anon_inode:bpf_link"))
			/* the uprobes it holds are perf events (or links); nothing else */
			cr_expect_str_eq(link, "/dev/null", "the helper holds fd %s: %s",
					 de->d_name, link);
	}
	closedir(d);
	cr_expect_eq(nsock, 1, "the helper holds %d sockets", nsock);
	cr_expect_gt(nprog, 0);
	tlsfix_ca_free(w.ca);
}
