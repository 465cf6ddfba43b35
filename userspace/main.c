// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Copyright (c) 2026 The lanyard authors */
/*
 * lanyardd: arguments, start-up order, signals, reload and revoke, the
 * workload registry.  Start-up order matters: the listeners exist before
 * the kernel starts redirecting to them, and credentials are minted before
 * the first workload is enrolled.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/epoll.h>
#include <unistd.h>

#include <curl/curl.h>

#include "admin.h"
#include "audit.h"
#include "ca.h"
#include "control.h"
#include "daemon.h"
#include "discover.h"
#include "fetch.h"
#include "log.h"
#include "privs.h"
#include "proxy.h"
#include "secret.h"
#include "tls.h"
#include "tlsobs.h"

#define REGISTRY_FILE	"workload-ids"
#define SECURE_HEAP	(1024 * 1024)
#define FETCH_THREADS	2	/* fetches in parallel: a slow provider holds only these */
#define NOFILE_WANT	4096	/* fewer open files allowed: warned */

static void usage(FILE *f)
{
	fprintf(f,
		"usage: lanyardd [--config PATH] [--pin-dir DIR] [--verbose] [--ephemeral]\n"
		"       lanyardd --check [--config PATH]    validate the policy and exit\n"
		"       lanyardd --detach [--pin-dir DIR]   remove pinned programs and maps\n"
		"\n"
		"  --config PATH   policy file (default " POLICY_DEFAULT_PATH ")\n"
		"  --pin-dir DIR   bpffs folder for maps and links (default " KERNEL_DEFAULT_PIN_DIR
		")\n"
		"  --ephemeral     detach and unpin everything on exit (tests, demo)\n"
		"  --verbose, -v   debug logging (-vv: also libbpf's)\n");
}

/* --- workload registry ------------------------------------------------------ */

static uint32_t registry_id(struct daemon *d, const char *name)
{
	for (uint32_t id = 1; id < d->wl_next; id++)
		if (d->wl_names[id] && !strcmp(d->wl_names[id], name))
			return id;
	return 0;
}

static int registry_save(struct daemon *d)
{
	char path[4096], tmp[4200];
	FILE *f;
	int fd;

	snprintf(path, sizeof(path), "%s/%s", d->pol->state_dir, REGISTRY_FILE);
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	f = fdopen(fd, "w");
	if (!f) {
		close(fd);
		return -errno;
	}
	for (uint32_t id = 1; id < d->wl_next; id++)
		if (d->wl_names[id])
			fprintf(f, "%u %s\n", id, d->wl_names[id]);
	if (fclose(f) != 0 || rename(tmp, path) < 0)
		return -errno;
	return 0;
}

/*
 * Ids are never reused for another name, also across restarts: a flow the
 * kernel recorded just before a restart must not be attributed to another
 * workload by the next lanyardd.
 */
static void registry_load(struct daemon *d, const char *state_dir)
{
	char path[4096], name[128];
	unsigned id;
	FILE *f;

	d->wl_next = 1;
	snprintf(path, sizeof(path), "%s/%s", state_dir, REGISTRY_FILE);
	f = fopen(path, "re");
	if (!f)
		return;
	while (fscanf(f, "%u %127s", &id, name) == 2) {
		if (id == 0 || id > DAEMON_MAX_WORKLOAD_IDS || d->wl_names[id])
			continue;
		d->wl_names[id] = strdup(name);
		if (id >= d->wl_next)
			d->wl_next = id + 1;
	}
	fclose(f);
}

static int registry_assign(struct daemon *d, const struct policy *p, struct kernel_workload *wls)
{
	int changed = 0;

	for (size_t i = 0; i < p->nworkloads; i++) {
		uint32_t id = registry_id(d, p->workloads[i].name);

		if (!id) {
			if (d->wl_next > DAEMON_MAX_WORKLOAD_IDS)
				return -ENOSPC;
			id = d->wl_next++;
			d->wl_names[id] = strdup(p->workloads[i].name);
			if (!d->wl_names[id])
				return -ENOMEM;
			changed = 1;
		}
		wls[i].id = id;
		/* observe: nothing redirected, its requests inspected (kernel.c enforces it too) */
		wls[i].flags = p->workloads[i].mode == POLICY_MODE_OBSERVE ? LY_WL_OBSERVE
									   : LY_WL_ENFORCE;
	}
	return changed;
}

