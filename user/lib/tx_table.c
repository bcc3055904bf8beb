// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* The transmit table: the transports this process can write to, attached here or
 * imported from the process that attached them. */
#include <errno.h>
#include <stdlib.h>
#include <unistd.h>
#include <sys/socket.h>
#include <bpf/bpf.h>

#include "internal.h"
#include "pidfd.h"

int kcm_tx_add(struct kcm_mux *mux, int fd, uint32_t slot, uint64_t cookie)
{
	struct kcm_transport *t = calloc(1, sizeof(*t));

	if (!t)
		return -ENOMEM;
	socklen_t len = sizeof(t->local);

	t->fd = fd;
	t->slot = slot;
	t->cookie = cookie;
	getsockname(fd, (struct sockaddr *)&t->local, &len);
	len = sizeof(t->remote);
	getpeername(fd, (struct sockaddr *)&t->remote, &len);
	pthread_mutex_init(&t->lock, NULL);
	pthread_rwlock_wrlock(&mux->tx_lock);
	mux->tx[mux->ntx++] = t;
	pthread_rwlock_unlock(&mux->tx_lock);
	return 0;
}

static void tx_free(struct kcm_transport *t)
{
	close(t->fd);
	pthread_mutex_destroy(&t->lock);
	free(t);
}

void kcm_tx_remove(struct kcm_mux *mux, uint64_t cookie)
{
	pthread_rwlock_wrlock(&mux->tx_lock);
	for (unsigned int i = 0; i < mux->ntx; i++) {
		if (mux->tx[i]->cookie != cookie)
			continue;
		tx_free(mux->tx[i]);
		mux->tx[i] = mux->tx[--mux->ntx];
		break;
	}
	pthread_rwlock_unlock(&mux->tx_lock);
}

void kcm_tx_clear(struct kcm_mux *mux)
{
	pthread_rwlock_wrlock(&mux->tx_lock);
	for (unsigned int i = 0; i < mux->ntx; i++)
		tx_free(mux->tx[i]);
	mux->ntx = 0;
	pthread_rwlock_unlock(&mux->tx_lock);
}

struct kcm_transport *kcm_tx_find(struct kcm_mux *mux, uint64_t cookie)
{
	for (unsigned int i = 0; i < mux->ntx; i++)
		if (mux->tx[i]->cookie == cookie)
			return mux->tx[i];
	return NULL;
}

/* An fd of @cookie this process holds to send on, or -1. */
int kcm_tx_fd_of(struct kcm_mux *mux, uint64_t cookie)
{
	struct kcm_transport *t;
	int fd;

	pthread_rwlock_rdlock(&mux->tx_lock);
	t = kcm_tx_find(mux, cookie);
	fd = t ? t->fd : -1;
	pthread_rwlock_unlock(&mux->tx_lock);
	return fd;
}

struct listed {
	struct kcm_mux *mux;
	uint64_t cookie[KCM_MAX_TRANSPORTS];
	unsigned int n;
};

/* One transport of the sidecar's list: keep its fd unless we have it already. */
static int remote_listed(uint32_t slot, uint64_t cookie, int fd, void *ctx)
{
	struct listed *l = ctx;
	bool known = false;

	if (l->n < KCM_MAX_TRANSPORTS)
		l->cookie[l->n++] = cookie;
	pthread_rwlock_rdlock(&l->mux->tx_lock);
	for (unsigned int i = 0; i < l->mux->ntx; i++)
		known |= l->mux->tx[i]->cookie == cookie;
	pthread_rwlock_unlock(&l->mux->tx_lock);
	if (known || kcm_sock_cookie(fd) != cookie || kcm_tx_add(l->mux, fd, slot, cookie))
		close(fd);
	return 0;
}

/* A connected mux: the sidecar lists the transports and passes their fds. */
static int remote_refresh(struct kcm_mux *mux, __u32 gen)
{
	struct listed *l = calloc(1, sizeof(*l));
	int err;

	if (!l)
		return -ENOMEM;
	l->mux = mux;
	pthread_mutex_lock(&mux->lock);
	err = kcm_remote_transports(mux, remote_listed, l);
	pthread_rwlock_wrlock(&mux->tx_lock);
	for (unsigned int i = 0; !err && i < mux->ntx;) {
		bool listed = false;

		for (unsigned int j = 0; j < l->n; j++)
			listed |= l->cookie[j] == mux->tx[i]->cookie;
		if (listed) {
			i++;
			continue;
		}
		tx_free(mux->tx[i]);
		mux->tx[i] = mux->tx[--mux->ntx];
	}
	pthread_rwlock_unlock(&mux->tx_lock);
	if (!err)
		mux->tx_generation = gen;
	pthread_mutex_unlock(&mux->lock);
	free(l);
	return err;
}

