// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Transports: attach and unattach TCP sockets, and prune the ones that closed. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <bpf/bpf.h>

#include "internal.h"
#include "pidfd.h"

/* KCM's rule: only a connected TCP socket can be attached. */
static int check_tcp(int fd)
{
	int domain, type, proto;
	struct tcp_info ti;
	socklen_t len = sizeof(domain);

	if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &len))
		return -errno; /* EBADF, ENOTSOCK */
	len = sizeof(type);
	if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len))
		return -errno;
	len = sizeof(proto);
	if (getsockopt(fd, SOL_SOCKET, SO_PROTOCOL, &proto, &len))
		return -errno;
	if ((domain != AF_INET && domain != AF_INET6) || type != SOCK_STREAM ||
	    proto != IPPROTO_TCP)
		return -EOPNOTSUPP;
	len = sizeof(ti);
	if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) || ti.tcpi_state != TCP_ESTABLISHED)
		return -EOPNOTSUPP;
	return 0;
}

static void addr_copy(const struct sockaddr_storage *ss, __u8 *addr, __u16 *port)
{
	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *a = (const struct sockaddr_in *)ss;

		memcpy(addr, &a->sin_addr, 4);
		*port = ntohs(a->sin_port);
	} else {
		const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;

		memcpy(addr, &a->sin6_addr, 16);
		*port = ntohs(a->sin6_port);
	}
}

static void addr_info(int fd, struct kcm_transport_info *info)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);

	if (!getsockname(fd, (struct sockaddr *)&ss, &len)) {
		info->family = ss.ss_family;
		addr_copy(&ss, info->local_addr, &info->local_port);
	}
	len = sizeof(ss);
	if (!getpeername(fd, (struct sockaddr *)&ss, &len))
		addr_copy(&ss, info->remote_addr, &info->remote_port);
}

/* Slot holding @cookie in the transport map, or -ENOENT. Caller holds the mux lock. */
static int slot_of_cookie(struct kcm_mux *mux, uint64_t cookie)
{
	struct kcm_transport_info info;
	__u64 cur;

	for (__u32 slot = 0; slot < KCM_MAX_TRANSPORTS; slot++)
		if (kcm_transport_slot(mux, slot, &info, &cur) == KCM_SLOT_ATTACHED &&
		    cur == cookie)
			return slot;
	return -ENOENT;
}

/* A free slot: no info, or its socket has left its parser's map (closed). */
static int free_slot(struct kcm_mux *mux)
{
	struct kcm_transport_info info;
	__u64 cur;

	for (__u32 slot = 0; slot < KCM_MAX_TRANSPORTS; slot++) {
		int state = kcm_transport_slot(mux, slot, &info, &cur);

		if (state == -ENOENT || (state == KCM_SLOT_STALE && cur == info.cookie))
			return slot;
	}
	return -ENOSPC;
}

/* A slot whose socket closed without an unattach: account for it before reuse. */
static void slot_release(struct kcm_mux *mux, __u32 slot)
{
	struct kcm_transport_info info;

	if (!bpf_map_lookup_elem(mux->map_fd[KCM_MAP_TRANSPORT_INFO], &slot, &info) &&
	    info.cookie)
		kcm_stats_transport_end(mux, slot, info.cookie, -1);
}

/*
 * strparser fails messages longer than the receive buffer: make room for the largest.
 * By default the buffer is also fixed (no autotuning), because it is what a transport
 * can still take in while the flow controller closes its window (docs/memory.md).
 */
static void size_rcvbuf(const struct kcm_config *cfg, int fd)
{
	int want = cfg->transport_rcvbuf;

	if (want < 0)
		return;
	if (want == 0)
		want = kcm_one_per_redirect(cfg) ? KCM_TRANSPORT_RCVBUF_PARSER : KCM_TRANSPORT_RCVBUF;
	if (want < (int64_t)cfg->max_msg)
		want = cfg->max_msg;
	kcm_set_buf(fd, SO_RCVBUF, SO_RCVBUFFORCE, want);
}

/*
 * The parser starts on the next data_ready, so bytes queued before the attach would
 * wait for more to arrive (AF_KCM parses them at once). Setting SO_RCVLOWAT runs
 * tcp_data_ready(); writing back the current value changes nothing else.
 */
static void kick_parser(int fd)
{
	int lowat = 1;
	socklen_t len = sizeof(lowat);

	getsockopt(fd, SOL_SOCKET, SO_RCVLOWAT, &lowat, &len);
	setsockopt(fd, SOL_SOCKET, SO_RCVLOWAT, &lowat, sizeof(lowat));
}

