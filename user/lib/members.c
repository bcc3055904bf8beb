// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Members of a mux's group: the socket behind each KCM socket, added to the group map. */
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

int kcm_member_adopt(struct kcm_mux *mux, int fd, uint32_t slot, uint64_t cookie)
{
	struct kcm_sock *ks = calloc(1, sizeof(*ks));
	int err;

	if (!ks) {
		close(fd);
		return -ENOMEM;
	}
	ks->fd = fd;
	ks->mux = mux;
	ks->slot = slot;
	ks->cookie = cookie;
	pthread_mutex_init(&ks->rlock, NULL);
	pthread_mutex_init(&ks->wlock, NULL);
	err = kcm_sock_cookie(fd) == cookie && slot < KCM_MAX_MEMBERS ? 0 : -EPROTO;
	if (!err)
		err = kcm_registry_add(ks);
	if (err) {
		kcm_sock_free(ks);
		return err;
	}
	return fd;
}

/* A new member of the group (@hold: the mux's hold queue, see flowctl.c). */
int kcm_member_add(struct kcm_mux *mux, bool hold, struct kcm_sock **out)
{
	struct kcm_member_info info = { .pid = getpid(), .enabled = !hold, .hold = hold };
	struct kcm_sock *ks;
	__u64 fdval, cookie;
	__u32 slot;
	int err, fd;

	err = kcm_writable(mux);
	if (err)
		return err;
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
