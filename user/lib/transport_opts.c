// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* TCP options of a transport: the knobs that decide how fast a dead or slow peer shows. */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/socket.h>

#include "internal.h"

static int set_int(int fd, int level, int opt, int val, const char *name)
{
	if (setsockopt(fd, level, opt, &val, sizeof(val)))
		return kcm_fail(-errno, "failed to set %s to %d on fd %d", name, val, fd);
	return 0;
}

static int check(const struct kcm_transport_opts *o)
{
	static const struct {
		size_t off;
		const char *name;
		int min, max;
	} ranges[] = {
		{ offsetof(struct kcm_transport_opts, nodelay), "nodelay", -1, 1 },
		{ offsetof(struct kcm_transport_opts, keepalive_idle), "keepalive_idle", 0, 32767 },
		{ offsetof(struct kcm_transport_opts, keepalive_intvl), "keepalive_intvl", 0, 32767 },
		{ offsetof(struct kcm_transport_opts, keepalive_cnt), "keepalive_cnt", 0, 127 },
		{ offsetof(struct kcm_transport_opts, user_timeout_ms), "user_timeout_ms", 0,
		  0x7fffffff },
		{ offsetof(struct kcm_transport_opts, rcvbuf), "rcvbuf", 0, 0x7fffffff / 2 },
		{ offsetof(struct kcm_transport_opts, rcvtimeo_ms), "rcvtimeo_ms", 0, 0x7fffffff },
		{ offsetof(struct kcm_transport_opts, linger), "linger", -1, 65535 },
	};

	if (!o || o->sz < offsetof(struct kcm_transport_opts, parser) + sizeof(int))
		return kcm_fail(-EINVAL, "transport options: sz must be sizeof(struct "
				"kcm_transport_opts)");
	for (size_t i = 0; i < sizeof(ranges) / sizeof(ranges[0]); i++) {
		int v;

		memcpy(&v, (const char *)o + ranges[i].off, sizeof(v));
		if (v < ranges[i].min || v > ranges[i].max)
			return kcm_fail(-EINVAL, "transport option %s is %d: expected %d to %d",
					ranges[i].name, v, ranges[i].min, ranges[i].max);
	}
	return 0;
}

int kcm_transport_apply(int fd, const struct kcm_transport_opts *o)
{
	int err = check(o);

	if (!err && o->nodelay)
		err = set_int(fd, IPPROTO_TCP, TCP_NODELAY, o->nodelay > 0, "TCP_NODELAY");
	if (!err && o->keepalive_idle)
		err = set_int(fd, IPPROTO_TCP, TCP_KEEPIDLE, o->keepalive_idle, "TCP_KEEPIDLE");
	if (!err && o->keepalive_intvl)
		err = set_int(fd, IPPROTO_TCP, TCP_KEEPINTVL, o->keepalive_intvl, "TCP_KEEPINTVL");
	if (!err && o->keepalive_cnt)
		err = set_int(fd, IPPROTO_TCP, TCP_KEEPCNT, o->keepalive_cnt, "TCP_KEEPCNT");
	if (!err && (o->keepalive_idle || o->keepalive_intvl || o->keepalive_cnt))
		err = set_int(fd, SOL_SOCKET, SO_KEEPALIVE, 1, "SO_KEEPALIVE");
	if (!err && o->user_timeout_ms)
		err = set_int(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, o->user_timeout_ms,
			      "TCP_USER_TIMEOUT");
	if (!err && o->rcvbuf && kcm_set_buf(fd, SO_RCVBUF, SO_RCVBUFFORCE, o->rcvbuf))
		err = kcm_fail(-errno, "failed to set SO_RCVBUF to %d on fd %d", o->rcvbuf, fd);
	if (!err && o->rcvtimeo_ms) {
		struct timeval tv = { o->rcvtimeo_ms / 1000, (o->rcvtimeo_ms % 1000) * 1000 };

		if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)))
			err = kcm_fail(-errno, "failed to set SO_RCVTIMEO on fd %d", fd);
	}
	if (!err && o->linger) {
		struct linger l = { 1, o->linger > 0 ? o->linger : 0 };

		if (setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l)))
			err = kcm_fail(-errno, "failed to set SO_LINGER on fd %d", fd);
	}
	return err;
}

int kcm_transport_configure(int tcpfd, const struct kcm_transport_opts *opts)
{
	int err = kcm_transport_apply(tcpfd, opts);

	if (err)
		errno = -err;
	return err ? -1 : 0;
}
