/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Maps of a mux that its other BPF objects share: the data plane (kcm.bpf.c) defines
 * them, and the health programs (kcm_health.bpf.c) declare the same ones, which the
 * loader replaces with the mux's pinned maps (bpf_map__reuse_fd). One definition keeps
 * both objects' types in step. Include after vmlinux.h and kcm_shared.h.
 */
#ifndef KCM_MUX_MAPS_H
#define KCM_MUX_MAPS_H

/* Transport slot of each attached socket, by SO_COOKIE (filled by libkcm at attach). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, KCM_MAX_TRANSPORTS);
	__type(key, __u64);
	__type(value, __u32);
} transport_slot SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, KCM_MAX_TRANSPORTS);
	__uint(map_flags, BPF_F_MMAPABLE);
	__type(key, __u32);
	__type(value, struct kcm_transport_stats);
} transport_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct kcm_health_cfg);
} health_cfg SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, KCM_EVENTS_SIZE);
} events SEC(".maps");

#endif /* KCM_MUX_MAPS_H */
