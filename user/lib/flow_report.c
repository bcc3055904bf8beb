// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* kcm_mux_flow(): what flow control is doing, read from the mux's maps by any process. */
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <linux/sock_diag.h>
#include <bpf/bpf.h>

#include "internal.h"
#include "pidfd.h"

/* Receive memory charged to the group's sockets (their owners' fds, pidfd_getfd). */
static uint64_t charged_bytes(struct kcm_mux *mux)
{
	struct kcm_member_info info;
	uint64_t sum = 0;
	__u64 cookie;

	for (__u32 slot = 0; slot < KCM_MAX_MEMBERS; slot++) {
		__u32 mem[SK_MEMINFO_VARS] = { 0 };
		socklen_t len = sizeof(mem);
		int fd;

		if (bpf_map_lookup_elem(mux->map_fd[KCM_MAP_GROUP], &slot, &cookie) ||
		    bpf_map_lookup_elem(mux->map_fd[KCM_MAP_MEMBER_INFO], &slot, &info) ||
		    info.cookie != cookie)
			continue;
		fd = info.pid == (__u32)getpid() ? fcntl(info.fd, F_DUPFD_CLOEXEC, 0) :
			kcm_pidfd_getfd(info.pid, info.fd);
		if (fd < 0)
			return (uint64_t)-1;
		if (kcm_sock_cookie(fd) == cookie &&
		    !getsockopt(fd, SOL_SOCKET, SO_MEMINFO, mem, &len))
			sum += mem[SK_MEMINFO_RMEM_ALLOC];
		close(fd);
	}
	return sum;
}

int kcm_mux_flow(struct kcm_mux *mux, struct kcm_flow *out)
{
	struct kcm_flow f = { .sz = sizeof(f) };
	struct kcm_transport_info info;
	struct kcm_steer st = { 0 };
	__u32 key = 0;

	if (!mux || !out || out->sz < offsetof(struct kcm_flow, controller) + sizeof(pid_t) ||
	    !mux->credits || !mux->flow) {
		errno = EINVAL;
		return -1;
	}
	if (bpf_map_lookup_elem_flags(mux->map_fd[KCM_MAP_STEER], &key, &st, BPF_F_LOCK))
		return -1;
	f.window = mux->cfg.window;
	f.members = st.nmembers;
	for (__u32 i = 0; i < st.nmembers && i < KCM_MAX_MEMBERS; i++)
		f.unread_bytes += kcm_credits_unread(mux, st.slots[i]);
	if (st.hold) {
		f.held_bytes = kcm_credits_unread(mux, st.hold - 1);
		f.unread_bytes += f.held_bytes;
	}
	for (__u32 slot = 0; slot < KCM_MAX_TRANSPORTS; slot++) {
		if (bpf_map_lookup_elem(mux->map_fd[KCM_MAP_TRANSPORT_INFO], &slot, &info) ||
		    !info.cookie)
			continue;
		f.transports++;
		f.braked += __atomic_load_n(&mux->flow->ballast[slot], __ATOMIC_ACQUIRE) != 0;
	}
	f.brakes = __atomic_load_n(&mux->flow->brakes, __ATOMIC_RELAXED);
	f.releases = __atomic_load_n(&mux->flow->releases, __ATOMIC_RELAXED);
	f.saturated = __atomic_load_n(&mux->flow->saturated, __ATOMIC_RELAXED);
	f.controller = __atomic_load_n(&mux->flow->controller, __ATOMIC_ACQUIRE);
	f.charged_bytes = charged_bytes(mux);
	memcpy(out, &f, out->sz < sizeof(f) ? out->sz : sizeof(f));
	out->sz = out->sz < sizeof(f) ? out->sz : sizeof(f);
	return 0;
}