/* Insert @fd; record who holds it. Caller holds the mux lock. Returns the slot. */
static int attach_locked(struct kcm_mux *mux, int fd, uint64_t cookie, pid_t pid, int owner_fd,
			 int parser, bool keep_rcvbuf)
{
	struct kcm_transport_info info = { .cookie = cookie, .pid = pid, .fd = owner_fd,
					   .parser = parser };
	int err, map = kcm_transport_map(mux, parser);
	__u64 fdval = fd;
	__u32 slot;

	if (map < 0)
		return map;
	if (slot_of_cookie(mux, cookie) >= 0)
		return -EALREADY;
	err = free_slot(mux);
	if (err < 0)
		return err;
	slot = err;
	slot_release(mux, slot);
	if (!keep_rcvbuf)
		size_rcvbuf(&mux->cfg, fd);
	addr_info(fd, &info);
	/* counters first: the first message may arrive as soon as the socket is in the map */
	err = kcm_stats_transport_start(mux, slot, cookie, fd);
	if (!err && bpf_map_update_elem(map, &slot, &fdval, BPF_NOEXIST)) {
		err = -errno;
		/* EBUSY: another map's parser owns it, i.e. attached to another mux. */
		if (err == -EBUSY || err == -EEXIST)
			err = -EALREADY;
	} else if (!err &&
		   bpf_map_update_elem(mux->map_fd[KCM_MAP_TRANSPORT_INFO], &slot, &info, BPF_ANY)) {
		err = -errno;
		bpf_map_delete_elem(map, &slot);
	}
	if (err) {
		bpf_map_delete_elem(mux->map_fd[KCM_MAP_TRANSPORT_SLOT], &cookie);
		memset(&mux->tstats[slot], 0, sizeof(mux->tstats[slot]));
		return err;
	}
	kcm_flowctl_attach(mux, slot, fd);
	/* publish it for transmit (other processes import it) before it delivers */
	err = kcm_config_bump(mux);
	kick_parser(fd);
	return err ? err : (int)slot;
}

static int attach(struct kcm_mux *mux, int tcpfd, pid_t owner_pid, int owner_fd, bool keep,
		  int parser, const struct kcm_transport_opts *opts)
{
	uint64_t cookie;
	int err, dup = -1, slot;

	if (!mux || parser < 0 || parser >= KCM_MAX_PARSERS)
		return -EINVAL;
	err = kcm_writable(mux);
	if (err)
		return err;
	if (kcm_is_remote(mux) && !keep)
		return kcm_fail(-EOPNOTSUPP, "a mux served by a sidecar attaches only this "
				"process's own sockets (kcm_attach)");
	if (parser && !mux->cfg.parsers)
		return kcm_fail(-EOPNOTSUPP, "this mux finds messages with a length prefix and has "
				"no parser %d", parser);
	err = check_tcp(tcpfd);
	if (err) {
		char who[64];

		/* name the socket as its owner knows it, not by our copy of it */
		if (!keep && owner_pid > 0 && owner_fd >= 0)
			snprintf(who, sizeof(who), "fd %d of pid %d", owner_fd, (int)owner_pid);
		else
			snprintf(who, sizeof(who), "fd %d", tcpfd);
		return kcm_fail(err, err == -EOPNOTSUPP ? "%s is not a connected TCP socket" :
				"%s cannot be attached", who);
	}
	if (kcm_is_remote(mux))
		return kcm_remote_attach(mux, tcpfd, parser, opts); /* it applies @opts */
	if (opts) {
		err = kcm_transport_apply(tcpfd, opts);
		if (err)
			return err;
	}
	cookie = kcm_sock_cookie(tcpfd);
	if (keep) {
		dup = fcntl(tcpfd, F_DUPFD_CLOEXEC, 0);
		if (dup < 0)
			return -errno;
		owner_fd = dup;
	}
	err = kcm_mux_lock(mux);
	if (err)
		goto fail;
	slot = attach_locked(mux, tcpfd, cookie, owner_pid, owner_fd, parser,
			     opts && opts->rcvbuf);
	if (slot == -ENOENT)
		kcm_fail(slot, "mux has no parser %d (kcm_parser_open() gives ids)", parser);
	else if (slot == -EALREADY)
		kcm_fail(slot, "socket (cookie %llu) is already attached to a mux",
			 (unsigned long long)cookie);
	else if (slot < 0)
		kcm_fail(slot, "failed to add socket (cookie %llu) to the transport map",
			 (unsigned long long)cookie);
	if (slot >= 0 && keep)
		err = kcm_tx_add(mux, dup, slot, cookie);
	else
		err = slot < 0 ? slot : 0;
	if (slot >= 0 && err) { /* could not track it: undo */
		bpf_map_delete_elem(kcm_transport_map(mux, parser), &(__u32){ slot });
		kcm_config_bump(mux);
	}
	if (!err && keep)
		mux->tx_generation = mux->cfg.generation;
	kcm_mux_unlock(mux);
	if (!err && keep)
		kcm_flowctl_start(mux);
	if (!err)
		return 0;
fail:
	if (dup >= 0)
		close(dup);
	return err;
}

