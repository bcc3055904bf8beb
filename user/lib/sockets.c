// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* KCM sockets as the application sees them: socket, clone, close (AF_KCM's calls). */
#include <errno.h>
#include <unistd.h>
#include <bpf/bpf.h>

#include "internal.h"
#include "kcm_sidecar.h"

/* A KCM socket the sidecar makes: it keeps a copy (and runs flow control for it). */
static int remote_socket(struct kcm_mux *mux)
{
	struct kcm_sc_member m = { 0 };
	int fd, nfds, n;

	n = kcm_remote_call(mux, KCM_SC_SOCKET, NULL, 0, -1, &m, sizeof(m), &fd, 1, &nfds);
	if (n < 0)
		return n;
	if (n < (int)sizeof(m) || nfds != 1) {
		if (nfds)
			close(fd);
		return kcm_fail(-EPROTO, "the sidecar sent no KCM socket");
	}
	return kcm_member_adopt(mux, fd, m.slot, m.cookie);
}

int kcm_socket(struct kcm_mux *mux)
{
	struct kcm_sock *ks;
	int fd;

	if (!mux) {
		errno = EINVAL;
		return -1;
	}
	if (kcm_is_remote(mux)) {
		fd = remote_socket(mux);
		if (fd < 0)
			errno = -fd;
		return fd < 0 ? -1 : fd;
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
	if (kcm_is_remote(mux)) {
		struct kcm_sc_member m = { .slot = ks->slot, .cookie = ks->cookie };

		/* the sidecar moves what is queued to the others, as kcm_close() does here */
		kcm_remote_call(mux, KCM_SC_CLOSE, &m, sizeof(m), -1, NULL, 0, NULL, 0, NULL);
		kcm_sock_free(ks);
		return 0;
	}
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
