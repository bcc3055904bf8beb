// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * kcm-loader serve's requests (kcm_sidecar.h): each is checked (magic, version, size,
 * the descriptor it needs), done through libkcm's public API, and answered; a bad one
 * gets an errno and a message naming the cause, and harms nothing else.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/socket.h>

#include "loader.h"
#include "output.h"
#include "serve.h"

void serve_log(const struct serve_client *c, const char *event, const char *fmt, ...)
{
	char what[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	open_json_object(NULL);
	print_uint(PRINT_JSON, "time", NULL, (uint64_t)time(NULL));
	print_string(PRINT_ANY, "event", "%s", event);
	if (c) {
		print_int(PRINT_ANY, "pid", " client pid %lld", c->pid);
		print_int(PRINT_ANY, "uid", " uid %lld", c->uid);
	}
	print_string(PRINT_ANY, "detail", ": %s", what);
	close_json_object();
	end_record();
	fflush(stdout);
}

/* Reply to @h with @err (0: @payload), @fds going with it. */
int serve_reply(struct serve_client *c, const struct kcm_sc_hdr *h, int err,
		 const void *payload, size_t len, const int *fds, int nfds)
{
	char cbuf[CMSG_SPACE(sizeof(int) * KCM_SC_MAX_FDS)] = { 0 };
	struct kcm_sc_hdr r = { .magic = KCM_SC_MAGIC, .version = KCM_SC_VERSION, .op = h->op,
				.seq = h->seq, .err = err, .len = len };
	struct iovec iov[2] = { { &r, sizeof(r) }, { (void *)payload, len } };
	struct msghdr msg = { .msg_iov = iov, .msg_iovlen = len ? 2 : 1 };

	if (nfds) {
		struct cmsghdr *cm;

		msg.msg_control = cbuf;
		msg.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
		cm = CMSG_FIRSTHDR(&msg);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
		memcpy(CMSG_DATA(cm), fds, sizeof(int) * nfds);
	}
	return sendmsg(c->fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT) < 0 ? -errno : 0;
}

/* A failed reply: errno @err and a message; logged as well. */
int serve_refuse(struct serve_client *c, const struct kcm_sc_hdr *h, int err,
		  const char *fmt, ...)
{
	char text[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	serve_log(c, "refused", "%s", text);
	return serve_reply(c, h, err, text, strlen(text), NULL, 0);
}

static const char *const hello_maps[] = { "config", "credits", "flow", "transport_stats",
					  "member_stats", "mux_stats" };

static int op_hello(struct serve *s, struct serve_client *c, const struct kcm_sc_hdr *h)
{
	struct kcm_mux_state st = { .sz = sizeof(st) };
	struct kcm_sc_hello hello = { .sidecar_pid = getpid() };
	int fds[KCM_SC_MAPS], n = 0, err;

	if (kcm_mux_state(s->mux, &st))
		return serve_refuse(c, h, errno, "failed to read mux '%s': %s", s->name,
			      kcm_last_error());
	snprintf(hello.mux, sizeof(hello.mux), "%s", s->name);
	snprintf(hello.framing, sizeof(hello.framing), "%s", st.framing);
	hello.max_msg = st.max_msg;
	for (size_t i = 0; i < sizeof(hello_maps) / sizeof(hello_maps[0]); i++) {
		int fd = kcm_mux_map_fd(s->mux, hello_maps[i]);

		/* read-write: a read-only map fd cannot be mmapped shared (the kernel drops
		 * VM_SHARED for a file opened without write, and bpf_map_mmap() wants it) */
		if (fd < 0 || (fd = dup(fd)) < 0)
			continue;
		snprintf(hello.maps[n], sizeof(hello.maps[n]), "%s", hello_maps[i]);
		fds[n++] = fd;
	}
	hello.nmaps = n;
	err = serve_reply(c, h, 0, &hello, sizeof(hello), fds, n);
	for (int i = 0; i < n; i++)
		close(fds[i]);
	if (!err)
		serve_log(c, "hello", "mux %s, framing %s", s->name, st.framing);
	return err;
}

static int find_member_slot(const struct kcm_member_status *m, void *ctx)
{
	struct serve_find *f = ctx;

	if (m->cookie != f->cookie)
		return 0;
	f->slot = m->slot;
	f->found = true;
	return 1;
}

static int op_socket(struct serve *s, struct serve_client *c, const struct kcm_sc_hdr *h)
{
	struct kcm_sc_member m = { 0 };
	socklen_t len = sizeof(m.cookie);
	struct serve_member *sm;
	int fd;

	if (c->nmembers == SERVE_MAX_MEMBERS)
		return serve_refuse(c, h, EMFILE, "client holds %d KCM sockets already",
			      SERVE_MAX_MEMBERS);
	fd = kcm_socket(s->mux);
	if (fd < 0)
		return serve_refuse(c, h, errno, "failed to create a KCM socket: %s", kcm_last_error());
	struct serve_find f = { 0 };

	getsockopt(fd, SOL_SOCKET, SO_COOKIE, &m.cookie, &len);
	f.cookie = m.cookie;
	kcm_member_foreach(s->mux, find_member_slot, &f);
	if (!f.found) {
		kcm_close(fd);
		return serve_refuse(c, h, EPROTO, "KCM socket %llu is not in the group", U(m.cookie));
	}
	m.slot = f.slot;
	sm = &c->member[c->nmembers++];
	*sm = (struct serve_member){ .fd = fd, .slot = m.slot, .cookie = m.cookie };
	serve_log(c, "socket", "KCM socket %llu (slot %u)", U(m.cookie), m.slot);
	return serve_reply(c, h, 0, &m, sizeof(m), &fd, 1);
}

static struct serve_member *find_member(struct serve_client *c, uint64_t cookie)
{
	for (unsigned int i = 0; i < c->nmembers; i++)
		if (c->member[i].cookie == cookie)
			return &c->member[i];
	return NULL;
}

static void drop_member(struct serve_client *c, struct serve_member *m)
{
	kcm_close(m->fd);
	*m = c->member[--c->nmembers];
}

static int op_close(struct serve_client *c, const struct kcm_sc_hdr *h, const void *p)
{
	struct kcm_sc_member req;
	struct serve_member *m;

	memcpy(&req, p, sizeof(req));
	m = find_member(c, req.cookie);
	if (!m)
		return serve_refuse(c, h, ENOENT, "no KCM socket %llu of this client", U(req.cookie));
	serve_log(c, "close", "KCM socket %llu (slot %u)", U(m->cookie), m->slot);
	drop_member(c, m);
	return serve_reply(c, h, 0, NULL, 0, NULL, 0);
}

static int op_recv_disable(struct serve_client *c, const struct kcm_sc_hdr *h, const void *p)
{
	struct kcm_requeue_report rep = { 0 };
	struct kcm_sc_recv_disable r;
	struct serve_member *m;

	memcpy(&r, p, sizeof(r));
	m = find_member(c, r.cookie);
	if (!m)
		return serve_refuse(c, h, ENOENT, "no KCM socket %llu of this client", U(r.cookie));
	if (kcm_recv_disable(m->fd, r.on, &rep))
		return serve_refuse(c, h, errno, "failed to %s receive on KCM socket %llu: %s",
			      r.on ? "disable" : "enable", U(r.cookie), kcm_last_error());
	r.moved = rep.moved;
	r.kept = rep.kept;
	serve_log(c, r.on ? "recv-disable" : "recv-enable", "KCM socket %llu: %u moved, %u kept",
		  U(r.cookie), r.moved, r.kept);
	return serve_reply(c, h, 0, &r, sizeof(r), NULL, 0);
}

/* Bytes of payload each request takes. */
static size_t payload_size(int op)
{
	switch (op) {
	case KCM_SC_CLOSE:
		return sizeof(struct kcm_sc_member);
	case KCM_SC_RECV_DISABLE:
		return sizeof(struct kcm_sc_recv_disable);
	case KCM_SC_ATTACH:
		return sizeof(struct kcm_sc_attach);
	case KCM_SC_UNATTACH:
		return sizeof(struct kcm_sc_transport);
	case KCM_SC_TRANSPORTS:
		return sizeof(struct kcm_sc_transports);
	default:
		return 0;
	}
}

/* The descriptors that came with @msg: the first in *@fd, the others closed. */
static int take_fd(struct msghdr *msg)
{
	int first = -1;

	for (struct cmsghdr *cm = CMSG_FIRSTHDR(msg); cm; cm = CMSG_NXTHDR(msg, cm)) {
		int n = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);

		if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
			continue;
		for (int i = 0; i < n; i++) {
			int fd;

			memcpy(&fd, CMSG_DATA(cm) + i * sizeof(int), sizeof(int));
			if (first < 0)
				first = fd;
			else
				close(fd);
		}
	}
	return first;
}

static int dispatch(struct serve *s, struct serve_client *c, const struct kcm_sc_hdr *h,
		    const void *p, int fd)
{
	switch (h->op) {
	case KCM_SC_HELLO:
		return op_hello(s, c, h);
	case KCM_SC_SOCKET:
		return op_socket(s, c, h);
	case KCM_SC_CLOSE:
		return op_close(c, h, p);
	case KCM_SC_RECV_DISABLE:
		return op_recv_disable(c, h, p);
	case KCM_SC_ATTACH:
		return serve_attach(s, c, h, p, fd);
	case KCM_SC_UNATTACH:
		return serve_unattach(s, c, h, p);
	case KCM_SC_TRANSPORTS:
		return serve_transports(s, c, h, p);
	default:
		return serve_refuse(c, h, EOPNOTSUPP, "unknown request %u", h->op);
	}
}

bool serve_request(struct serve *s, struct serve_client *c)
{
	char buf[KCM_SC_MAX_MSG], cbuf[CMSG_SPACE(sizeof(int) * KCM_SC_MAX_FDS)];
	struct iovec iov = { buf, sizeof(buf) };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
			      .msg_controllen = sizeof(cbuf) };
	struct kcm_sc_hdr h = { .magic = KCM_SC_MAGIC };
	ssize_t n = recvmsg(c->fd, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
	bool keep = true;
	int fd;

	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return true;
	if (n <= 0)
		return false; /* closed (or reset): serve_forget() */
	fd = take_fd(&msg);
	memcpy(&h, buf, (size_t)n < sizeof(h) ? (size_t)n : sizeof(h));
	if (c->refused) {
		serve_refuse(c, &h, EACCES, "uid %u is not allowed to use mux '%s' (kcm-loader serve "
		       "--allow-uid/--allow-gid)", (unsigned int)c->uid, s->name);
		keep = false;
	} else if ((size_t)n < sizeof(h) || h.magic != KCM_SC_MAGIC ||
		   h.version != KCM_SC_VERSION) {
		serve_refuse(c, &h, EPROTO, "not a kcm-bpf sidecar request of version %d (%zd bytes)",
		       KCM_SC_VERSION, n);
		keep = false;
	} else if (msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) {
		serve_refuse(c, &h, EMSGSIZE, "request over %d bytes or %d descriptors",
		       KCM_SC_MAX_MSG, KCM_SC_MAX_FDS);
	} else if (h.len != n - sizeof(h) || h.len != payload_size(h.op)) {
		serve_refuse(c, &h, EBADMSG, "request %u has %zd bytes of payload, expected %zu", h.op,
		       n - (ssize_t)sizeof(h), payload_size(h.op));
	} else {
		dispatch(s, c, &h, buf + sizeof(h), fd);
	}
	if (fd >= 0)
		close(fd); /* libkcm keeps its own reference to an attached socket */
	return keep;
}

void serve_forget(struct serve *s, struct serve_client *c, const char *why)
{
	unsigned int members = c->nmembers, transports = 0;

	while (c->nmembers)
		drop_member(c, &c->member[0]);
	for (unsigned int i = 0; i < c->ntransports; i++)
		transports += !kcm_unattach_cookie(s->mux, c->transport[i]);
	c->ntransports = 0;
	if (!c->refused)
		serve_log(c, "gone", "%s: closed %u KCM sockets, unattached %u transports", why,
			  members, transports);
}