int daemon_workload_index(const struct daemon *d, uint32_t id)
{
	if (id == 0 || id > DAEMON_MAX_WORKLOAD_IDS)
		return -1;
	for (size_t i = 0; i < d->pol->nworkloads; i++)
		if (d->wls[i].id == id)
			return (int)i;
	return -1;
}

const struct policy_route *daemon_route_for(const struct daemon *d, int wi, int family,
					    const uint8_t *addr, uint16_t port)
{
	const struct policy_workload *w = &d->pol->workloads[wi];
	const struct policy_route *best = NULL;
	int best_len = -1;

	/* longest prefix wins, as in the kernel's LPM lookup */
	for (size_t i = 0; i < w->nroutes; i++) {
		const struct policy_route *r = &w->routes[i];

		if (!policy_route_match(r, family, addr, port))
			continue;
		for (size_t a = 0; a < r->naddrs; a++)
			if (r->addrs[a].family == family && r->addrs[a].prefixlen > best_len) {
				best = r;
				best_len = r->addrs[a].prefixlen;
			}
	}
	return best;
}

/* --- reload and revoke -------------------------------------------------------- */

static int str_differ(const char *a, const char *b)
{
	return (a || b) && (!a || !b || strcmp(a, b));
}

static const char *restart_only_change(const struct policy *a, const struct policy *b)
{
	if (a->listen_port != b->listen_port)
		return "listen.port";
	if (strcmp(a->admin_listen, b->admin_listen))
		return "admin.listen";
	if (strcmp(a->control_socket, b->control_socket))
		return "control_socket";
	if (strcmp(a->state_dir, b->state_dir))
		return "state_dir";
	if (strcmp(a->trust_domain, b->trust_domain))
		return "trust_domain";
	/* interception leaves already issued chain to the CA that is open */
	if (str_differ(a->ca_cert, b->ca_cert) || str_differ(a->ca_key, b->ca_key))
		return "ca";
	/* the probes on processes already running stay where they are */
	if (a->tls_probes != b->tls_probes)
		return "tls_probes";
	return NULL;
}

static void audit_reload(const struct daemon *d, const char *error)
{
	audit_begin("policy.reload");
	audit_str("path", d->config_path);
	audit_str("result", error ? "refused" : "ok");
	audit_u64("generation", d->gen);
	audit_str("error", error);
	audit_end();
}

