// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Receive credits: the verdict counts the bytes it gives each KCM socket, readers count
 * the bytes they take off it, and the difference is what the socket holds unread
 * wherever the kernel keeps it (receive queue or psock backlog). Both counters live in
 * the mux's mmapped "credits" map, so every process of a pinned mux shares them.
 */
#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "internal.h"

static size_t page_round(size_t bytes)
{
	size_t page = sysconf(_SC_PAGESIZE);

	return (bytes + page - 1) / page * page;
}

int kcm_credits_map(struct kcm_mux *mux)
{
	void *c = mmap(NULL, page_round(sizeof(struct kcm_credits)), PROT_READ | PROT_WRITE,
		       MAP_SHARED, mux->map_fd[KCM_MAP_CREDITS], 0);
	void *f = mmap(NULL, page_round(sizeof(struct kcm_flow_state)), PROT_READ | PROT_WRITE,
		       MAP_SHARED, mux->map_fd[KCM_MAP_FLOW], 0);

	mux->credits = c == MAP_FAILED ? NULL : c;
	mux->flow = f == MAP_FAILED ? NULL : f;
	if (mux->credits && mux->flow)
		return 0;
	return kcm_fail(-errno, "failed to map the flow-control maps of the mux");
}

void kcm_credits_unmap(struct kcm_mux *mux)
{
	if (mux->credits)
		munmap(mux->credits, page_round(sizeof(struct kcm_credits)));
	if (mux->flow)
		munmap(mux->flow, page_round(sizeof(struct kcm_flow_state)));
	mux->credits = NULL;
	mux->flow = NULL;
}

/* A reader of group slot @slot took @msgs messages of @bytes off its socket. */
void kcm_credits_consume(struct kcm_mux *mux, uint32_t slot, uint64_t bytes, unsigned int msgs)
{
	bytes += (uint64_t)msgs * kcm_msg_cost(&mux->cfg);
	if (mux->credits && slot < KCM_MAX_MEMBERS && bytes)
		__atomic_fetch_add(&mux->credits->consumed[slot].bytes, bytes, __ATOMIC_RELEASE);
}

/* Bytes given to group slot @slot and not yet read. */
uint64_t kcm_credits_unread(const struct kcm_mux *mux, uint32_t slot)
{
	uint64_t consumed, given;

	if (!mux->credits || slot >= KCM_MAX_MEMBERS)
		return 0;
	/* consumed first: given only grows, so the difference never goes negative */
	consumed = __atomic_load_n(&mux->credits->consumed[slot].bytes, __ATOMIC_ACQUIRE);
	given = __atomic_load_n(&mux->credits->given[slot].bytes, __ATOMIC_ACQUIRE);
	return given > consumed ? given - consumed : 0;
}

/* A slot given out again starts empty (caller holds the mux lock; the slot is unused). */
void kcm_credits_reset(struct kcm_mux *mux, uint32_t slot)
{
	if (!mux->credits || slot >= KCM_MAX_MEMBERS)
		return;
	__atomic_store_n(&mux->credits->given[slot].bytes, 0, __ATOMIC_RELEASE);
	__atomic_store_n(&mux->credits->consumed[slot].bytes, 0, __ATOMIC_RELEASE);
}

int64_t kcm_unread(int kcmfd)
{
	struct kcm_sock *ks = kcm_registry_get_checked(kcmfd);

	if (!ks) {
		errno = EBADF;
		return -1;
	}
	return kcm_credits_unread(ks->mux, ks->slot);
}
