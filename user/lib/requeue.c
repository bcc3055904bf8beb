// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Receive disable and close: take a KCM socket out of the steering list, then move every
 * message the verdict gave it to the other members. A message is moved by writing it to
 * the socket itself (it is connected to itself); the group's requeue verdict steers that
 * datagram to a member with room, or to the hold queue when there is none. The credits
 * (credits.c) say how many bytes were given to the socket and not yet read, so messages
 * the kernel still holds in the socket's backlog are waited for too, up to a bound.
 */
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <bpf/bpf.h>

#include "internal.h"
#include "kcm_sidecar.h"

#define MS 1000000ull

/* Count the messages still queued, without consuming them. */
static void count_kept(struct kcm_sock *ks, struct kcm_requeue_report *rep)
{
	const struct kcm_mux *mux = ks->mux;
	size_t cap = (size_t)mux->cfg.member_rcvbuf * 2 + mux->cfg.max_msg;
	unsigned char *buf = malloc(cap);
	ssize_t n, off = 0;

	if (!buf)
		return;
	n = recv(ks->fd, buf, cap, MSG_PEEK | MSG_DONTWAIT);
	if (kcm_one_per_redirect(&mux->cfg)) { /* only the first message's length shows */
		rep->kept += n > 0;
		rep->kept_bytes += n > 0 ? n : 0;
		n = 0;
	}
	while (n > 0 && off < n) {
		int64_t len = kcm_msg_length(mux, buf + off, n - off);

		if (len <= 0)
			break;
		rep->kept++;
		rep->kept_bytes += len;
		off += len;
	}
	free(buf);
}

/* Receive-enabled members of @mux, and whether it has a hold queue. */
static unsigned int steer_targets(struct kcm_mux *mux, bool *hold)
{
	struct kcm_steer steer = { 0 };
	__u32 key = 0;

	if (bpf_map_lookup_elem_flags(mux->map_fd[KCM_MAP_STEER], &key, &steer, BPF_F_LOCK))
		return 0;
	*hold = steer.hold != 0;
	return steer.nmembers;
}

static int set_enabled(struct kcm_sock *ks, bool enabled)
{
	struct kcm_mux *mux = ks->mux;
	struct kcm_member_info info;
	int err;

	err = kcm_mux_lock(mux);
	if (err)
		return err;
	if (bpf_map_lookup_elem(mux->map_fd[KCM_MAP_MEMBER_INFO], &ks->slot, &info) ||
	    info.cookie != ks->cookie) {
		err = -EBADF;
		goto out;
	}
	info.enabled = enabled;
	if (bpf_map_update_elem(mux->map_fd[KCM_MAP_MEMBER_INFO], &ks->slot, &info, BPF_ANY)) {
		err = -errno;
		goto out;
	}
	err = kcm_steer_sync(mux);
out:
	kcm_mux_unlock(mux);
	return err;
}

/* Wait until @fd polls @events, at most until @deadline: 0, or -ETIMEDOUT. */
static int wait_until(int fd, short events, uint64_t deadline)
{
	struct pollfd p = { .fd = fd, .events = events };
	uint64_t now = kcm_now_ns();
	int ms;

	if (now >= deadline)
		return -ETIMEDOUT;
	ms = (deadline - now + MS - 1) / MS;
	if (poll(&p, 1, ms > 10 ? 10 : ms) < 0 && errno != EINTR)
		return -errno;
	return 0;
}

/*
 * Length of the next datagram to move: when the mux batches (a length prefix), as many
 * whole messages as fit KCM_REQUEUE_BATCH (the receiving socket re-splits them), at
 * least one; else one message (parser programs, batch 1). 0 when none is queued now, -errno on error.
 */
static ssize_t next_batch(struct kcm_sock *ks, unsigned char *buf, size_t cap, unsigned int *msgs)
{
	const struct kcm_mux *mux = ks->mux;
	ssize_t first = kcm_next_len(ks), n, off = 0;

	*msgs = 1;
	if (first == -EAGAIN)
		return 0;
	if (first <= 0 || mux->cfg.batch <= 1 || mux->cfg.parsers ||
	    (size_t)first >= KCM_REQUEUE_BATCH)
		return first;
	n = recv(ks->fd, buf, cap < KCM_REQUEUE_BATCH ? cap : KCM_REQUEUE_BATCH,
		 MSG_PEEK | MSG_DONTWAIT);
	*msgs = 0;
	while (n > off) {
		int64_t len = kcm_frame_length(&mux->framing, buf + off, n - off, mux->cfg.max_msg);

		if (len <= 0 || len > n - off)
			break;
		off += len;
		(*msgs)++;
	}
	if (!*msgs) {
		*msgs = 1;
		return first;
	}
	return off;
}

/*
 * Move what was given to @ks to the other members, until its credits say nothing is
 * left or @deadline passes; with @until, each batch moved pushes @deadline to
 * KCM_REQUEUE_MS from then, up to @until (a slow or busy CPU still delivering the
 * backlog). Never blocks past @deadline: a write waits for room first,
 * so messages are only taken off the socket once they can be written back at once.
 * With no other member they go to the hold queue when @hold_ok, else they stay
 * (ENOENT). @report may be NULL (nothing counted). Caller holds ks->rlock, with @ks out
 * of the steering list.
 */
