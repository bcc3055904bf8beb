// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Receive: one whole message per call. Redirected messages are queued whole and in
 * order but recv() merges them, so peek the length header and read exactly one message.
 */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include "internal.h"

#define HDR_MAX (4096 + 8)
#define SPLIT_PEEK 64		/* bytes a shipped parser needs to tell a length, at most */
#define IOV_STACK 64
#define IOV_BATCH 1024		/* UIO_MAXIOV */
#define PEEK_MAX (1024 * 1024)	/* bytes one kcm_recvmmsg() looks at, at most */
#define PEEK_MIN (64 * 1024)

static __thread char scratch[64 * 1024];

/* Wait for data; the kernel's blocking recv on a sockmap target returns spurious EAGAINs. */
static int wait_readable(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };

	if (poll(&p, 1, -1) < 0)
		return -errno;
	return 0;
}

/* With parser programs each queued redirect is one message: the kernel has its length. */
static ssize_t next_len_queued(struct kcm_sock *ks)
{
	int n = 0;

	if (ioctl(ks->fd, FIONREAD, &n))
		return -errno;
	return n > 0 ? n : -EAGAIN;
}

/*
 * Peek the length of the next message; -EAGAIN when none is queued. Only whole messages
 * are queued, so a peek that cannot tell means bytes that cannot be a message: drop them.
 */
ssize_t kcm_next_len(struct kcm_sock *ks)
{
	const struct kcm_mux *mux = ks->mux;
	size_t want = mux->split_prog >= 0 ? KCM_SPLIT_PROG_PEEK :
		      mux->split ? SPLIT_PEEK : mux->framing.len_offset + mux->framing.len_size;
	unsigned char hdr[HDR_MAX];
	ssize_t r;

	if (kcm_one_per_redirect(&mux->cfg))
		return next_len_queued(ks);
	for (;;) {
		r = recv(ks->fd, hdr, want, MSG_PEEK | MSG_DONTWAIT);
		if (r >= 0)
			break;
		if (errno != EINTR)
			return -errno;
	}
	r = r ? kcm_msg_length(mux, hdr, r) : 0;
	if (r > 0)
		return r;
	r = recv(ks->fd, hdr, sizeof(hdr), MSG_DONTWAIT);
	kcm_credits_consume(ks->mux, ks->slot, r > 0 ? r : 0, 0);
	return -EBADMSG;
}

/* Read exactly @len bytes: the caller's buffers first, a truncated tail into scratch. */
static ssize_t read_exact(int fd, const struct msghdr *msg, size_t len, size_t *copied)
{
	struct iovec stack[IOV_STACK + 1], *iov = stack, *cur;
	size_t got = 0, n = 0, room = 0;
	struct msghdr m = { 0 };
	ssize_t r;

	if (msg->msg_iovlen > IOV_STACK) {
		iov = calloc(msg->msg_iovlen + 1, sizeof(*iov));
		if (!iov)
			return -ENOMEM;
	}
	for (size_t i = 0; i < msg->msg_iovlen && room < len; i++) {
		size_t l = msg->msg_iov[i].iov_len;

		if (l > len - room)
			l = len - room;
		iov[n++] = (struct iovec){ msg->msg_iov[i].iov_base, l };
		room += l;
	}
	*copied = room;
	cur = iov;
	while (got < len) {
		if (n == 0) { /* truncated tail: discard it through scratch */
			size_t l = len - got < sizeof(scratch) ? len - got : sizeof(scratch);

			cur = iov;
			*cur = (struct iovec){ scratch, l };
			n = 1;
		}
		m.msg_iov = cur;
		m.msg_iovlen = n;
		r = recvmsg(fd, &m, MSG_DONTWAIT);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 && errno == EAGAIN && !wait_readable(fd))
			continue;
		if (r <= 0) {
			r = r < 0 ? -errno : -EBADMSG;
			goto out;
		}
		got += r;
		kcm_iov_advance(&cur, &n, r);
	}
	r = len;
out:
	if (iov != stack)
		free(iov);
	return r;
}

ssize_t kcm_recvmsg(int kcmfd, struct msghdr *msg, int flags)
{
	struct kcm_sock *ks = kcm_registry_get(kcmfd);
	size_t copied = 0;
	ssize_t len;

	if (!ks || !msg) {
		errno = ks ? EINVAL : EBADF;
		return -1;
	}
	for (;;) {
		/* Never wait holding the lock: kcm_recv_disable() needs it to drain. */
		pthread_mutex_lock(&ks->rlock);
		len = kcm_next_len(ks);
		if (len > 0)
			len = read_exact(kcmfd, msg, len, &copied);
		if (len > 0)
			kcm_credits_consume(ks->mux, ks->slot, len, 1);
		pthread_mutex_unlock(&ks->rlock);
		if (len != -EAGAIN || kcm_fd_nonblocking(kcmfd, flags))
			break;
		len = wait_readable(kcmfd);
		if (len)
			break;
		len = -EAGAIN;
	}
	if (len < 0) {
		errno = -len;
		return -1;
	}
	msg->msg_flags = (size_t)len > copied ? MSG_TRUNC : 0;
	msg->msg_controllen = 0;
	msg->msg_namelen = 0;
	return (flags & MSG_TRUNC) ? len : (ssize_t)copied;
}

