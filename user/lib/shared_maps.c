// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * The maps a mux's BPF objects share (bpf/kcm_mux_maps.h): the one list of them in user
 * space, and the step that gives another object (an SDK parser, the health programs) the
 * mux's own maps in place of its copies before it is loaded.
 */
#include <errno.h>
#include <string.h>
#include <bpf/libbpf.h>

#include "internal.h"

static const struct {
	const char *name;	/* in kcm_mux_maps.h, without the SDK's prefix */
	enum kcm_map_id id;
	size_t value_size;	/* 0: not checked (the ring buffer) */
} shared[] = {
	{ "mux_config", KCM_MAP_CONFIG, sizeof(struct kcm_config) },
	{ "counters", KCM_MAP_COUNTERS, sizeof(struct kcm_counters) },
	{ "transport_slot", KCM_MAP_TRANSPORT_SLOT, sizeof(__u32) },
	{ "transport_stats", KCM_MAP_TRANSPORT_STATS, sizeof(struct kcm_transport_stats) },
	{ "health_cfg", KCM_MAP_HEALTH_CFG, sizeof(struct kcm_health_cfg) },
	{ "events", KCM_MAP_EVENTS, 0 },
};

int kcm_shared_maps_reuse(struct bpf_object *obj, const char *prefix, const int *map_fd,
			  const char *who)
{
	char name[64];

	for (size_t i = 0; i < sizeof(shared) / sizeof(shared[0]); i++) {
		struct bpf_map *m;
		int err;

		snprintf(name, sizeof(name), "%s%s", prefix, shared[i].name);
		m = bpf_object__find_map_by_name(obj, name);
		if (!m)
			continue;
		if (shared[i].value_size && bpf_map__value_size(m) != shared[i].value_size)
			return kcm_fail(-EPROTO, "%s was built with another kcm-bpf's headers "
					"(kcm_parser.h, kcm_shared.h: map %s has %u-byte values, this "
					"libkcm uses %zu): rebuild it", who, name,
					bpf_map__value_size(m), shared[i].value_size);
		err = bpf_map__reuse_fd(m, map_fd[shared[i].id]);
		if (err)
			return kcm_fail(err, "failed to give %s the mux's map %s", who, name);
	}
	return 0;
}
