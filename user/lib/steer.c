// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* The steering list: which group slots the verdict hands messages to, in turn. */
#include <errno.h>
#include <bpf/bpf.h>

#include "internal.h"

/* Index of group slot @slot in @st's list, -1 when it is not there. */
static int steer_index(const struct kcm_steer *st, __u32 slot)
{
	for (__u32 i = 0; i < st->nmembers && i < KCM_MAX_MEMBERS; i++)
		if (st->slots[i] == slot)
			return i;
	return -1;
}

/*
 * Rebuild the steering list from the kernel's view: a slot steers when the group map
 * holds a socket there and the info map says it is that socket and enabled. Members
 * that stay keep their credit and the turn stays where it was, so opening, attaching
 * or unattaching never moves the round-robin; a new member starts level with the
 * least-served one, so it takes turns at once without a burst. Caller holds the mux lock.
 */
int kcm_steer_sync(struct kcm_mux *mux)
{
	struct kcm_steer old = { 0 }, steer = { 0 };
	struct kcm_member_info info;
	__s64 level = 0;
	__u64 cookie;
	__u32 key = 0;
	int at;

	if (bpf_map_lookup_elem_flags(mux->map_fd[KCM_MAP_STEER], &key, &old, BPF_F_LOCK))
		return -errno;
	for (__u32 i = 0; i < old.nmembers && i < KCM_MAX_MEMBERS; i++) {
		__s64 c = old.credit[old.slots[i] % KCM_MAX_MEMBERS];

		if (i == 0 || c > level)
			level = c;
	}
	for (__u32 slot = 0; slot < KCM_MAX_MEMBERS; slot++) {
		if (bpf_map_lookup_elem(mux->map_fd[KCM_MAP_GROUP], &slot, &cookie))
			continue;
		if (bpf_map_lookup_elem(mux->map_fd[KCM_MAP_MEMBER_INFO], &slot, &info) ||
		    info.cookie != cookie)
			continue;
		if (info.hold) {
			steer.hold = slot + 1;
			continue;
		}
		if (!info.enabled)
			continue;
		steer.credit[slot] = steer_index(&old, slot) >= 0 ? old.credit[slot] : level;
		steer.slots[steer.nmembers++] = slot;
	}
	/* the turn stays with the member served last, or the one that took its place */
	at = old.cursor < old.nmembers ? steer_index(&steer, old.slots[old.cursor]) : -1;
	if (at < 0)
		for (__u32 i = 0; i < steer.nmembers; i++)
			if (old.cursor < old.nmembers && steer.slots[i] < old.slots[old.cursor])
				at = i;
	steer.cursor = at >= 0 ? (__u32)at : steer.nmembers ? steer.nmembers - 1 : 0;
	if (bpf_map_update_elem(mux->map_fd[KCM_MAP_STEER], &key, &steer, BPF_F_LOCK))
		return -errno;
	return 0;
}