ssize_t kcm_recv(int kcmfd, void *buf, size_t len, int flags)
{
	struct iovec iov = { buf, len };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };

	return kcm_recvmsg(kcmfd, &msg, flags);
}

/*
 * Several messages with one peek and one read: the peek finds the boundaries, and a
 * single recvmsg() scatters exactly those bytes into the callers' buffers (truncated
 * tails into scratch). Returns the count, or -EAGAIN / -errno when none was read.
 */
static int recv_batch(struct kcm_sock *ks, struct mmsghdr *vec, unsigned int vlen, int flags)
{
	static __thread unsigned char peek[PEEK_MAX];
	struct iovec iov[IOV_BATCH], *cur = iov;
	const struct kcm_mux *mux = ks->mux;
	size_t niov = 0, total = 0, got = 0, n, want = 0;
	unsigned int k = 0;
	struct msghdr m = { 0 };
	ssize_t r;

	/* Peek about what the buffers can take: a peek copies every byte it looks at. */
	for (unsigned int i = 0; i < vlen && want < sizeof(peek); i++)
		for (size_t j = 0; j < vec[i].msg_hdr.msg_iovlen; j++)
			want += vec[i].msg_hdr.msg_iov[j].iov_len;
	want = want < PEEK_MIN ? PEEK_MIN : want > sizeof(peek) ? sizeof(peek) : want;
	r = recv(ks->fd, peek, want, MSG_PEEK | MSG_DONTWAIT);
	if (r < 0)
		return -errno;
	for (size_t off = 0; k < vlen && off < (size_t)r; k++) {
		int64_t len = kcm_msg_length(mux, peek + off, r - off);
		struct msghdr *h = &vec[k].msg_hdr;
		size_t room = 0, need = h->msg_iovlen + 1;

		if (len <= 0 || (size_t)len > r - off || niov + need > IOV_BATCH)
			break; /* incomplete in the peek window: the single path reads it */
		for (size_t i = 0; i < h->msg_iovlen && room < (size_t)len; i++) {
			size_t l = h->msg_iov[i].iov_len;

			if (l > len - room)
				l = len - room;
			iov[niov++] = (struct iovec){ h->msg_iov[i].iov_base, l };
			room += l;
		}
		if (room < (size_t)len) {
			if ((size_t)len - room > sizeof(scratch))
				break;
			iov[niov++] = (struct iovec){ scratch, len - room };
		}
		h->msg_flags = room < (size_t)len ? MSG_TRUNC : 0;
		h->msg_controllen = 0;
		h->msg_namelen = 0;
		vec[k].msg_len = (flags & MSG_TRUNC) ? (unsigned int)len : (unsigned int)room;
		total += len;
		off += len;
	}
	if (!k)
		return 0;
	n = niov;
	while (got < total) {
		m.msg_iov = cur;
		m.msg_iovlen = n;
		r = recvmsg(ks->fd, &m, MSG_DONTWAIT);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return r < 0 ? -errno : -EBADMSG; /* the peeked bytes vanished */
		got += r;
		kcm_iov_advance(&cur, &n, r);
	}
	kcm_credits_consume(ks->mux, ks->slot, total, k);
	return k;
}

/* Parser programs leave no length in the bytes to batch with: one message per call. */
static int recv_each(int kcmfd, struct mmsghdr *vec, unsigned int vlen, int flags)
{
	unsigned int k;

	for (k = 0; k < vlen; k++) {
		ssize_t r = kcm_recvmsg(kcmfd, &vec[k].msg_hdr, k ? flags | MSG_DONTWAIT : flags);

		if (r < 0)
			break;
		vec[k].msg_len = r;
	}
	if (k == 0)
		return -1;
	return k;
}

int kcm_recvmmsg(int kcmfd, struct mmsghdr *vec, unsigned int vlen, int flags)
{
	struct kcm_sock *ks = kcm_registry_get(kcmfd);
	int n;

	if (!ks || (!vec && vlen)) {
		errno = ks ? EINVAL : EBADF;
		return -1;
	}
	if (!vlen)
		return 0;
	if (kcm_one_per_redirect(&ks->mux->cfg))
		return recv_each(kcmfd, vec, vlen, flags);
	for (;;) {
		pthread_mutex_lock(&ks->rlock);
		n = recv_batch(ks, vec, vlen, flags);
		pthread_mutex_unlock(&ks->rlock);
		if (n != -EAGAIN || kcm_fd_nonblocking(kcmfd, flags))
			break;
		n = wait_readable(kcmfd);
		if (n)
			break;
	}
	if (n == 0) {
		/* the first message is larger than one peek: read it on its own */
		ssize_t r = kcm_recvmsg(kcmfd, &vec[0].msg_hdr, flags | MSG_DONTWAIT);

		if (r < 0)
			return -1;
		vec[0].msg_len = r;
		return 1;
	}
	if (n < 0) {
		errno = -n;
		return -1;
	}
	return n;
}