int daemon_reload(struct daemon *d, char *err, size_t errlen)
{
	struct policy *np = policy_load(d->config_path, err, errlen);
	struct kernel_workload *wls = NULL;
	const char *what;
	int rc = -EINVAL;

	/* TLS contexts are built anew: a changed ca_file is read again */
	if (!np || policy_resolve(np, err, errlen) < 0 || tls_policy_build(np, err, errlen) < 0)
		goto fail;
	what = restart_only_change(d->pol, np);
	if (what) {
		snprintf(err, errlen, "%s: %s cannot change on reload (restart lanyardd)",
			 d->config_path, what);
		goto fail;
	}
	wls = calloc(np->nworkloads + 1, sizeof(*wls));
	if (!wls) {
		rc = -ENOMEM;
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	rc = registry_assign(d, np, wls);
	if (rc < 0) {
		snprintf(err, errlen, "workload registry: %s", strerror(-rc));
		goto fail;
	}
	if (rc > 0)
		registry_save(d);
	if ((np->audit_path || d->pol->audit_path) &&
	    (!np->audit_path || !d->pol->audit_path || strcmp(np->audit_path, d->pol->audit_path)))
		audit_reopen(np->audit_path);
	rc = cred_sync(d->creds, np, d->pol, loop_wall_s(d->loop));
	if (rc < 0) {
		snprintf(err, errlen, "minting credentials: %s", strerror(-rc));
		goto fail;
	}
	rc = kernel_apply(d->kern, np, wls);
	if (rc < 0) {
		snprintf(err, errlen, "updating kernel maps: %s", strerror(-rc));
		/* give the running policy its credentials back before np is freed */
		cred_sync(d->creds, d->pol, np, loop_wall_s(d->loop));
		kernel_apply(d->kern, d->pol, d->wls);
		goto fail;
	}
	policy_free(d->pol);
	free(d->wls);
	d->pol = np;
	d->wls = wls;
	d->gen++;
	d->m.reloads++;
	audit_reload(d, NULL);
	log_info("policy %s loaded (generation %llu, %zu workloads)", d->config_path,
		 (unsigned long long)d->gen, np->nworkloads);
	/* a request parked for a route the reload removed or changed: decided now */
	if (d->proxy)
		proxy_wake_parked(d->proxy);
	return 0;
fail:
	d->m.reload_failed++;
	audit_reload(d, err);
	log_warnx("reload refused, the running policy stays: %s", err);
	policy_free(np);
	free(wls);
	return rc < 0 ? rc : -EINVAL;
}

/*
 * Everything here is done before the control socket answers: when `lanyard
 * revoke` returns, the kernel refuses the workload's new connections, no
 * request gets the dropped credentials, and on_revoke: close connections are
 * gone.
 */
int daemon_revoke(struct daemon *d, const char *workload, const char *route, const char *jti)
{
	int wi = -1, n;

	for (size_t i = 0; workload && i < d->pol->nworkloads; i++)
		if (!strcmp(d->pol->workloads[i].name, workload))
			wi = (int)i;
	if (workload && wi < 0)
		return -ENOENT;
	n = cred_revoke(d->creds, d->pol, workload, route, jti, loop_wall_s(d->loop));
	if (n < 0)
		return n;
	if (wi >= 0 && !route && !jti) {
		d->wls[wi].flags |= LY_WL_REVOKED;
		kernel_set_workload_flags(d->kern, d->wls[wi].id, d->wls[wi].flags);
	}
	proxy_on_revoke(d->proxy);
	audit_begin("credential.revoke");
	audit_str("workload", workload);
	audit_str("route", route);
	audit_str("jti", jti);
	audit_u64("credentials", (uint64_t)n);
	audit_end();
	audit_flush();
	log_info("revoked%s%s%s%s%s%s (%d credentials dropped)", workload ? " workload " : "",
		 workload ? workload : "", route ? " route " : "", route ? route : "",
		 jti ? " jti " : "", jti ? jti : "", n);
	return n;
}

/* --- loop callbacks ----------------------------------------------------------- */

struct sigctx {
	struct daemon *d;
	struct loop_io io;
};

static void on_signal(struct loop *l, struct loop_io *io, uint32_t events)
{
	struct sigctx *sc = io->arg;
	struct signalfd_siginfo si;
	char err[POLICY_ERR_LEN];

	(void)events;
	while (read(io->fd, &si, sizeof(si)) == sizeof(si)) {
		if (si.ssi_signo == SIGHUP) {
			log_info("SIGHUP: reloading %s", sc->d->config_path);
			daemon_reload(sc->d, err, sizeof(err));
		} else {
			log_info("signal %u: shutting down", si.ssi_signo);
			loop_stop(l);
		}
	}
}

static void on_cred_tick(struct loop *l, void *arg)
{
	struct daemon *d = arg;

	cred_tick(d->creds, d->pol, loop_wall_s(l));
}

static void on_rescan(struct loop *l, void *arg)
{
	struct daemon *d = arg;

	(void)l;
	kernel_rescan(d->kern);
}

static void on_watch(struct loop *l, struct loop_io *io, uint32_t events)
{
	struct daemon *d = io->arg;
	char buf[4096];

	(void)l;
	(void)events;
	while (read(io->fd, buf, sizeof(buf)) > 0)
		;
	kernel_rescan(d->kern);
}

/* what the ring buffer's consumer needs */
struct evctx {
	struct daemon *d;
	struct tlsobs *tobs;	/* NULL: no TLS observation */
};

static void on_kernel_event(void *ctx, const struct ly_event_hdr *ev, size_t len)
{
	struct evctx *ec = ctx;
	struct daemon *d = ec->d;
	const struct ly_event_flow *ef = (const struct ly_event_flow *)ev;

	/* TLS writes, execs, and connects (a new pid's libraries are probed) */
	if (ec->tobs)
		tlsobs_on_event(ec->tobs, ev, len);
	if (ev->type == LY_EV_REFUSED && len >= sizeof(*ef)) {
		audit_begin("flow.deny");
		audit_str("workload", ef->flow.workload_id <= DAEMON_MAX_WORKLOAD_IDS ?
						d->wl_names[ef->flow.workload_id] : NULL);
		audit_u64("cgroup", ef->flow.cgroup_id);
		audit_u64("pid", ef->flow.pid);
		audit_strn("comm", ef->flow.comm, strnlen(ef->flow.comm, LY_COMM_LEN));
		audit_str("reason", "workload revoked: connect refused by the kernel");
		audit_end();
	}
}

static void on_events(struct loop *l, struct loop_io *io, uint32_t events)
{
	struct evctx *ec = io->arg;

	(void)l;
	(void)events;
	kernel_events_poll(ec->d->kern, on_kernel_event, ec);
}

static void on_tls_tick(struct loop *l, void *arg)
{
	(void)l;
	tlsobs_tick(arg);
}

static void on_turn_end(struct loop *l, void *arg)
{
	(void)l;
	(void)arg;
	audit_flush();
}

/* --- start-up ------------------------------------------------------------------- */

struct options {
	const char *config;
	const char *pin_dir;
	int verbose;
	int ephemeral;
	int check;
	int detach;
};

static void parse_args(int argc, char **argv, struct options *o)
{
	static const struct option longopts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "pin-dir", required_argument, NULL, 'p' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "ephemeral", no_argument, NULL, 'e' },
		{ "check", no_argument, NULL, 'k' },
		{ "detach", no_argument, NULL, 'd' },
		{ "version", no_argument, NULL, 'V' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	int ch;

	o->config = POLICY_DEFAULT_PATH;
	o->pin_dir = KERNEL_DEFAULT_PIN_DIR;
	while ((ch = getopt_long(argc, argv, "c:p:vh", longopts, NULL)) != -1) {
		switch (ch) {
		case 'c': o->config = optarg; break;
		case 'p': o->pin_dir = optarg; break;
		case 'v': o->verbose++; break;
		case 'e': o->ephemeral = 1; break;
		case 'k': o->check = 1; break;
		case 'd': o->detach = 1; break;
		case 'V': printf("lanyardd %s\n", DAEMON_VERSION); exit(0);
		case 'h': usage(stdout); exit(0);
		default: usage(stderr); exit(2);
		}
	}
	if (optind != argc) {
		usage(stderr);
		exit(2);
	}
}

/* Load and resolve the policy, or exit 2 saying what is wrong. */
static struct policy *load_policy_or_exit(const char *path)
{
	char err[POLICY_ERR_LEN];
	struct policy *p = policy_load(path, err, sizeof(err));

	if (!p || policy_resolve(p, err, sizeof(err)) < 0 ||
	    tls_policy_build(p, err, sizeof(err)) < 0) {
		fprintf(stderr, "lanyardd: %s\n", err);
		exit(2);
	}
	return p;
}

static void start_kernel(struct daemon *d, const struct options *o)
{
	struct kernel_opts ko = {
		.pin_dir = o->pin_dir,
		.mark = d->mark,
		.listen_port = d->pol->listen_port,
		.tls_probes = d->pol->tls_probes,
	};
	char err[512];
	int rc;

	if (kernel_self_cgroup_id(&ko.daemon_cgid) < 0)
		log_warnx("cannot find lanyardd's own cgroup id; relying on SO_MARK alone");
	d->kern = kernel_open(&ko, err, sizeof(err));
	if (!d->kern)
		fatalx("kernel: %s", err);
	rc = kernel_apply(d->kern, d->pol, d->wls);
	if (rc < 0)
		fatalx("kernel: applying the policy: %s", strerror(-rc));
}

/*
 * The local CA (or the imported one) exists from the first start on, for
 * `lanyard trust install`, whether or not a route intercepts TLS yet.
 */
static void start_ca(struct daemon *d)
{
	char err[512];

	d->ca = ca_open(d->pol->state_dir, d->pol->ca_cert, d->pol->ca_key, err, sizeof(err));
	if (!d->ca)
		fatalx("CA: %s", err);
}

/* A fetch ended: its result installed (or its failure noted), parked requests go on. */
static void on_fetch_done(struct fetch_job *j, void *arg)
{
	struct daemon *d = arg;

	cred_fetch_done(j, d->creds);
	if (d->proxy)
		proxy_wake_parked(d->proxy);
}

static void start_issuer(struct daemon *d)
{
	char err[512];
	int rc;

	d->key = jwt_key_load_or_create(d->pol->state_dir, err, sizeof(err));
	if (!d->key)
		fatalx("%s", err);
	snprintf(d->issuer, sizeof(d->issuer), "http://%s", d->pol->admin_listen);
	d->jwks = jwt_jwks_json(d->key);
	d->creds = cred_issuer_new(d->key, d->issuer, d->pol->trust_domain);
	if (!d->jwks || !d->creds)
		fatalx("out of memory");
	/* fetches queue up now; the workers start once capabilities are dropped */
	d->fetch = fetcher_new(d->loop, on_fetch_done, d);
	if (!d->fetch)
		fatalx("fetch workers: %s", strerror(errno));
	cred_issuer_set_ca(d->creds, d->ca);
	cred_issuer_set_fetcher(d->creds, d->fetch, d->mark);
	rc = cred_sync(d->creds, d->pol, NULL, loop_wall_s(d->loop));
	if (rc < 0)
		fatalx("minting credentials: %s", strerror(-rc));
}

static void start_loop_sources(struct daemon *d, struct sigctx *sc, struct loop_io *watch,
			       struct loop_io *events, struct evctx *ec)
{
	sigset_t mask;
	int fd;

	sigemptyset(&mask);
	sigaddset(&mask, SIGHUP);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	fd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
	sc->d = d;
	if (fd < 0 || loop_add(d->loop, &sc->io, fd, EPOLLIN, on_signal, sc) < 0)
		fatal("signalfd");
	fd = kernel_watch_fd(d->kern);
	if (fd >= 0)
		loop_add(d->loop, watch, fd, EPOLLIN, on_watch, d);
	fd = kernel_events_fd(d->kern);
	if (fd >= 0)
		loop_add(d->loop, events, fd, EPOLLIN, on_events, ec);
	if (ec->tobs)
		loop_every(d->loop, 100, on_tls_tick, ec->tobs);
	loop_every(d->loop, 250, on_cred_tick, d);
	loop_every(d->loop, 1000, on_rescan, d);
	loop_on_turn_end(d->loop, on_turn_end, d);
}

/*
 * Probe the host's TLS libraries while lanyardd still holds its start-up
 * privileges; private copies are probed later as processes show up.
 */
static struct tlsobs *start_tlsobs(struct daemon *d)
{
	struct secret *key;
	struct tlsobs *t;
	char err[512];

	t = tlsobs_new(d);
	if (!t)
		fatalx("out of memory");
	tlsobs_start(t);
	/* after tlsobs_start(): the attach helper it forks must never hold the key */
	key = discover_key_load_or_create(d->pol->state_dir, err, sizeof(err));
	if (!key)
		fatalx("%s", err);
	d->disc = discover_new(key->buf, key->len);
	secret_free(key);
	if (!d->disc)
		fatalx("out of memory");
	return t;
}

static void daemon_fini(struct daemon *d, int detach)
{
	control_free(d->control);
	admin_free(d->admin);
	proxy_free(d->proxy);
	ca_free(d->ca);
	kernel_close(d->kern, detach);
	discover_free(d->disc);
	/* slots first: a fetch still running loses its owner, then the workers stop */
	policy_free(d->pol);
	fetcher_free(d->fetch);
	audit_close();
	free(d->wls);
	cred_issuer_free(d->creds);
	jwt_key_free(d->key);
	free(d->jwks);
	for (uint32_t i = 0; i <= DAEMON_MAX_WORKLOAD_IDS; i++)
		free(d->wl_names[i]);
	loop_free(d->loop);
}

/*
 * A proxy holds two descriptors per connection and four more per spliced flow: the soft
 * RLIMIT_NOFILE (1024 by default, for select(), which lanyardd does not use) is raised
 * to the hard one.  Helpers get 1024 back (source_exec.c).
 */
static void raise_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return;
	if (rl.rlim_cur < rl.rlim_max) {
		rlim_t was = rl.rlim_cur;

		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
			rl.rlim_cur = was;
	}
	if (rl.rlim_cur < NOFILE_WANT)
		log_warnx("only %llu open files allowed (RLIMIT_NOFILE): about %llu passthrough "
			  "flows at once; raise the hard limit (LimitNOFILE=)",
			  (unsigned long long)rl.rlim_cur, (unsigned long long)rl.rlim_cur / 6);
}

