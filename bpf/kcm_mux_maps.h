/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The maps of a mux that its BPF objects share: the data plane (kcm.bpf.c) creates them,
 * and the health programs (kcm_health.bpf.c) and the SDK's parsers (kcm_parser.h) declare
 * the same ones, which libkcm and the loader replace with the mux's own
 * (bpf_map__reuse_fd; user/lib/pins.c lists them for user space). The SDK names them
 * with a "kcm_" prefix (#define KCM_MAP_NAME(n) kcm_##n before including this), so that
 * they do not clash with a parser's own maps. Include after the BPF map definitions
 * (linux/bpf.h or vmlinux.h, bpf_helpers.h) and kcm_shared.h.
 */
#ifndef KCM_MUX_MAPS_H
#define KCM_MUX_MAPS_H

#ifndef KCM_MAP_NAME
#define KCM_MAP_NAME(n) n
#endif

/* How the mux was created (kcm_config: framing, limits, batch). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__uint(map_flags, BPF_F_MMAPABLE); /* senders read the generation without a syscall */
	__type(key, __u32);
	__type(value, struct kcm_config);
} KCM_MAP_NAME(mux_config) SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct kcm_counters);
} KCM_MAP_NAME(counters) SEC(".maps");

/* Transport slot of each attached socket, by SO_COOKIE (filled by libkcm at attach). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, KCM_MAX_TRANSPORTS);
	__type(key, __u64);
	__type(value, __u32);
} KCM_MAP_NAME(transport_slot) SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, KCM_MAX_TRANSPORTS);
	__uint(map_flags, BPF_F_MMAPABLE);
	__type(key, __u32);
	__type(value, struct kcm_transport_stats);
} KCM_MAP_NAME(transport_stats) SEC(".maps");

/* monitor's thresholds (kcm-loader monitor writes them) */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct kcm_health_cfg);
} KCM_MAP_NAME(health_cfg) SEC(".maps");

/* parse errors and health events, read by monitor and kcm_transport_poll() */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, KCM_EVENTS_SIZE);
} KCM_MAP_NAME(events) SEC(".maps");

#endif /* KCM_MUX_MAPS_H */
