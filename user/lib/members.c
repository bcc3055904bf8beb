// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* KCM sockets: the members of a mux's group, and the steering list built from them. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

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

/*
 * With parser programs, a loopback UDP socket connected to itself: the kernel tells a
 * UDP socket in a sockmap the length of its first queued message (FIONREAD), which is
 * the only boundary left when no length prefix is known.
 */
static int udp_self_socket(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t alen = sizeof(a);
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return kcm_fail(-errno, "failed to create a UDP socket for a KCM socket");
	if (bind(fd, (struct sockaddr *)&a, alen) || getsockname(fd, (struct sockaddr *)&a, &alen) ||
	    connect(fd, (struct sockaddr *)&a, alen)) {
		int err = kcm_fail(-errno, "failed to bind a KCM socket to 127.0.0.1 (a mux with "
				   "parser programs needs the loopback interface up)");

		close(fd);
		return err;
	}
	return fd;
}

/* A datagram socket connected to itself: kcm_recv_disable() requeues by writing to it. */
static int member_socket(const struct kcm_config *cfg)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	socklen_t alen = sizeof(sa_family_t);
	int fd, err;

	if (kcm_one_per_redirect(cfg)) {
		fd = udp_self_socket();
		if (fd < 0)
			return fd;
		goto sized;
	}
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (bind(fd, (struct sockaddr *)&a, alen)) /* autobind: a unique abstract name */
		goto fail;
	alen = sizeof(a);
	if (getsockname(fd, (struct sockaddr *)&a, &alen) || connect(fd, (struct sockaddr *)&a, alen))
		goto fail;
sized:
	err = kcm_set_buf(fd, SO_RCVBUF, SO_RCVBUFFORCE, cfg->member_rcvbuf);
	/* Room to write back the largest message, or a batch of small ones, on requeue. */
	if (!err)
		err = kcm_set_buf(fd, SO_SNDBUF, SO_SNDBUFFORCE,
				  (int)cfg->max_msg + 4096 > KCM_REQUEUE_BATCH * 2 ?
				  (int)cfg->max_msg + 4096 : KCM_REQUEUE_BATCH * 2);
	if (err) {
		close(fd);
		return err;
	}
	return fd;
fail:
	err = -errno;
	close(fd);
	return err;
}

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

/* A new member of the group (@hold: the mux's hold queue, see flowctl.c). */
int kcm_member_add(struct kcm_mux *mux, bool hold, struct kcm_sock **out)
{
	struct kcm_member_info info = { .pid = getpid(), .enabled = !hold, .hold = hold };
	struct kcm_sock *ks;
	__u64 fdval, cookie;
	__u32 slot;
	int err, fd;

	fd = member_socket(&mux->cfg);
	if (fd < 0)
		return fd;
	ks = calloc(1, sizeof(*ks));
	if (!ks) {
		close(fd);
		return -ENOMEM;
	}
	ks->fd = fd;
	ks->mux = mux;
	ks->cookie = kcm_sock_cookie(fd);
	pthread_mutex_init(&ks->rlock, NULL);
	pthread_mutex_init(&ks->wlock, NULL);
	err = kcm_mux_lock(mux);
	if (err)
		goto free;
	for (slot = 0; slot < KCM_MAX_MEMBERS; slot++)
		if (bpf_map_lookup_elem(mux->map_fd[KCM_MAP_GROUP], &slot, &cookie))
			break;
	if (slot == KCM_MAX_MEMBERS) {
		err = -ENOSPC;
		goto unlock;
	}
	ks->slot = slot;
	info.cookie = ks->cookie;
	info.fd = fd;
	kcm_credits_reset(mux, slot);
	fdval = fd;
	/* info first: a reader that finds the socket in the group also finds what it is */
	if (bpf_map_update_elem(mux->map_fd[KCM_MAP_MEMBER_INFO], &slot, &info, BPF_ANY) ||
	    bpf_map_update_elem(mux->map_fd[KCM_MAP_GROUP], &slot, &fdval, BPF_NOEXIST)) {
		struct kcm_member_info none = { 0 };

		err = -errno;
		bpf_map_update_elem(mux->map_fd[KCM_MAP_MEMBER_INFO], &slot, &none, BPF_ANY);
		goto unlock;
	}
	/* A reused slot starts its counters from zero. */
	{
		int ncpu = libbpf_num_possible_cpus();
		struct kcm_member_counters *zero = calloc(ncpu > 0 ? ncpu : 1, sizeof(*zero));

		if (zero)
			bpf_map_update_elem(mux->map_fd[KCM_MAP_MEMBER_COUNTERS], &slot, zero, BPF_ANY);
		free(zero);
	}
	kcm_stats_member_start(mux, slot, ks->cookie);
	err = kcm_steer_sync(mux);
	if (!err && !hold)
		err = kcm_registry_add(ks);
	if (err)
		bpf_map_delete_elem(mux->map_fd[KCM_MAP_GROUP], &slot);
unlock:
	kcm_mux_unlock(mux);
	if (!err) {
		*out = ks;
		return fd;
	}
free:
	kcm_sock_free(ks);
	return err;
}

int kcm_socket(struct kcm_mux *mux)
{
	struct kcm_sock *ks;
	int fd;

	if (!mux) {
		errno = EINVAL;
		return -1;
	}
	fd = kcm_member_add(mux, false, &ks);
	if (fd < 0) {
		errno = -fd;
		return -1;
	}
	kcm_flowctl_start(mux);
	return fd;
}

int kcm_clone(int kcmfd)
{
	struct kcm_sock *ks = kcm_registry_get_checked(kcmfd);

	if (!ks) {
		errno = EBADF;
		return -1;
	}
	return kcm_socket(ks->mux);
}

struct kcm_mux *kcm_mux_of(int kcmfd)
{
	struct kcm_sock *ks = kcm_registry_get_checked(kcmfd);

	if (!ks)
		errno = EBADF;
	return ks ? ks->mux : NULL;
}

int kcm_close(int kcmfd)
{
	struct kcm_sock *ks = kcm_registry_get_checked(kcmfd);
	struct kcm_requeue_report rep = { 0 };
	struct kcm_member_info none = { 0 };
	struct kcm_mux *mux;

	if (ks && kcm_registry_take(kcmfd) != ks)
		ks = NULL; /* another thread closed it first */
	if (!ks) {
		errno = EBADF;
		return -1;
	}
	mux = ks->mux;
	kcm_requeue_close(ks, &rep);
	if (!kcm_mux_lock(mux)) {
		bpf_map_update_elem(mux->map_fd[KCM_MAP_MEMBER_INFO], &ks->slot, &none, BPF_ANY);
		kcm_sock_free(ks); /* the kernel takes it out of the group map */
		kcm_steer_sync(mux);
		kcm_mux_unlock(mux);
	} else {
		kcm_sock_free(ks);
	}
	return 0;
}
