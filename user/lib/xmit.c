// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Transmit: each message is written whole to one transport while holding that
 * transport's lock, so no other message can interleave with it. A sender first tries
 * every idle transport without waiting, and waits only when all are busy or full.
 * (A plain sk_msg redirect interleaves under backpressure; see docs/design.md.)
 */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <linux/sock_diag.h>

#include "internal.h"

#define IOV_STACK 64
#define IOV_BATCH 1024 /* UIO_MAXIOV */

static int wait_writable(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLOUT };

	if (poll(&p, 1, -1) < 0)
		return -errno;
	return 0;
}

/*
 * Whether @total bytes fit in the free send buffer now, with room for skb overhead.
 * An empty buffer always takes the message: one larger than the buffer goes out then.
 */
static bool has_room(int fd, size_t total)
{
	__u32 mem[SK_MEMINFO_VARS] = { 0 };
	socklen_t len = sizeof(mem);
	uint64_t queued;

	if (getsockopt(fd, SOL_SOCKET, SO_MEMINFO, mem, &len))
		return true;
	queued = mem[SK_MEMINFO_WMEM_QUEUED];
	return !queued || queued + total + total / 4 + 4096 <= mem[SK_MEMINFO_SNDBUF];
}

/*
 * Write all of @iov. Returns @total, -EAGAIN when nothing was written and @may_wait is
 * false, or another negative errno (the transport is then unusable). Once the first
 * byte is out the rest follows, waiting if need be: a half message would corrupt the
 * stream for every later message.
 */
static ssize_t write_whole(int fd, const struct iovec *src, size_t niov, size_t total,
			   bool may_wait, bool nonblock)
{
	struct iovec stack[IOV_STACK], *iov = stack, *cur;
	struct msghdr m = { 0 };
	size_t sent = 0, n = niov;
	ssize_t r;

	if (niov > IOV_STACK) {
		iov = calloc(niov, sizeof(*iov));
		if (!iov)
			return -ENOMEM;
	}
	memcpy(iov, src, niov * sizeof(*iov));
	cur = iov;
	/* TCP takes a partial write when the buffer is nearly full; a non-blocking
	 * sender must not start what it cannot finish without waiting. */
	if (nonblock && !may_wait && !has_room(fd, total)) {
		r = -EAGAIN;
		goto out;
	}
	while (sent < total) {
		m.msg_iov = cur;
		m.msg_iovlen = n;
		r = sendmsg(fd, &m, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (r > 0) {
			sent += r;
			kcm_iov_advance(&cur, &n, r);
			continue;
		}
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 && errno == EAGAIN) {
			if (sent == 0 && !may_wait) {
				r = -EAGAIN;
				goto out;
			}
			r = wait_writable(fd);
			if (r && r != -EINTR)
				goto out;
			continue;
		}
		r = r < 0 ? -errno : -EPIPE;
		goto out;
	}
	r = total;
out:
	if (iov != stack)
		free(iov);
	return r;
}

/* Lock a transport against this process's threads and, for a pinned mux, other processes. */
static bool tx_lock(struct kcm_mux *mux, struct kcm_transport *t, bool wait)
{
	if (wait)
		pthread_mutex_lock(&t->lock);
	else if (pthread_mutex_trylock(&t->lock))
		return false;
	if (mux->name[0] && flock(t->fd, wait ? LOCK_EX : LOCK_EX | LOCK_NB)) {
		pthread_mutex_unlock(&t->lock);
		return false;
	}
	return true;
}

static void tx_unlock(struct kcm_mux *mux, struct kcm_transport *t)
{
	if (mux->name[0])
		flock(t->fd, LOCK_UN);
	pthread_mutex_unlock(&t->lock);
}

/* A write failed: the transport is never chosen again. */
static void tx_dead(struct kcm_mux *mux, struct kcm_transport *t)
{
	if (!atomic_exchange(&t->dead, true))
		kcm_stats_tx_error(mux);
}

