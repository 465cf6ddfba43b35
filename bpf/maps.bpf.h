/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Copyright (c) 2026 The lanyard authors */
/*
 * The pinned maps shared by every lanyard bpf object (pinned by name under
 * the pin folder, so objects that include this header share one instance),
 * and the per-CPU stats helper.  Keys and values are the ABI types.
 */
#ifndef LY_MAPS_BPF_H
#define LY_MAPS_BPF_H

/* cgroup id (inode of the cgroup2 folder) -> workload */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, LY_MAX_WORKLOADS);
	__type(key, __u64);
	__type(value, struct ly_workload);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} workloads SEC(".maps");

/* {workload, port, family, addr/prefix} -> route; the kernel requires NO_PREALLOC for LPM */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, LY_MAX_ROUTES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct ly_route_key);
	__type(value, struct ly_route);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} routes SEC(".maps");

/*
 * The flow record of a redirected socket.  SK_STORAGE lives and dies with
 * the socket: no eviction under a connection storm, no stale entry.
 */
struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct ly_flow);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} flows SEC(".maps");

/* client local addr:port -> flow record, taken (lookup + delete) by lanyardd on accept */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, LY_MAX_PEERS);
	__type(key, struct ly_peer_key);
	__type(value, struct ly_flow);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} flows_by_peer SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct ly_config);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} config SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, LY_RINGBUF_BYTES);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, LY_STAT_MAX);
	__type(key, __u32);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} stats SEC(".maps");

/* per-CPU slot: a plain add is race-free (programs do not migrate mid-run) */
static __always_inline void stat_inc(__u32 slot)
{
	__u64 *v = bpf_map_lookup_elem(&stats, &slot);

	if (v)
		*v += 1;
}

static __always_inline const struct ly_config *config_get(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&config, &zero);
}

/*
 * The deepest enrolled ancestor of the current task's cgroup (level 0 is the
 * root).  One hash lookup per level: that is all an unenrolled cgroup costs.
 */
static __always_inline int workload_find(struct ly_workload *out)
{
	struct ly_workload *w;
	int found = 0;

	for (int level = 0; level < LY_MAX_CGROUP_DEPTH; level++) {
		__u64 id = bpf_get_current_ancestor_cgroup_id(level);

		if (!id)
			break;
		w = bpf_map_lookup_elem(&workloads, &id);
		if (w) {
			*out = *w;
			found = 1;
		}
	}
	return found ? 0 : -ENOENT;
}

#endif /* LY_MAPS_BPF_H */
