// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Attach and unattach on a connected mux (kcm_mux_connect()): the sidecar does the map
 * work on its copy of the socket; this process keeps its own for transmit. */
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#include "internal.h"
#include "kcm_sidecar.h"

int kcm_remote_attach(struct kcm_mux *mux, int tcpfd, int parser,
		      const struct kcm_transport_opts *opts)
{
	struct kcm_sc_attach a = { .parser = parser };
	struct kcm_sc_transport t = { 0 };
	int n, dup;

	if (opts) {
		a.nodelay = opts->nodelay;
		a.keepalive_idle = opts->keepalive_idle;
		a.keepalive_intvl = opts->keepalive_intvl;
		a.keepalive_cnt = opts->keepalive_cnt;
		a.user_timeout_ms = opts->user_timeout_ms;
		a.rcvbuf = opts->rcvbuf;
		a.rcvtimeo_ms = opts->rcvtimeo_ms;
		a.linger = opts->linger;
	}
	n = kcm_remote_call(mux, KCM_SC_ATTACH, &a, sizeof(a), tcpfd, &t, sizeof(t), NULL, 0,
			    NULL);
	if (n < 0)
		return n;
	if (n < (int)sizeof(t) || t.cookie != kcm_sock_cookie(tcpfd))
		return kcm_fail(-EPROTO, "the sidecar's answer to attach names another socket");
	/* our own reference, for transmit, as kcm_attach() keeps one */
	dup = fcntl(tcpfd, F_DUPFD_CLOEXEC, 0);
	if (dup < 0)
		return kcm_fail(-errno, "failed to keep fd %d", tcpfd);
	n = kcm_tx_add(mux, dup, t.slot, t.cookie);
	if (n)
		close(dup);
	return n;
}

int kcm_remote_unattach(struct kcm_mux *mux, uint64_t cookie)
{
	struct kcm_sc_transport t = { .cookie = cookie };
	int n = kcm_remote_call(mux, KCM_SC_UNATTACH, &t, sizeof(t), -1, NULL, 0, NULL, 0,
				NULL);

	if (n < 0)
		return n;
	kcm_tx_remove(mux, cookie);
	return 0;
}