/* Pass 1: any idle transport with room, without waiting. Counts the full ones. */
static ssize_t try_each(struct kcm_mux *mux, const struct msghdr *msg, size_t total,
			unsigned int start, bool nonblock, struct pollfd *full, unsigned int *nfull,
			unsigned int *live, struct kcm_transport **used)
{
	unsigned int n = mux->ntx;
	ssize_t r;

	*nfull = *live = 0;
	for (unsigned int i = 0; i < n; i++) {
		struct kcm_transport *t = mux->tx[(start + i) % n];

		if (atomic_load(&t->dead))
			continue;
		(*live)++;
		if (!tx_lock(mux, t, false))
			continue;
		r = write_whole(t->fd, msg->msg_iov, msg->msg_iovlen, total, false, nonblock);
		tx_unlock(mux, t);
		if (r >= 0) {
			*used = t;
			return r;
		}
		if (r == -EAGAIN)
			full[(*nfull)++] = (struct pollfd){ .fd = t->fd, .events = POLLOUT };
		else
			tx_dead(mux, t);
	}
	return -EAGAIN;
}

static ssize_t send_locked_table(struct kcm_mux *mux, const struct msghdr *msg, size_t total,
				 bool nonblock, struct kcm_transport **used)
{
	struct pollfd full[KCM_MAX_TRANSPORTS];
	unsigned int n = mux->ntx, start, live, nfull;
	ssize_t r;

	if (n == 0)
		return -ENOTCONN;
	start = atomic_fetch_add_explicit(&mux->tx_next, 1, memory_order_relaxed);
	for (;;) {
		r = try_each(mux, msg, total, start, nonblock, full, &nfull, &live, used);
		if (r != -EAGAIN)
			return r;
		if (!live)
			return -EPIPE;
		if (nonblock)
			return -EAGAIN;
		if (!nfull)
			break; /* all busy with other senders: queue on one below */
		/*
		 * Wait for room on any full transport holding no lock: a sender that waited
		 * on one transport's lock while the holder waits for room would queue every
		 * sender behind the slowest transport.
		 */
		if (poll(full, nfull, 100) < 0 && errno != EINTR)
			return -errno;
	}
	/* Pass 2: wait for the first live transport in turn. */
	for (unsigned int i = 0; i < n; i++) {
		struct kcm_transport *t = mux->tx[(start + i) % n];

		if (atomic_load(&t->dead) || !tx_lock(mux, t, true))
			continue;
		r = write_whole(t->fd, msg->msg_iov, msg->msg_iovlen, total, true, false);
		tx_unlock(mux, t);
		if (r >= 0) {
			*used = t;
			return r;
		}
		tx_dead(mux, t);
	}
	return -EPIPE;
}

/* @msgs whole messages of @total bytes from member @ks, on one transport. */
static ssize_t send_message(struct kcm_sock *ks, const struct msghdr *msg, size_t total,
			    unsigned int msgs, bool nonblock)
{
	struct kcm_mux *mux = ks->mux;
	struct kcm_transport *used = NULL;
	ssize_t r = kcm_tx_refresh(mux);

	if (r)
		return r;
	pthread_rwlock_rdlock(&mux->tx_lock);
	r = send_locked_table(mux, msg, total, nonblock, &used);
	if (r == -ENOTCONN && mux->name[0]) {
		/* a message can arrive on a transport just before its attach is published */
		int scanned;

		pthread_rwlock_unlock(&mux->tx_lock);
		scanned = kcm_tx_rescan(mux);
		if (scanned <= 0)
			return scanned < 0 ? scanned : r;
		pthread_rwlock_rdlock(&mux->tx_lock);
		r = send_locked_table(mux, msg, total, nonblock, &used);
	}
	if (r >= 0 && used)
		kcm_stats_tx(mux, used->slot, ks->slot, msgs, total);
	pthread_rwlock_unlock(&mux->tx_lock);
	return r;
}

/*
 * As on an AF_KCM datagram socket, calls with MSG_MORE compose one message: the parts
 * wait here and go out whole with the first call without MSG_MORE. A part that would
 * make the message longer than the maximum fails with EMSGSIZE and discards it.
 */
