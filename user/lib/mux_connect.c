// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * kcm_mux_connect(): a mux served by a sidecar (kcm-loader serve, docs/sidecar.md). The
 * application does the data path itself (recv on its KCM sockets, writes on its TCP
 * sockets, credits and counters in mmapped maps) and asks the sidecar for everything that
 * needs bpf(): KCM sockets, attach, unattach, recv-disable, other processes' transports.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "internal.h"
#include "kcm_sidecar.h"

#define CONNECT_WAIT_MS 30000 /* for the sidecar's socket to appear (it starts beside us) */

/* Connect to @path, waiting up to @wait_ms for a sidecar still starting. */
static int dial(const char *path, int wait_ms)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	uint64_t end = kcm_now_ns() + (uint64_t)wait_ms * 1000000;
	int fd, err;

	if (strlen(path) >= sizeof(sun.sun_path))
		return kcm_fail(-ENAMETOOLONG, "socket path %s", path);
	strcpy(sun.sun_path, path);
	for (;;) {
		fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
		if (fd < 0)
			return kcm_fail(-errno, "failed to create a socket");
		if (!connect(fd, (struct sockaddr *)&sun, sizeof(sun)))
			return fd;
		err = -errno;
		close(fd);
		if ((err != -ENOENT && err != -ECONNREFUSED) || kcm_now_ns() >= end)
			break;
		poll(NULL, 0, 50);
	}
	if (err == -ENOENT || err == -ECONNREFUSED)
		return kcm_fail(-ETIMEDOUT, "no sidecar answered at %s within %d s (%s): is "
				"`kcm-loader serve` running with --socket %s?", path, wait_ms / 1000,
				err == -ENOENT ? "no such socket" : "connection refused", path);
	return kcm_fail(err, "failed to connect to the sidecar at %s", path);
}

static int map_index(const char *name)
{
	for (int i = 0; i < KCM_MAP_COUNT; i++)
		if (!strcmp(kcm_map_names[i], name))
			return i;
	return -1;
}

static int hello(struct kcm_mux *mux)
{
	struct kcm_sc_hello h = { 0 };
	int fds[KCM_SC_MAPS], nfds, n;

	n = kcm_remote_call(mux, KCM_SC_HELLO, NULL, 0, -1, &h, sizeof(h), fds, KCM_SC_MAPS,
			    &nfds);
	if (n < 0)
		return n;
	if (n < (int)sizeof(h) || h.nmaps != (uint32_t)nfds) {
		for (int i = 0; i < nfds; i++)
			close(fds[i]);
		return kcm_fail(-EPROTO, "the sidecar's hello is malformed");
	}
	for (int i = 0; i < nfds; i++) {
		int m = map_index(h.maps[i]);

		h.maps[i][sizeof(h.maps[i]) - 1] = '\0';
		if (m < 0 || mux->map_fd[m] >= 0)
			close(fds[i]);
		else
			mux->map_fd[m] = fds[i];
	}
	snprintf(mux->name, sizeof(mux->name), "%.*s", (int)sizeof(h.mux) - 1, h.mux);
	return 0;
}

/* The config as the sidecar's mux has it, from the mmapped map. */
static int read_config(struct kcm_mux *mux)
{
	if (mux->map_fd[KCM_MAP_CONFIG] < 0)
		return kcm_fail(-EPROTO, "the sidecar gave no config map");
	kcm_mux_config_mmap(mux);
	if (!mux->cfg_map)
		return kcm_fail(-errno, "failed to map the config of mux '%s'", mux->name);
	memcpy(&mux->cfg, mux->cfg_map, sizeof(mux->cfg));
	if (mux->cfg.version != KCM_CONFIG_VERSION)
		return kcm_fail(-EPROTO, "mux '%s' was made by another kcm-bpf version (%u, "
				"want %u)", mux->name, mux->cfg.version, KCM_CONFIG_VERSION);
	if (!strcmp(mux->cfg.splitter, KCM_SPLIT_PROG))
		return kcm_fail(-EOPNOTSUPP, "mux '%s' splits messages by test-running its "
				"parser program (splitter prog), which needs bpf(): connected "
				"applications cannot read it", mux->name);
	return 0;
}

struct kcm_mux *kcm_mux_connect(const char *socket_path)
{
	struct kcm_mux *mux;
	const char *wait;
	int err;

	if (!socket_path || !*socket_path) {
		errno = EINVAL;
		return NULL;
	}
	mux = kcm_mux_alloc();
	if (!mux) {
		errno = ENOMEM;
		return NULL;
	}
	wait = getenv("KCM_SIDECAR_WAIT");
	err = dial(socket_path, wait && *wait ? atoi(wait) * 1000 : CONNECT_WAIT_MS);
	if (err >= 0) {
		mux->remote_fd = err;
		err = hello(mux);
	}
	if (!err)
		err = read_config(mux);
	if (!err) {
		kcm_mux_framing_from_cfg(mux);
		err = kcm_stats_map(mux);
	}
	if (!err)
		err = kcm_credits_map(mux);
	if (err) {
		mux->name[0] = '\0';
		kcm_mux_close(mux);
		errno = -err;
		return NULL;
	}
	mux->tx_generation = mux->cfg.generation - 1; /* import transports on first send */
	return mux;
}