int main(int argc, char **argv)
{
	static struct daemon d;
	struct options o = { 0 };
	struct sigctx sc = { 0 };
	struct loop_io watch = { .fd = -1 }, events = { .fd = -1 };
	struct evctx ec = { .d = &d };
	char err[512];
	int rc;

	parse_args(argc, argv, &o);
	log_init(o.verbose, "lanyardd");
	/* once, before any thread: libcurl's global set-up is not thread-safe */
	if (curl_global_init(CURL_GLOBAL_DEFAULT))
		fatalx("libcurl initialisation failed");
	if (o.detach)
		return kernel_detach_pinned(o.pin_dir) < 0 ? 1 : 0;
	d.config_path = o.config;
	d.pol = load_policy_or_exit(o.config);
	if (o.check) {
		printf("%s: ok (%zu workloads)\n", o.config, d.pol->nworkloads);
		policy_free(d.pol);
		return 0;
	}
	/* no core dumps, no ptrace by non-root: credentials live in this process */
	prctl(PR_SET_DUMPABLE, 0);
	signal(SIGPIPE, SIG_IGN);
	raise_nofile();
	if (secret_heap_init(SECURE_HEAP) < 0)
		log_warnx("secure heap unavailable: secrets are cleansed but not locked");
	if (mkdir(d.pol->state_dir, 0700) < 0 && errno != EEXIST)
		fatal("state_dir %s", d.pol->state_dir);
	rc = audit_open(d.pol->audit_path);
	if (rc < 0)
		fatalx("audit log %s: %s", d.pol->audit_path, strerror(-rc));
	d.loop = loop_new();
	d.mark = KERNEL_DEFAULT_MARK;
	d.started = loop_wall_s(d.loop);
	registry_load(&d, d.pol->state_dir);
	d.wls = calloc(d.pol->nworkloads + 1, sizeof(*d.wls));
	if (!d.loop || !d.wls || registry_assign(&d, d.pol, d.wls) < 0)
		fatalx("out of memory");
	registry_save(&d);

	/* the listeners exist before the kernel redirects anything to them */
	d.proxy = proxy_new(&d, d.pol->listen_port, err, sizeof(err));
	if (!d.proxy)
		fatalx("%s", err);
	start_kernel(&d, &o);
	/*
	 * The uprobe helper is forked here, before any key is loaded: it keeps
	 * CAP_SYS_ADMIN and must hold no copy of the CA or the issuer's keys.
	 * Redirected connections wait in the listen queue until the loop runs.
	 */
	ec.tobs = start_tlsobs(&d);
	/* the CA first: x509 credentials are minted by the issuer's first sync */
	start_ca(&d);
	start_issuer(&d);
	d.admin = admin_new(&d, err, sizeof(err));
	if (!d.admin)
		fatalx("admin: %s", err);
	d.control = control_new(&d, d.pol->control_socket, err, sizeof(err));
	if (!d.control)
		fatalx("control socket: %s", err);
	start_loop_sources(&d, &sc, &watch, &events, &ec);
	rc = privs_drop();
	if (rc < 0)
		fatalx("dropping capabilities: %s", strerror(-rc));
	/* capabilities are per thread: the workers inherit the dropped set */
	rc = fetcher_start(d.fetch, FETCH_THREADS);
	if (rc < 0)
		fatalx("fetch workers: %s", strerror(-rc));

	log_info("lanyardd %s: listening on 127.0.0.1:%u and [::1]:%u, admin %s, %zu workloads",
		 DAEMON_VERSION, d.pol->listen_port, d.pol->listen_port, d.pol->admin_listen,
		 d.pol->nworkloads);
	audit_begin("daemon.start");
	audit_str("version", DAEMON_VERSION);
	audit_str("policy", d.config_path);
	audit_end();
	audit_flush();

	rc = loop_run(d.loop);
	if (rc < 0)
		log_warnx("event loop: %s", strerror(-rc));
	audit_begin("daemon.stop");
	audit_end();
	daemon_fini(&d, o.ephemeral);
	tlsobs_free(ec.tobs);
	return rc < 0 ? 1 : 0;
}