static ssize_t send_composed(struct kcm_sock *ks, const struct msghdr *msg, size_t total,
			     int flags, bool nonblock)
{
	size_t before, max = ks->mux->cfg.max_msg;
	struct iovec iov;
	struct msghdr whole = { .msg_iov = &iov, .msg_iovlen = 1 };
	ssize_t r;

	pthread_mutex_lock(&ks->wlock);
	before = ks->pending_len;
	if (before + total > max) {
		ks->pending_len = 0;
		r = -EMSGSIZE;
		goto out;
	}
	if (before + total > ks->pending_cap) {
		uint8_t *p = realloc(ks->pending, max);

		if (!p) {
			r = -ENOMEM;
			goto out;
		}
		ks->pending = p;
		ks->pending_cap = max;
	}
	for (size_t i = 0; i < msg->msg_iovlen; i++) {
		memcpy(ks->pending + ks->pending_len, msg->msg_iov[i].iov_base, msg->msg_iov[i].iov_len);
		ks->pending_len += msg->msg_iov[i].iov_len;
	}
	r = total;
	if (flags & MSG_MORE)
		goto out;
	iov = (struct iovec){ ks->pending, ks->pending_len };
	r = ks->pending_len ? send_message(ks, &whole, ks->pending_len, 1, nonblock) : -EINVAL;
	/* sent: the message is done; failed: this call's part is withdrawn, retry it */
	ks->pending_len = r >= 0 ? 0 : before;
	if (r >= 0)
		r = total;
out:
	pthread_mutex_unlock(&ks->wlock);
	return r;
}

ssize_t kcm_sendmsg(int kcmfd, const struct msghdr *msg, int flags)
{
	struct kcm_sock *ks = kcm_registry_get(kcmfd);
	struct kcm_mux *mux;
	size_t total = 0;
	ssize_t r;

	if (!ks || !msg) {
		errno = ks ? EINVAL : EBADF;
		return -1;
	}
	mux = ks->mux;
	for (size_t i = 0; i < msg->msg_iovlen; i++)
		total += msg->msg_iov[i].iov_len;
	if ((flags & MSG_MORE) || ks->pending_len)
		r = send_composed(ks, msg, total, flags, kcm_fd_nonblocking(kcmfd, flags));
	else if (total == 0 || total > mux->cfg.max_msg)
		r = total ? -EMSGSIZE : -EINVAL;
	else
		r = send_message(ks, msg, total, 1, kcm_fd_nonblocking(kcmfd, flags));
	if (r < 0) {
		errno = -r;
		return -1;
	}
	return r;
}

ssize_t kcm_send(int kcmfd, const void *buf, size_t len, int flags)
{
	struct iovec iov = { (void *)buf, len };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };

	return kcm_sendmsg(kcmfd, &msg, flags);
}

/*
 * Consecutive whole messages go out in one locked sendmsg() on one transport: each is
 * still whole and unmixed on the wire, for one lock and one system call.
 */
int kcm_sendmmsg(int kcmfd, struct mmsghdr *vec, unsigned int vlen, int flags)
{
	struct kcm_sock *ks = kcm_registry_get(kcmfd);
	struct iovec iov[IOV_BATCH];
	unsigned int n = 0;

	if (!ks || (!vec && vlen)) {
		errno = ks ? EINVAL : EBADF;
		return -1;
	}
	while (n < vlen) {
		struct msghdr batch = { .msg_iov = iov };
		unsigned int k = n;
		size_t total = 0;
		ssize_t r;

		/* composing with MSG_MORE, or a message alone: one at a time */
		if ((flags & MSG_MORE) || ks->pending_len) {
			r = kcm_sendmsg(kcmfd, &vec[n].msg_hdr, flags);
			if (r < 0)
				break;
			vec[n++].msg_len = r;
			continue;
		}
		for (; k < vlen && k - n < KCM_MAX_BATCH; k++) {
			const struct msghdr *h = &vec[k].msg_hdr;
			size_t len = 0;

			if (batch.msg_iovlen + h->msg_iovlen > IOV_BATCH)
				break;
			for (size_t i = 0; i < h->msg_iovlen; i++)
				len += h->msg_iov[i].iov_len;
			if (len == 0 || len > ks->mux->cfg.max_msg)
				break; /* sent alone below, to fail with its own errno */
			memcpy(iov + batch.msg_iovlen, h->msg_iov, h->msg_iovlen * sizeof(*iov));
			batch.msg_iovlen += h->msg_iovlen;
			vec[k].msg_len = len;
			total += len;
		}
		if (k == n) {
			r = kcm_sendmsg(kcmfd, &vec[n].msg_hdr, flags);
			if (r < 0)
				break;
			vec[n++].msg_len = r;
			continue;
		}
		r = send_message(ks, &batch, total, k - n, kcm_fd_nonblocking(kcmfd, flags));
		if (r < 0) {
			errno = -r;
			break;
		}
		n = k;
	}
	if (n == 0 && vlen)
		return -1;
	return n;
}
