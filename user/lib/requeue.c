// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Receive disable: take a KCM socket out of the steering list, then move what is
 * queued on it to the other members. A message is moved by writing it to the socket
 * itself (it is connected to itself); the group's requeue verdict steers that datagram
 * to a receive-enabled member.
 */
#include <errno.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <bpf/bpf.h>

#include "internal.h"

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
	if (mux->cfg.parsers) { /* only the first message's length is visible */
		rep->kept += n > 0;
		rep->kept_bytes += n > 0 ? n : 0;
		n = 0;
	}
	while (n > 0 && off < n) {
		int64_t len = kcm_frame_length(&mux->framing, buf + off, n - off, mux->cfg.max_msg);

		if (len <= 0)
			break;
		rep->kept++;
		rep->kept_bytes += len;
		off += len;
	}
	free(buf);
}

static int set_enabled(struct kcm_sock *ks, bool enabled, unsigned int *others)
{
	struct kcm_mux *mux = ks->mux;
	struct kcm_member_info info;
	struct kcm_steer steer;
	__u32 key = 0;
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
	if (!err && !bpf_map_lookup_elem(mux->map_fd[KCM_MAP_STEER], &key, &steer))
		*others = steer.nmembers;
out:
	kcm_mux_unlock(mux);
	return err;
}

int kcm_recv_disable(int kcmfd, bool on, struct kcm_requeue_report *report)
{
	struct kcm_sock *ks = kcm_registry_get_checked(kcmfd);
	struct kcm_requeue_report rep = { 0 };
	unsigned int others = 0;
	int sndbuf = 0, err, max_dgram;
	socklen_t sl = sizeof(sndbuf);
	unsigned char *buf = NULL;

	if (!ks) {
		errno = EBADF;
		return -1;
	}
	err = set_enabled(ks, !on, &others);
	if (err || !on)
		goto out;
	getsockopt(kcmfd, SOL_SOCKET, SO_SNDBUF, &sndbuf, &sl);
	pthread_mutex_lock(&ks->rlock);
	if (!others) {
		rep.kept_reason = ENOENT;
		count_kept(ks, &rep);
		goto unlock;
	}
	/* A unix datagram must fit the send buffer (less its 32-byte reserve); UDP 64 KiB. */
	max_dgram = ks->mux->cfg.parsers ? 65507 : sndbuf - 32;
	for (;;) {
		ssize_t len = kcm_next_len(ks);

		if (len <= 0)
			break;
		if (len > max_dgram) {
			rep.kept_reason = EMSGSIZE;
			count_kept(ks, &rep);
			break;
		}
		if (!buf) {
			buf = malloc(ks->mux->cfg.max_msg);
			if (!buf) {
				err = -ENOMEM;
				break;
			}
		}
		if (recv(kcmfd, buf, len, MSG_DONTWAIT) != len) {
			err = -EIO;
			break;
		}
		if (send(kcmfd, buf, len, 0) != len) {
			err = -errno;
			break;
		}
		rep.moved++;
	}
unlock:
	if (rep.moved)
		kcm_stats_requeued(ks->mux, ks->slot, rep.moved);
	pthread_mutex_unlock(&ks->rlock);
	free(buf);
out:
	if (report)
		*report = rep;
	if (err)
		errno = -err;
	return err ? -1 : 0;
}