int kcm_attach(struct kcm_mux *mux, int tcpfd)
{
	return kcm_attach_parser(mux, tcpfd, 0);
}

int kcm_attach_parser(struct kcm_mux *mux, int tcpfd, int parser_id)
{
	int err = attach(mux, tcpfd, getpid(), -1, true, parser_id, NULL);

	if (err)
		errno = -err;
	return err ? -1 : 0;
}

int kcm_attach_opts(struct kcm_mux *mux, int tcpfd, const struct kcm_transport_opts *opts)
{
	int err = attach(mux, tcpfd, getpid(), -1, true, opts ? opts->parser : 0, opts);

	if (err)
		errno = -err;
	return err ? -1 : 0;
}

int kcm_attach_owned_opts(struct kcm_mux *mux, int tcpfd, pid_t owner_pid, int owner_fd,
			  const struct kcm_transport_opts *opts)
{
	int err = attach(mux, tcpfd, owner_pid, owner_fd, false, opts ? opts->parser : 0, opts);

	if (err)
		errno = -err;
	return err ? -1 : 0;
}

int kcm_attach_owned(struct kcm_mux *mux, int tcpfd, pid_t owner_pid, int owner_fd)
{
	return kcm_attach_owned_parser(mux, tcpfd, owner_pid, owner_fd, 0);
}

int kcm_attach_owned_parser(struct kcm_mux *mux, int tcpfd, pid_t owner_pid, int owner_fd,
			    int parser_id)
{
	int err = attach(mux, tcpfd, owner_pid, owner_fd, false, parser_id, NULL);

	if (err)
		errno = -err;
	return err ? -1 : 0;
}

/* @fd: an fd of the socket to count its losses with, or -1 */
static int unattach_cookie(struct kcm_mux *mux, uint64_t cookie, int fd)
{
	struct kcm_transport_info none = { 0 };
	int err, slot;

	if (!mux || !cookie) {
		errno = EINVAL;
		return -1;
	}
	err = kcm_writable(mux);
	if (!err && kcm_is_remote(mux)) {
		err = kcm_remote_unattach(mux, cookie);
		goto out;
	}
	if (!err)
		err = kcm_mux_lock(mux);
	if (err)
		goto out;
	slot = slot_of_cookie(mux, cookie);
	if (slot < 0) {
		err = slot;
	} else {
		struct kcm_transport_info info = { 0 };
		__u32 key = slot;

		bpf_map_lookup_elem(mux->map_fd[KCM_MAP_TRANSPORT_INFO], &key, &info);
		kcm_flowctl_detach(mux, slot);
		if (bpf_map_delete_elem(kcm_transport_map(mux, info.parser), &key))
			err = -errno;
		bpf_map_update_elem(mux->map_fd[KCM_MAP_TRANSPORT_INFO], &key, &none, BPF_ANY);
		kcm_stats_transport_end(mux, slot, cookie, fd >= 0 ? fd : kcm_tx_fd_of(mux, cookie));
		if (!err)
			err = kcm_config_bump(mux);
	}
	kcm_mux_unlock(mux);
	if (slot >= 0)
		kcm_tx_remove(mux, cookie);
out:
	if (err)
		errno = -err;
	return err ? -1 : 0;
}

int kcm_unattach_cookie(struct kcm_mux *mux, uint64_t cookie)
{
	return unattach_cookie(mux, cookie, -1);
}

int kcm_unattach(struct kcm_mux *mux, int tcpfd)
{
	uint64_t cookie = kcm_sock_cookie(tcpfd);

	if (!cookie) {
		int err = check_tcp(tcpfd);

		errno = err ? -err : ENOENT;
		return -1;
	}
	return unattach_cookie(mux, cookie, tcpfd);
}

int kcm_mux_prune(struct kcm_mux *mux)
{
	struct kcm_transport_info info, none = { 0 };
	int err, pruned = 0;
	__u64 cookie;

	if (!mux) {
		errno = EINVAL;
		return -1;
	}
	err = kcm_writable(mux);
	if (!err)
		err = kcm_local_only(mux, "kcm_mux_prune()");
	if (!err)
		err = kcm_mux_lock(mux);
	if (err) {
		errno = -err;
		return -1;
	}
	for (__u32 slot = 0; slot < KCM_MAX_TRANSPORTS; slot++) {
		/* recorded, and its socket left the map (closed) */
		if (kcm_transport_slot(mux, slot, &info, &cookie) != KCM_SLOT_STALE ||
		    cookie != info.cookie)
			continue;
		slot_release(mux, slot); /* counts it as unattached, with what it lost */
		bpf_map_update_elem(mux->map_fd[KCM_MAP_TRANSPORT_INFO], &slot, &none, BPF_ANY);
		pruned++;
	}
	if (pruned)
		kcm_config_bump(mux);
	kcm_mux_unlock(mux);
	return pruned;
}
