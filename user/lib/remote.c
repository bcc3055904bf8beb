// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * The client end of the sidecar protocol (kcm_sidecar.h, docs/sidecar.md): a connected
 * mux sends what needs bpf() to the sidecar as one request and waits for its reply.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>

#include "internal.h"
#include "kcm_sidecar.h"

static int send_request(int sock, const struct kcm_sc_hdr *h, const void *req, int send_fd)
{
	char cbuf[CMSG_SPACE(sizeof(int))] = { 0 };
	struct iovec iov[2] = {
		{ .iov_base = (void *)h, .iov_len = sizeof(*h) },
		{ .iov_base = (void *)req, .iov_len = h->len },
	};
	struct msghdr msg = { .msg_iov = iov, .msg_iovlen = h->len ? 2 : 1 };
	ssize_t n;

	if (send_fd >= 0) {
		struct cmsghdr *c;

		msg.msg_control = cbuf;
		msg.msg_controllen = sizeof(cbuf);
		c = CMSG_FIRSTHDR(&msg);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(c), &send_fd, sizeof(int));
	}
	do
		n = sendmsg(sock, &msg, MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	return n == (ssize_t)(sizeof(*h) + h->len) ? 0 : -EPROTO;
}

/* The fds that came with @msg, into @fds (at most @max; the rest are closed). */
static int take_fds(struct msghdr *msg, int *fds, int max)
{
	int n = 0;

	for (struct cmsghdr *c = CMSG_FIRSTHDR(msg); c; c = CMSG_NXTHDR(msg, c)) {
		int k;

		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (int i = 0; i < k; i++) {
			int fd;

			memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
			if (n < max)
				fds[n++] = fd;
			else
				close(fd);
		}
	}
	return n;
}

int kcm_remote_call(struct kcm_mux *mux, int op, const void *req, size_t req_len,
		    int send_fd, void *reply, size_t reply_len, int *fds, int max_fds,
		    int *nfds)
{
	char buf[KCM_SC_MAX_MSG];
	char cbuf[CMSG_SPACE(sizeof(int) * KCM_SC_MAX_FDS)];
	struct kcm_sc_hdr h = { .magic = KCM_SC_MAGIC, .version = KCM_SC_VERSION, .op = op,
				.len = req_len };
	struct iovec iov = { .iov_base = buf, .iov_len = sizeof(buf) };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
			      .msg_controllen = sizeof(cbuf) };
	struct kcm_sc_hdr r;
	int got = 0, err;
	ssize_t n;

	if (nfds)
		*nfds = 0;
	if (req_len > sizeof(buf) - sizeof(h))
		return -EMSGSIZE;
	pthread_mutex_lock(&mux->remote_lock);
	h.seq = ++mux->remote_seq;
	err = send_request(mux->remote_fd, &h, req, send_fd);
	if (err) {
		pthread_mutex_unlock(&mux->remote_lock);
		return kcm_fail(err, "failed to reach the sidecar");
	}
	do
		n = recvmsg(mux->remote_fd, &msg, MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	pthread_mutex_unlock(&mux->remote_lock);
	if (n >= 0)
		got = take_fds(&msg, fds, fds ? max_fds : 0);
	if (n <= 0) {
		err = n ? -errno : -ECONNRESET;
		goto fail;
	}
	memcpy(&r, buf, n < (ssize_t)sizeof(r) ? (size_t)n : sizeof(r));
	if (n < (ssize_t)sizeof(r) || r.magic != KCM_SC_MAGIC || r.op != op || r.seq != h.seq ||
	    r.len > n - sizeof(r) || (msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC))) {
		err = kcm_fail(-EPROTO, "the sidecar's reply to request %d is malformed", op);
		goto out;
	}
	if (r.err) {
		char text[600];

		snprintf(text, sizeof(text), "sidecar: %.*s", (int)r.len, buf + sizeof(r));
		err = kcm_fail_text(-r.err, text);
		goto out;
	}
	if (reply && reply_len)
		memcpy(reply, buf + sizeof(r), r.len < reply_len ? r.len : reply_len);
	if (nfds)
		*nfds = got;
	return r.len;
fail:
	kcm_fail(err, "the sidecar did not answer");
out:
	for (int i = 0; i < got; i++)
		close(fds[i]);
	return err;
}

int kcm_remote_transports(struct kcm_mux *mux,
			  int (*fn)(uint32_t slot, uint64_t cookie, int fd, void *ctx), void *ctx)
{
	struct kcm_sc_transports req = { 0 }, rep;
	int fds[KCM_SC_MAX_FDS], nfds, n, err = 0;

	do {
		memset(&rep, 0, sizeof(rep));
		n = kcm_remote_call(mux, KCM_SC_TRANSPORTS, &req, sizeof(req), -1, &rep,
				    sizeof(rep), fds, KCM_SC_MAX_FDS, &nfds);
		if (n < 0)
			return n;
		if (rep.n != (uint32_t)nfds || rep.n > KCM_SC_MAX_FDS ||
		    (rep.next && rep.next <= req.from)) {
			for (int i = 0; i < nfds; i++)
				close(fds[i]);
			return kcm_fail(-EPROTO, "the sidecar's transport list is malformed");
		}
		for (uint32_t i = 0; i < rep.n; i++) {
			if (!err)
				err = fn(rep.t[i].slot, rep.t[i].cookie, fds[i], ctx);
			else
				close(fds[i]);
		}
		req.from = rep.next;
	} while (rep.next && !err);
	return err;
}
