// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* KCM sockets as the application sees them: socket, clone, close (AF_KCM's calls). */
#include <errno.h>
#include <bpf/bpf.h>

#include "internal.h"

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
