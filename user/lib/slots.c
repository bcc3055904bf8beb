// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * What a slot of a mux holds, decided in one place for every layer and command: a
 * transport slot by its record (transport_info) against its parser's transport map, a
 * group slot by its record (member_info) against the group map.
 */
#include <errno.h>
#include <string.h>
#include <bpf/bpf.h>

#include "internal.h"

int kcm_transport_slot(struct kcm_mux *mux, __u32 slot, struct kcm_transport_info *info,
		       __u64 *cookie)
{
	bool recorded, in_map;
	int map;

	recorded = !bpf_map_lookup_elem(mux->map_fd[KCM_MAP_TRANSPORT_INFO], &slot, info) &&
		   info->cookie;
	if (!recorded)
		memset(info, 0, sizeof(*info));
	map = info->parser < KCM_MAX_PARSERS ? kcm_transport_map(mux, info->parser) : -1;
	in_map = map >= 0 && !bpf_map_lookup_elem(map, &slot, cookie);
	if (!in_map)
		*cookie = info->cookie;
	if (!recorded && !in_map)
		return -ENOENT;
	if (!recorded)
		return KCM_SLOT_UNRECORDED;
	return in_map && *cookie == info->cookie ? KCM_SLOT_ATTACHED : KCM_SLOT_STALE;
}

int kcm_member_slot(struct kcm_mux *mux, __u32 slot, struct kcm_member_info *info,
		    __u64 *cookie)
{
	bool recorded, in_map;

	recorded = !bpf_map_lookup_elem(mux->map_fd[KCM_MAP_MEMBER_INFO], &slot, info) &&
		   info->cookie;
	if (!recorded)
		memset(info, 0, sizeof(*info));
	in_map = !bpf_map_lookup_elem(mux->map_fd[KCM_MAP_GROUP], &slot, cookie);
	if (!in_map)
		*cookie = info->cookie;
	if (!recorded && !in_map)
		return -ENOENT;
	if (!recorded || !in_map || *cookie != info->cookie)
		return KCM_SLOT_STALE;
	return info->enabled || info->hold ? KCM_SLOT_RECEIVING : KCM_SLOT_RECV_DISABLED;
}
