// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* File descriptor -> KCM socket table: two levels, lock-free lookups. It owns what it
 * holds: a socket it drops is freed here. */
#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

#include "internal.h"

#define CHUNK_BITS 10
#define CHUNK_SIZE (1u << CHUNK_BITS)
#define NCHUNKS 1024u /* fds below 1M */

typedef struct kcm_sock *_Atomic sock_slot;

static sock_slot *_Atomic chunks[NCHUNKS];
static pthread_mutex_t grow_lock = PTHREAD_MUTEX_INITIALIZER;

void kcm_sock_forget(struct kcm_sock *ks)
{
	pthread_mutex_destroy(&ks->rlock);
	pthread_mutex_destroy(&ks->wlock);
	free(ks->pending);
	free(ks);
}

void kcm_sock_free(struct kcm_sock *ks)
{
	close(ks->fd);
	kcm_sock_forget(ks);
}

static sock_slot *slot_of(int fd, bool create)
{
	unsigned int c = (unsigned int)fd >> CHUNK_BITS;
	sock_slot *chunk;

	if (fd < 0 || c >= NCHUNKS)
		return NULL;
	chunk = atomic_load(&chunks[c]);
	if (!chunk && create) {
		pthread_mutex_lock(&grow_lock);
		chunk = atomic_load(&chunks[c]);
		if (!chunk) {
			chunk = calloc(CHUNK_SIZE, sizeof(*chunk));
			if (chunk)
				atomic_store(&chunks[c], chunk);
		}
		pthread_mutex_unlock(&grow_lock);
	}
	return chunk ? &chunk[fd & (CHUNK_SIZE - 1)] : NULL;
}

int kcm_registry_add(struct kcm_sock *ks)
{
	sock_slot *s = slot_of(ks->fd, true);

	if (!s)
		return -EMFILE;
	atomic_store(s, ks);
	return 0;
}

struct kcm_sock *kcm_registry_get(int fd)
{
	sock_slot *s = slot_of(fd, false);

	return s ? atomic_load(s) : NULL;
}

/*
 * The fd may have been closed with close() and its number reused: check the socket
 * cookie. Used where a mistake would act on someone else's file (clone, close,
 * destroy, recv disable); the send and receive fast paths trust the table.
 */
struct kcm_sock *kcm_registry_get_checked(int fd)
{
	struct kcm_sock *ks = kcm_registry_get(fd);

	if (!ks || kcm_sock_cookie(fd) == ks->cookie)
		return ks;
	if (kcm_registry_take(fd) == ks)
		kcm_sock_forget(ks);
	return NULL;
}

struct kcm_sock *kcm_registry_take(int fd)
{
	sock_slot *s = slot_of(fd, false);

	return s ? atomic_exchange(s, NULL) : NULL;
}

void kcm_registry_drop_mux(struct kcm_mux *mux, void (*fn)(struct kcm_sock *ks))
{
	for (unsigned int c = 0; c < NCHUNKS; c++) {
		sock_slot *chunk = atomic_load(&chunks[c]);

		if (!chunk)
			continue;
		for (unsigned int i = 0; i < CHUNK_SIZE; i++) {
			struct kcm_sock *ks = atomic_load(&chunk[i]);

			if (!ks || ks->mux != mux ||
			    !atomic_compare_exchange_strong(&chunk[i], &ks, NULL))
				continue;
			if (kcm_sock_cookie(ks->fd) == ks->cookie)
				fn(ks);
			else
				kcm_sock_forget(ks); /* closed by the user, fd reused */
		}
	}
}