/* At generation @gen; @force: look at the maps even if the generation did not move. */
static int refresh(struct kcm_mux *mux, __u32 gen, bool force)
{
	struct kcm_transport_info info;
	__u64 cookie;

	if (gen == mux->tx_generation && !force)
		return 0;
	if (kcm_is_remote(mux))
		return remote_refresh(mux, gen);
	pthread_mutex_lock(&mux->lock);
	/* drop what left */
	pthread_rwlock_wrlock(&mux->tx_lock);
	for (unsigned int i = 0; i < mux->ntx;) {
		struct kcm_transport *t = mux->tx[i];

		if (kcm_transport_slot(mux, t->slot, &info, &cookie) == KCM_SLOT_ATTACHED &&
		    cookie == t->cookie) {
			i++;
			continue;
		}
		tx_free(t);
		mux->tx[i] = mux->tx[--mux->ntx];
	}
	pthread_rwlock_unlock(&mux->tx_lock);
	/* import what came */
	for (__u32 slot = 0; slot < KCM_MAX_TRANSPORTS; slot++) {
		bool known = false;
		int fd;

		if (kcm_transport_slot(mux, slot, &info, &cookie) != KCM_SLOT_ATTACHED)
			continue;
		pthread_rwlock_rdlock(&mux->tx_lock);
		for (unsigned int i = 0; i < mux->ntx; i++)
			known |= mux->tx[i]->cookie == cookie;
		pthread_rwlock_unlock(&mux->tx_lock);
		if (known)
			continue;
		fd = kcm_pidfd_getfd(info.pid, info.fd);
		if (fd < 0)
			continue; /* owner gone or not ours to take: receive still works */
		if (kcm_sock_cookie(fd) != cookie || kcm_tx_add(mux, fd, slot, cookie))
			close(fd);
	}
	mux->tx_generation = gen;
	pthread_mutex_unlock(&mux->lock);
	return 0;
}

/*
 * A pinned mux may gain transports in other processes: when the generation moved,
 * import the new ones (pidfd_getfd) and drop the ones that left.
 */
int kcm_tx_refresh(struct kcm_mux *mux)
{
	return mux->name[0] ? refresh(mux, kcm_config_generation(mux), false) : 0;
}

/*
 * A send that found no transport scans every slot (1024 map lookups under the mux lock)
 * for one attached a moment ago: an attach is in the maps a moment before it moves the
 * generation, and a message can arrive on it in between. At most once a second while
 * the generation stays the same, counted from the end of the last scan (an attach that
 * completes moves the generation, which the next send sees anyway). A mux left with no
 * transport at all would otherwise scan on every send: 4 workers answering what a gone
 * client had queued took 16-28 s to stop natively, 5 minutes in a TCG guest (where a
 * scan takes longer than any gap counted from its start).
 * For a pinned mux: 1 when it scanned, 0 when no scan was due, -errno.
 */
#define TX_SCAN_GAP_NS (1000 * 1000 * 1000ull)

int kcm_tx_rescan(struct kcm_mux *mux)
{
	uint32_t gen = kcm_config_generation(mux);
	uint64_t last = __atomic_load_n(&mux->tx_scanned_ns, __ATOMIC_RELAXED);
	int err;

	if (gen == __atomic_load_n(&mux->tx_scanned_gen, __ATOMIC_RELAXED) && last &&
	    kcm_now_ns() - last < TX_SCAN_GAP_NS)
		return 0;
	err = refresh(mux, gen, true);
	__atomic_store_n(&mux->tx_scanned_gen, gen, __ATOMIC_RELAXED);
	__atomic_store_n(&mux->tx_scanned_ns, kcm_now_ns(), __ATOMIC_RELAXED);
	return err ? err : 1;
}