int kcm_requeue_all(struct kcm_sock *ks, uint64_t deadline, uint64_t until, bool hold_ok,
		    struct kcm_requeue_report *report)
{
	struct kcm_requeue_report quiet = { 0 }, *rep = report ? report : &quiet;
	struct kcm_mux *mux = ks->mux;
	int sndbuf = 0, max_dgram, err = 0;
	socklen_t sl = sizeof(sndbuf);
	size_t cap = mux->cfg.max_msg > KCM_REQUEUE_BATCH ? mux->cfg.max_msg : KCM_REQUEUE_BATCH;
	unsigned char *buf = NULL;
	unsigned int msgs;
	bool hold = false;
	ssize_t len;

	if (!steer_targets(mux, &hold) && !(hold && hold_ok)) {
		rep->kept_reason = ENOENT;
		if (report)
			count_kept(ks, rep);
		return 0;
	}
	/*
	 * UDP drops a datagram that finds its socket over its receive buffer, and the one
	 * being emptied is often full (what was in flight for it still lands): it is going
	 * away or out of the group, so let it hold what it holds.
	 */
	if (kcm_one_per_redirect(&mux->cfg))
		kcm_set_buf(ks->fd, SO_RCVBUF, SO_RCVBUFFORCE, INT_MAX / 2);
	getsockopt(ks->fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, &sl);
	/* A unix datagram must fit the send buffer (less its 32-byte reserve); UDP 64 KiB. */
	max_dgram = kcm_one_per_redirect(&mux->cfg) ? 65507 : sndbuf - 32;
	buf = malloc(cap);
	if (!buf)
		return -ENOMEM;
	while (kcm_credits_unread(mux, ks->slot) > 0) {
		len = next_batch(ks, buf, cap, &msgs);
		if (len == 0) { /* still in the kernel's backlog for this socket */
			err = wait_until(ks->fd, POLLIN, deadline);
			if (err)
				break;
			continue;
		}
		if (len < 0) {
			err = len;
			break;
		}
		if (len > max_dgram) {
			rep->kept_reason = EMSGSIZE;
			break;
		}
		err = wait_until(ks->fd, POLLOUT, deadline);
		if (err)
			break;
		if (!(poll(&(struct pollfd){ .fd = ks->fd, .events = POLLOUT }, 1, 0) > 0))
			continue;
		if (recv(ks->fd, buf, len, MSG_DONTWAIT) != len) {
			err = -EIO;
			break;
		}
		kcm_credits_consume(mux, ks->slot, len, msgs);
		if (send(ks->fd, buf, len, 0) != len) {
			err = -errno;
			break;
		}
		rep->moved += msgs;
		if (until) {
			uint64_t later = kcm_now_ns() + KCM_REQUEUE_MS * MS;

			deadline = later < until ? later : until;
		}
	}
	if (err == -ETIMEDOUT && !rep->kept_reason)
		rep->kept_reason = ETIMEDOUT;
	if (rep->kept_reason && report)
		count_kept(ks, rep);
	if (rep->moved)
		kcm_stats_requeued(mux, ks->slot, rep->moved);
	free(buf);
	return err == -ETIMEDOUT ? 0 : err;
}

int kcm_recv_disable(int kcmfd, bool on, struct kcm_requeue_report *report)
{
	struct kcm_sock *ks = kcm_registry_get_checked(kcmfd);
	struct kcm_requeue_report rep = { 0 };
	int err;

	if (!ks) {
		errno = EBADF;
		return -1;
	}
	if (kcm_is_remote(ks->mux)) {
		struct kcm_sc_recv_disable r = { .cookie = ks->cookie, .on = on };

		/* the sidecar sets the flag and moves what is queued (through its copy) */
		pthread_mutex_lock(&ks->rlock);
		err = kcm_remote_call(ks->mux, KCM_SC_RECV_DISABLE, &r, sizeof(r), -1, &r,
				      sizeof(r), NULL, 0, NULL);
		pthread_mutex_unlock(&ks->rlock);
		rep.moved = r.moved;
		rep.kept = r.kept;
		err = err < 0 ? err : 0;
	} else {
		err = set_enabled(ks, !on);
	}
	if (!err && on && !kcm_is_remote(ks->mux)) {
		pthread_mutex_lock(&ks->rlock);
		err = kcm_requeue_all(ks, kcm_now_ns() + KCM_REQUEUE_MS * MS, 0, false, &rep);
		pthread_mutex_unlock(&ks->rlock);
	}
	if (report)
		*report = rep;
	if (err)
		errno = -err;
	return err ? -1 : 0;
}

/*
 * kcm_close(): like AF_KCM, hand everything given to the socket to the other members
 * (or the hold queue) before it goes, whatever the kernel still delivers to it: the
 * wait ends KCM_REQUEUE_MS after the last message moved, at most KCM_CLOSE_MAX_MS in
 * all. (A fixed 1 s lost 261 of 200,000 messages in a TCG guest, whose backlog took
 * longer to arrive.) Returns the report.
 */
void kcm_requeue_close(struct kcm_sock *ks, struct kcm_requeue_report *rep)
{
	uint64_t now = kcm_now_ns();

	if (set_enabled(ks, false))
		return;
	pthread_mutex_lock(&ks->rlock);
	kcm_requeue_all(ks, now + KCM_REQUEUE_MS * MS, now + KCM_CLOSE_MAX_MS * MS, true, rep);
	pthread_mutex_unlock(&ks->rlock);
}
