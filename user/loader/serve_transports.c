// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* kcm-loader serve's transport requests: attach a client's TCP socket, unattach it, and
 * list every attached transport with a descriptor for each (for transmit). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>

#include "loader.h"
#include "serve.h"

static int find_transport_slot(const struct kcm_transport_status *t, void *ctx)
{
	struct serve_find *f = ctx;

	if (t->cookie != f->cookie || t->state != KCM_SLOT_ATTACHED)
		return 0;
	f->slot = t->slot;
	f->found = true;
	return 1;
}

int serve_attach(struct serve *s, struct serve_client *c, const struct kcm_sc_hdr *h,
		     const void *p, int fd)
{
	struct kcm_transport_opts o = { .sz = sizeof(o) };
	struct kcm_sc_transport t = { 0 };
	struct kcm_sc_attach a;
	socklen_t len = sizeof(t.cookie);
	int err;

	if (fd < 0)
		return serve_refuse(c, h, EBADF, "attach needs the TCP socket with the request");
	if (c->ntransports == SERVE_MAX_TRANSPORTS)
		return serve_refuse(c, h, ENOSPC, "client attached %d transports already",
			      SERVE_MAX_TRANSPORTS);
	memcpy(&a, p, sizeof(a));
	o.nodelay = a.nodelay;
	o.keepalive_idle = a.keepalive_idle;
	o.keepalive_intvl = a.keepalive_intvl;
	o.keepalive_cnt = a.keepalive_cnt;
	o.user_timeout_ms = a.user_timeout_ms;
	o.rcvbuf = a.rcvbuf;
	o.rcvtimeo_ms = a.rcvtimeo_ms;
	o.linger = a.linger;
	o.parser = a.parser;
	if (kcm_attach_opts(s->mux, fd, &o)) {
		err = errno;
		return serve_refuse(c, h, err, "failed to attach the client's socket: %s",
			      kcm_last_error());
	}
	struct serve_find f = { 0 };

	getsockopt(fd, SOL_SOCKET, SO_COOKIE, &t.cookie, &len);
	f.cookie = t.cookie;
	kcm_transport_foreach(s->mux, find_transport_slot, &f);
	t.slot = f.slot;
	c->transport[c->ntransports++] = t.cookie;
	serve_log(c, "attach", "transport %llu (slot %u)", U(t.cookie), t.slot);
	return serve_reply(c, h, 0, &t, sizeof(t), NULL, 0);
}

int serve_unattach(struct serve *s, struct serve_client *c, const struct kcm_sc_hdr *h,
		       const void *p)
{
	struct kcm_sc_transport t;

	memcpy(&t, p, sizeof(t));
	for (unsigned int i = 0; i < c->ntransports; i++) {
		if (c->transport[i] != t.cookie)
			continue;
		c->transport[i] = c->transport[--c->ntransports];
		if (kcm_unattach_cookie(s->mux, t.cookie))
			return serve_refuse(c, h, errno, "failed to unattach transport %llu: %s",
				      U(t.cookie), kcm_last_error());
		serve_log(c, "unattach", "transport %llu", U(t.cookie));
		return serve_reply(c, h, 0, NULL, 0, NULL, 0);
	}
	return serve_refuse(c, h, ENOENT, "transport %llu was not attached by this client",
		      U(t.cookie));
}

struct listing {
	struct kcm_sc_transports rep;
	int fds[KCM_SC_MAX_FDS];
};

static int list_transport(const struct kcm_transport_status *t, void *ctx)
{
	struct listing *l = ctx;
	int fd;

	if (t->state != KCM_SLOT_ATTACHED || t->slot < l->rep.from)
		return 0;
	if (l->rep.n == KCM_SC_MAX_FDS) {
		l->rep.next = t->slot;
		return 1;
	}
	fd = kcm_process_fd(t->pid, t->fd);
	if (fd < 0)
		return 0; /* its owner is gone: it will be pruned */
	l->fds[l->rep.n] = fd;
	l->rep.t[l->rep.n++] = (struct kcm_sc_transport){ .slot = t->slot, .cookie = t->cookie };
	return 0;
}

int serve_transports(struct serve *s, struct serve_client *c, const struct kcm_sc_hdr *h,
			 const void *p)
{
	struct listing *l = calloc(1, sizeof(*l));
	int err;

	if (!l)
		return serve_refuse(c, h, ENOMEM, "out of memory");
	memcpy(&l->rep, p, sizeof(l->rep));
	l->rep.n = l->rep.next = 0;
	kcm_transport_foreach(s->mux, list_transport, l);
	err = serve_reply(c, h, 0, &l->rep, sizeof(l->rep), l->fds, l->rep.n);
	for (uint32_t i = 0; i < l->rep.n; i++)
		close(l->fds[i]);
	free(l);
	return err;
}

