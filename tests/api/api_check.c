// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * api_check: libkcm's documented semantics (user/include/kcm.h) on real sockets.
 * Loopback TCP pairs, one fresh mux per subtest; needs root for BPF.
 *
 *   api_check [-l] [NAME...]     run all subtests, or those whose name contains NAME
 *
 * Prints "PASS name" or "FAIL name" (after lines saying what was expected and what came)
 * and a summary; exits 1 when any subtest failed.
 */
#include <dirent.h>
#include <fcntl.h>
#include <linux/sockios.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/time.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <stddef.h>

#include "kcm.h"
#include "progs.h"
#include "harness.h"

#define TIMEOUT_MS 3000	/* for something that should come */
#define QUIET_MS 200		/* for something that should not */
#define BUF_MAX (256 * 1024)

static uint8_t rbuf[BUF_MAX], wbuf[BUF_MAX];

/* ---- helpers ---- */

static struct kcm_mux *mux_new(const struct kcm_framing *f, uint32_t max, const char *pin)
{
	struct kcm_mux_opts o = {
		.sz = sizeof(o),
		.framing = f ? *f : KCM_FRAMING_THRIFT,
		.max_msg_size = max,
		.pin_name = pin,
	};
	struct kcm_mux *m = kcm_mux_create(&o);

	if (!m)
		FAILF("kcm_mux_create: %s", strerror(errno));
	return m;
}

/* Write @n test messages (conn @conn, seq @seq0...) with @body bytes each. */
static void peer_send(int fd, uint32_t conn, uint32_t seq0, unsigned int n, uint32_t body)
{
	for (unsigned int i = 0; i < n; i++) {
		size_t len = msg_build(wbuf, conn, seq0 + i, body);

		if (write_all(fd, wbuf, len))
			FAILF("peer write: %s", strerror(errno));
	}
}

/* The next message on @k must be intact with these ids. */
static bool expect_msg(int k, uint32_t conn, uint32_t seq, uint32_t body, const char *what)
{
	uint32_t gc = 0, gs = 0;
	ssize_t r = krecv_to(k, rbuf, sizeof(rbuf), TIMEOUT_MS);

	if (r < 0) {
		FAILF("%s: expected message %u/%u, got %s", what, conn, seq, ename(-r));
		return false;
	}
	if (msg_check(rbuf, r, &gc, &gs)) {
		FAILF("%s: expected intact message %u/%u, got a corrupt one of %zd bytes", what,
		      conn, seq, r);
		return false;
	}
	if (gc != conn || gs != seq || (size_t)r != 4 + (size_t)body) {
		FAILF("%s: expected message %u/%u of %u bytes, got %u/%u of %zd", what, conn, seq,
		      4 + body, gc, gs, r);
		return false;
	}
	return true;
}

/* Nothing readable on @k for QUIET_MS. */
static bool expect_quiet(int k, const char *what)
{
	struct pollfd p = { .fd = k, .events = POLLIN };
	int r = poll(&p, 1, QUIET_MS);

	if (r != 0) {
		FAILF("%s: expected nothing readable, got poll %d revents 0x%x", what, r, p.revents);
		return false;
	}
	return true;
}

/* Receive every message that comes within @ms of the previous one; record their seqs. */
static unsigned int drain(int k, uint32_t conn, uint8_t *seen, unsigned int nseen, int ms)
{
	unsigned int n = 0;

	for (;;) {
		uint32_t gc = 0, gs = 0;
		ssize_t r = krecv_to(k, rbuf, sizeof(rbuf), ms);

		if (r == -ETIMEDOUT)
			return n;
		if (r < 0) {
			FAILF("drain: %s", ename(-r));
			return n;
		}
		if (msg_check(rbuf, r, &gc, &gs) || gc != conn || gs >= nseen) {
			FAILF("drain: got a corrupt or foreign message (%zd bytes)", r);
			continue;
		}
		seen[gs]++;
		n++;
	}
}

/* Messages queued on a KCM socket, counted by peeking (nothing is consumed). */
static int queued_msgs(int k)
{
	static uint8_t peek[4 << 20];
	struct kcm_framing f = KCM_FRAMING_THRIFT;
	ssize_t n = recv(k, peek, sizeof(peek), MSG_PEEK | MSG_DONTWAIT);
	ssize_t off = 0;
	int count = 0;

	while (n > 0 && off < n) {
		int64_t len = kcm_frame_length(&f, peek + off, n - off, sizeof(peek));

		if (len <= 0 || off + len > n)
			break;
		off += len;
		count++;
	}
	return count;
}

static bool wait_queued(int k, int want, const char *what)
{
	uint64_t end = now_ns() + TIMEOUT_MS * 1000000ull;
	int got;

	while ((got = queued_msgs(k)) < want && now_ns() < end) {
		struct pollfd p = { .fd = k, .events = POLLIN };

		poll(&p, 1, 5);
	}
	if (got != want) {
		FAILF("%s: expected %d messages queued, got %d", what, want, got);
		return false;
	}
	return true;
}

/* Read @n messages from a TCP peer and check them. */
static bool peer_expect(int fd, uint32_t conn, uint32_t seq0, unsigned int n, const char *what)
{
	static uint8_t acc[1 << 20];
	size_t have = 0;
	unsigned int got = 0;
	uint64_t end = now_ns() + TIMEOUT_MS * 1000000ull;

	while (got < n) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		uint32_t body, gc = 0, gs = 0;
		ssize_t r;

		if (have >= 4) {
			memcpy(&body, acc, 4);
			body = ntohl(body);
			if (body > sizeof(acc) - 4) {
				FAILF("%s: impossible header %u after %u messages", what, body, got);
				return false;
			}
			if (have >= 4 + (size_t)body) {
				if (msg_check(acc, 4 + body, &gc, &gs) || gc != conn ||
				    gs != seq0 + got) {
					FAILF("%s: expected intact message %u/%u, got %u/%u (%u bytes)",
					      what, conn, seq0 + got, gc, gs, 4 + body);
					return false;
				}
				memmove(acc, acc + 4 + body, have - 4 - body);
				have -= 4 + body;
				got++;
				continue;
			}
		}
		if (poll(&p, 1, 50) <= 0) {
			if (now_ns() > end) {
				FAILF("%s: expected %u messages, got %u (+%zu bytes)", what, n, got,
				      have);
				return false;
			}
			continue;
		}
		r = read(fd, acc + have, sizeof(acc) - have);
		if (r <= 0) {
			FAILF("%s: read: %s", what, r ? strerror(errno) : "EOF");
			return false;
		}
		have += r;
	}
	if (have) {
		FAILF("%s: %zu bytes after the last message", what, have);
		return false;
	}
	return true;
}

/* A mux, @nk KCM sockets and @nt attached loopback pairs (c = peer end, s = transport). */
struct env {
	struct kcm_mux *mux;
	int k[4];
	int c[4], s[4];
	int nk, nt;
};

static bool env_up(struct env *e, int nk, int nt)
{
	memset(e, 0, sizeof(*e));
	for (int i = 0; i < 4; i++)
		e->k[i] = e->c[i] = e->s[i] = -1;
	e->mux = mux_new(NULL, 0, NULL);
	if (!e->mux)
		return false;
	for (; e->nk < nk; e->nk++) {
		e->k[e->nk] = e->nk ? kcm_clone(e->k[0]) : kcm_socket(e->mux);
		if (e->k[e->nk] < 0) {
			FAILF("kcm_socket/kcm_clone: %s", strerror(errno));
			return false;
		}
	}
	for (; e->nt < nt; e->nt++) {
		tcp_pair(&e->c[e->nt], &e->s[e->nt]);
		if (kcm_attach(e->mux, e->s[e->nt])) {
			FAILF("kcm_attach: %s", strerror(errno));
			e->nt++;
			return false;
		}
	}
	return true;
}

static void env_down(struct env *e)
{
	kcm_mux_destroy(e->mux); /* closes the KCM sockets */
	for (int i = 0; i < 4; i++) {
		if (e->c[i] >= 0)
			close(e->c[i]);
		if (e->s[i] >= 0)
			close(e->s[i]);
	}
	e->mux = NULL;
}

/* ---- subtests ---- */

static void t_attach_udp(void)
{
	struct kcm_mux *m = mux_new(NULL, 0, NULL);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK),
				 .sin_port = htons(9) };
	int u = socket(AF_INET, SOCK_DGRAM, 0);

	if (!m)
		return;
	CHECK_ERR(kcm_attach(m, u), EOPNOTSUPP, "attach unconnected UDP");
	connect(u, (struct sockaddr *)&a, sizeof(a));
	CHECK_ERR(kcm_attach(m, u), EOPNOTSUPP, "attach connected UDP");
	close(u);
	kcm_mux_destroy(m);
}

static void t_attach_unix(void)
{
	struct kcm_mux *m = mux_new(NULL, 0, NULL);
	int sv[2];

	if (!m)
		return;
	socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
	CHECK_ERR(kcm_attach(m, sv[0]), EOPNOTSUPP, "attach AF_UNIX stream");
	close(sv[0]);
	close(sv[1]);
	socketpair(AF_UNIX, SOCK_DGRAM, 0, sv);
	CHECK_ERR(kcm_attach(m, sv[0]), EOPNOTSUPP, "attach AF_UNIX dgram");
	close(sv[0]);
	close(sv[1]);
	kcm_mux_destroy(m);
}

static void t_attach_listening(void)
{
	struct kcm_mux *m = mux_new(NULL, 0, NULL);
	int l = tcp_listen("127.0.0.1:0", 4);

	if (!m)
		return;
	CHECK_ERR(kcm_attach(m, l), EOPNOTSUPP, "attach listening TCP");
	close(l);
	kcm_mux_destroy(m);
}

static void t_attach_unconnected(void)
{
	struct kcm_mux *m = mux_new(NULL, 0, NULL);
	int t = socket(AF_INET, SOCK_STREAM, 0), t6 = socket(AF_INET6, SOCK_STREAM, 0);

	if (!m)
		return;
	CHECK_ERR(kcm_attach(m, t), EOPNOTSUPP, "attach unconnected TCP");
	if (t6 >= 0)
		CHECK_ERR(kcm_attach(m, t6), EOPNOTSUPP, "attach unconnected TCPv6");
	close(t);
	if (t6 >= 0)
		close(t6);
	kcm_mux_destroy(m);
}

static void t_attach_twice(void)
{
	struct env e;
	int d;

	if (!env_up(&e, 1, 1))
		goto out;
	CHECK_ERR(kcm_attach(e.mux, e.s[0]), EALREADY, "attach the same fd again");
	d = dup(e.s[0]);
	CHECK_ERR(kcm_attach(e.mux, d), EALREADY, "attach a dup of it");
	close(d);
	/* the failed attaches left the transport working */
	peer_send(e.c[0], 1, 0, 1, 100);
	expect_msg(e.k[0], 1, 0, 100, "message after the failed attach");
out:
	env_down(&e);
}

static void t_attach_second_mux(void)
{
	struct kcm_mux *m2 = NULL;
	struct env e;

	if (!env_up(&e, 1, 1))
		goto out;
	m2 = mux_new(NULL, 0, NULL);
	if (!m2)
		goto out;
	if (kcm_socket(m2) < 0)
		FAILF("kcm_socket on the second mux: %s", strerror(errno));
	CHECK_ERR(kcm_attach(m2, e.s[0]), EALREADY, "attach to a second mux");
	peer_send(e.c[0], 2, 0, 1, 100);
	expect_msg(e.k[0], 2, 0, 100, "first mux still receives");
out:
	kcm_mux_destroy(m2);
	env_down(&e);
}

static void t_unattach_never(void)
{
	struct env e;
	int c, s;

	if (!env_up(&e, 1, 1))
		goto out;
	tcp_pair(&c, &s);
	CHECK_ERR(kcm_unattach(e.mux, s), ENOENT, "unattach a never-attached socket");
	CHECK_ERR(kcm_unattach(e.mux, c), ENOENT, "unattach the peer of an attached socket");
	close(c);
	close(s);
out:
	env_down(&e);
}

static void t_unattach_twice(void)
{
	struct env e;

	if (!env_up(&e, 1, 1))
		goto out;
	CHECK_OK(kcm_unattach(e.mux, e.s[0]), "first unattach");
	CHECK_ERR(kcm_unattach(e.mux, e.s[0]), ENOENT, "second unattach");
out:
	env_down(&e);
}

static void t_reattach(void)
{
	struct env e;
	ssize_t r;

	if (!env_up(&e, 1, 1))
		goto out;
	peer_send(e.c[0], 3, 0, 1, 64);
	expect_msg(e.k[0], 3, 0, 64, "before unattach");
	CHECK_OK(kcm_unattach(e.mux, e.s[0]), "unattach");
	/* unattached: bytes stay on the TCP socket, the KCM socket sees nothing */
	peer_send(e.c[0], 3, 1, 1, 64);
	expect_quiet(e.k[0], "KCM socket after unattach");
	r = recv(e.s[0], rbuf, sizeof(rbuf), MSG_DONTWAIT);
	CHECK_EQ(r, 68, "plain read of the unattached socket");
	CHECK_ERR(kcm_send(e.k[0], wbuf, msg_build(wbuf, 3, 9, 20), 0), ENOTCONN,
		  "send with the only transport unattached");
	CHECK_OK(kcm_attach(e.mux, e.s[0]), "attach again");
	peer_send(e.c[0], 3, 2, 3, 64);
	for (uint32_t i = 2; i < 5; i++)
		if (!expect_msg(e.k[0], 3, i, 64, "after reattach"))
			break;
	r = kcm_send(e.k[0], wbuf, msg_build(wbuf, 3, 10, 200), 0);
	CHECK_EQ(r, 204, "kcm_send after reattach");
	peer_expect(e.c[0], 3, 10, 1, "transmit after reattach");
out:
	env_down(&e);
}

static void t_queued_before_attach(void)
{
	struct kcm_mux *m = mux_new(NULL, 0, NULL);
	uint64_t end = now_ns() + TIMEOUT_MS * 1000000ull;
	int c, s, k = -1, inq = 0;

	if (!m)
		return;
	tcp_pair(&c, &s);
	peer_send(c, 4, 0, 1, 100);
	peer_send(c, 4, 1, 1, 3000);
	peer_send(c, 4, 2, 1, 12);
	/* all 3 must sit on the socket before it is attached */
	while (now_ns() < end) {
		struct pollfd p = { .fd = s, .events = POLLIN };

		if (ioctl(s, SIOCINQ, &inq) || inq >= 104 + 3004 + 16)
			break;
		poll(&p, 1, 5);
	}
	CHECK_EQ(inq, 104 + 3004 + 16, "bytes queued on the TCP socket (SIOCINQ)");
	k = kcm_socket(m);
	CHECK_OK(kcm_attach(m, s), "attach");
	if (!expect_msg(k, 4, 0, 100, "queued message 0") ||
	    !expect_msg(k, 4, 1, 3000, "queued message 1") ||
	    !expect_msg(k, 4, 2, 12, "queued message 2"))
		goto out;
	/* and what comes after them too */
	peer_send(c, 4, 3, 1, 50);
	expect_msg(k, 4, 3, 50, "message after the attach");
out:
	kcm_mux_destroy(m);
	close(c);
	close(s);
}

static void t_clone(void)
{
	uint8_t seen[8] = { 0 };
	unsigned int na, nb;
	struct env e;
	int b;

	if (!env_up(&e, 1, 1))
		goto out;
	b = kcm_clone(e.k[0]);
	if (b < 0) {
		FAILF("kcm_clone: expected a fd, got -1/%s", ename(errno));
		goto out;
	}
	e.k[1] = b;
	if (b == e.k[0])
		FAILF("kcm_clone: expected a new fd, got the same %d", b);
	if (kcm_mux_of(b) != e.mux || kcm_mux_of(e.k[0]) != e.mux)
		FAILF("kcm_mux_of: expected %p for both, got %p and %p", (void *)e.mux,
		      (void *)kcm_mux_of(e.k[0]), (void *)kcm_mux_of(b));
	peer_send(e.c[0], 5, 0, 8, 100);
	/* wait for all 8 to be queued, then count who got what */
	{
		uint64_t end = now_ns() + TIMEOUT_MS * 1000000ull;

		while (queued_msgs(e.k[0]) + queued_msgs(b) < 8 && now_ns() < end)
			usleep(1000);
	}
	na = drain(e.k[0], 5, seen, 8, QUIET_MS);
	nb = drain(b, 5, seen, 8, QUIET_MS);
	CHECK_EQ(na, 4, "messages on the first socket (round-robin of 8)");
	CHECK_EQ(nb, 4, "messages on the clone (round-robin of 8)");
	for (int i = 0; i < 8; i++)
		CHECK_EQ(seen[i], 1, "copies of message %d", i);
out:
	env_down(&e);
}

static void t_clone_ebadf(void)
{
	int c, s, sv[2];

	tcp_pair(&c, &s);
	socketpair(AF_UNIX, SOCK_DGRAM, 0, sv);
	CHECK_ERR(kcm_clone(s), EBADF, "kcm_clone of a TCP socket");
	CHECK_ERR(kcm_clone(sv[0]), EBADF, "kcm_clone of an AF_UNIX socket");
	CHECK_ERR(kcm_clone(-1), EBADF, "kcm_clone(-1)");
	CHECK_ERR(kcm_clone(1 << 22), EBADF, "kcm_clone(4M)");
	errno = 0;
	if (kcm_mux_of(s) != NULL || errno != EBADF)
		FAILF("kcm_mux_of a TCP socket: expected NULL/EBADF, got %p/%s",
		      (void *)kcm_mux_of(s), ename(errno));
	close(c);
	close(s);
	close(sv[0]);
	close(sv[1]);
}

static void t_kcm_close(void)
{
	struct env e;
	int b;

	if (!env_up(&e, 2, 1))
		goto out;
	b = e.k[1];
	CHECK_OK(kcm_close(b), "kcm_close");
	e.k[1] = -1;
	errno = 0;
	if (kcm_mux_of(b) != NULL)
		FAILF("kcm_mux_of after kcm_close: expected NULL/EBADF, got %p",
		      (void *)kcm_mux_of(b));
	CHECK_ERR(kcm_close(b), EBADF, "kcm_close twice");
	peer_send(e.c[0], 6, 0, 6, 80);
	for (uint32_t i = 0; i < 6; i++)
		if (!expect_msg(e.k[0], 6, i, 80, "on the remaining socket"))
			break;
out:
	env_down(&e);
}

static void t_plain_close(void)
{
	struct env e;

	if (!env_up(&e, 3, 1))
		goto out;
	close(e.k[1]); /* a hole in the middle of the steering list */
	peer_send(e.c[0], 7, 0, 8, 80);
	{
		uint8_t seen[8] = { 0 };
		uint64_t end = now_ns() + TIMEOUT_MS * 1000000ull;
		unsigned int n;

		while (queued_msgs(e.k[0]) + queued_msgs(e.k[2]) < 8 && now_ns() < end)
			usleep(1000);
		n = drain(e.k[0], 7, seen, 8, QUIET_MS);
		n += drain(e.k[2], 7, seen, 8, QUIET_MS);
		CHECK_EQ(n, 8, "messages on the two open sockets");
		for (int i = 0; i < 8; i++)
			CHECK_EQ(seen[i], 1, "copies of message %d", i);
	}
out:
	env_down(&e);
}

/*
 * After a plain close() the fd number is free; a socket that reuses it is not a KCM
 * socket (kcm_mux_of: EBADF) and closing the mux must not close it.
 */
static void t_plain_close_fd_reuse(void)
{
	struct env e;
	int t, old;

	if (!env_up(&e, 2, 1))
		goto out;
	old = e.k[1];
	close(old);
	t = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (t != old) {
		dup2(t, old);
		close(t);
		t = old;
	}
	errno = 0;
	if (kcm_mux_of(t) != NULL || errno != EBADF)
		FAILF("kcm_mux_of a TCP socket on a reused fd: expected NULL/EBADF, got %p/%s",
		      (void *)kcm_mux_of(t), ename(errno));
	kcm_mux_destroy(e.mux);
	e.mux = NULL;
	CHECK_EQ(fcntl(t, F_GETFD) >= 0, 1, "reused fd still open after kcm_mux_destroy");
	close(t);
out:
	env_down(&e);
}

static void t_poll(void)
{
	struct pollfd p;
	struct env e;
	int r;

	if (!env_up(&e, 1, 1))
		goto out;
	p = (struct pollfd){ .fd = e.k[0], .events = POLLIN };
	r = poll(&p, 1, QUIET_MS);
	CHECK_EQ(r, 0, "poll before any message");
	peer_send(e.c[0], 8, 0, 1, 100);
	p.revents = 0;
	r = poll(&p, 1, TIMEOUT_MS);
	CHECK_EQ(r, 1, "poll after a message");
	CHECK_EQ(!!(p.revents & POLLIN), 1, "POLLIN after a message");
	expect_msg(e.k[0], 8, 0, 100, "the message");
	p.revents = 0;
	r = poll(&p, 1, QUIET_MS);
	CHECK_EQ(r, 0, "poll after reading it");
out:
	env_down(&e);
}

static void t_epoll(void)
{
	struct epoll_event ev = { .events = EPOLLIN }, got[4];
	struct env e;
	int ep = -1, r;

	if (!env_up(&e, 2, 1))
		goto out;
	ep = epoll_create1(EPOLL_CLOEXEC);
	ev.data.fd = e.k[0];
	epoll_ctl(ep, EPOLL_CTL_ADD, e.k[0], &ev);
	ev.data.fd = e.k[1];
	epoll_ctl(ep, EPOLL_CTL_ADD, e.k[1], &ev);
	r = epoll_wait(ep, got, 4, QUIET_MS);
	CHECK_EQ(r, 0, "epoll_wait before any message");
	peer_send(e.c[0], 9, 0, 1, 100);
	r = epoll_wait(ep, got, 4, TIMEOUT_MS);
	CHECK_EQ(r, 1, "epoll_wait after one message: ready sockets");
	if (r == 1) {
		CHECK_EQ(!!(got[0].events & EPOLLIN), 1, "EPOLLIN");
		expect_msg(got[0].data.fd, 9, 0, 100, "the message");
	}
	r = epoll_wait(ep, got, 4, QUIET_MS);
	CHECK_EQ(r, 0, "epoll_wait after reading it");
out:
	if (ep >= 0)
		close(ep);
	env_down(&e);
}

static void t_recv_eagain(void)
{
	struct env e;
	int fl;

	if (!env_up(&e, 1, 1))
		goto out;
	CHECK_ERR(kcm_recv(e.k[0], rbuf, sizeof(rbuf), MSG_DONTWAIT), EAGAIN,
		  "kcm_recv MSG_DONTWAIT on an empty socket");
	fl = fcntl(e.k[0], F_GETFL);
	fcntl(e.k[0], F_SETFL, fl | O_NONBLOCK);
	CHECK_ERR(kcm_recv(e.k[0], rbuf, sizeof(rbuf), 0), EAGAIN,
		  "kcm_recv on an empty O_NONBLOCK socket");
	fcntl(e.k[0], F_SETFL, fl);
out:
	env_down(&e);
}

static void t_truncation(void)
{
	uint8_t small[10], want[10];
	struct iovec iov = { small, sizeof(small) };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
	struct env e;
	ssize_t r;

	if (!env_up(&e, 1, 1))
		goto out;
	peer_send(e.c[0], 10, 0, 1, 100);
	peer_send(e.c[0], 10, 1, 1, 5000);
	peer_send(e.c[0], 10, 2, 1, 50);
	peer_send(e.c[0], 10, 3, 1, 65532); /* a max-size one */
	if (!wait_queued(e.k[0], 4, "before reading"))
		goto out;
	mh.msg_flags = 0;
	r = kcm_recvmsg(e.k[0], &mh, 0);
	CHECK_EQ(r, sizeof(small), "short buffer: copied length");
	CHECK_EQ(!!(mh.msg_flags & MSG_TRUNC), 1, "short buffer: MSG_TRUNC in msg_flags");
	msg_build(wbuf, 10, 0, 100);
	memcpy(want, wbuf, sizeof(want));
	CHECK_EQ(memcmp(small, want, sizeof(want)), 0, "short buffer holds the first bytes");
	mh.msg_flags = 0;
	r = kcm_recvmsg(e.k[0], &mh, MSG_TRUNC);
	CHECK_EQ(r, 5004, "MSG_TRUNC flag: real length");
	CHECK_EQ(!!(mh.msg_flags & MSG_TRUNC), 1, "MSG_TRUNC flag: MSG_TRUNC in msg_flags");
	/* the rest of each truncated message is gone: the next call gets the next message */
	expect_msg(e.k[0], 10, 2, 50, "message after two truncated ones");
	/* a buffer of exactly the message length is not truncated */
	iov = (struct iovec){ rbuf, 65536 };
	mh.msg_flags = 0;
	r = kcm_recvmsg(e.k[0], &mh, MSG_TRUNC);
	CHECK_EQ(r, 65536, "exact buffer: length");
	CHECK_EQ(mh.msg_flags & MSG_TRUNC, 0, "exact buffer: msg_flags");
	CHECK_ERR(kcm_recv(e.k[0], rbuf, sizeof(rbuf), MSG_DONTWAIT), EAGAIN, "queue empty after");
out:
	env_down(&e);
}

static void t_recvmmsg(void)
{
	static uint8_t bufs[8][512];
	struct mmsghdr vec[8];
	struct iovec iov[8];
	struct env e;
	int n;

	if (!env_up(&e, 1, 1))
		goto out;
	for (int i = 0; i < 8; i++) {
		iov[i] = (struct iovec){ bufs[i], sizeof(bufs[i]) };
		vec[i] = (struct mmsghdr){ .msg_hdr = { .msg_iov = &iov[i], .msg_iovlen = 1 } };
	}
	for (uint32_t i = 0; i < 5; i++)
		peer_send(e.c[0], 11, i, 1, 100 + i * 50);
	if (!wait_queued(e.k[0], 5, "before kcm_recvmmsg"))
		goto out;
	n = kcm_recvmmsg(e.k[0], vec, 8, MSG_DONTWAIT);
	CHECK_EQ(n, 5, "kcm_recvmmsg of 5 queued into 8 slots");
	for (int i = 0; i < n && i < 8; i++) {
		uint32_t c = 0, s = 0;

		CHECK_EQ(vec[i].msg_len, 104 + i * 50, "msg_len[%d]", i);
		if (msg_check(bufs[i], vec[i].msg_len, &c, &s) || c != 11 || s != (uint32_t)i)
			FAILF("message %d: expected intact 11/%d, got %u/%u", i, i, c, s);
	}
	CHECK_ERR(kcm_recvmmsg(e.k[0], vec, 8, MSG_DONTWAIT), EAGAIN, "kcm_recvmmsg on empty");
out:
	env_down(&e);
}

/* A batch with short buffers: each message truncated on its own, none bleeds into the next. */
static void t_recvmmsg_trunc(void)
{
	static uint8_t bufs[4][64], big[2048];
	struct mmsghdr vec[3];
	struct iovec iov[3];
	struct env e;
	uint32_t c = 0, sq = 0;
	ssize_t r;
	int n;

	if (!env_up(&e, 1, 1))
		goto out;
	for (int i = 0; i < 3; i++) {
		iov[i] = (struct iovec){ bufs[i], sizeof(bufs[i]) };
		vec[i] = (struct mmsghdr){ .msg_hdr = { .msg_iov = &iov[i], .msg_iovlen = 1 } };
	}
	peer_send(e.c[0], 21, 0, 4, 500);
	if (!wait_queued(e.k[0], 4, "before kcm_recvmmsg"))
		goto out;
	n = kcm_recvmmsg(e.k[0], vec, 3, MSG_DONTWAIT);
	CHECK_EQ(n, 3, "kcm_recvmmsg of 3 of 4 queued");
	for (int i = 0; i < n && i < 3; i++) {
		uint32_t seq;

		CHECK_EQ(vec[i].msg_len, 64, "msg_len[%d] (truncated)", i);
		CHECK_EQ(vec[i].msg_hdr.msg_flags & MSG_TRUNC, MSG_TRUNC, "MSG_TRUNC[%d]", i);
		memcpy(&seq, bufs[i] + 8, 4);
		CHECK_EQ(ntohl(seq), (uint32_t)i, "seq of message %d", i);
	}
	r = kcm_recv(e.k[0], big, sizeof(big), MSG_DONTWAIT);
	CHECK_EQ(r, 504, "the fourth message, whole");
	if (r == 504 && (msg_check(big, r, &c, &sq) || c != 21 || sq != 3))
		FAILF("fourth message: expected intact 21/3, got %u/%u", c, sq);
out:
	env_down(&e);
}

static void t_sendmmsg(void)
{
	static uint8_t bufs[6][4096];
	struct mmsghdr vec[6];
	struct iovec iov[6];
	struct env e;
	int n;

	if (!env_up(&e, 1, 1))
		goto out;
	for (int i = 0; i < 6; i++) {
		iov[i] = (struct iovec){ bufs[i], msg_build(bufs[i], 12, i, 20 + i * 700) };
		vec[i] = (struct mmsghdr){ .msg_hdr = { .msg_iov = &iov[i], .msg_iovlen = 1 } };
	}
	n = kcm_sendmmsg(e.k[0], vec, 6, 0);
	CHECK_EQ(n, 6, "kcm_sendmmsg of 6");
	for (int i = 0; i < n; i++)
		CHECK_EQ(vec[i].msg_len, iov[i].iov_len, "msg_len[%d]", i);
	peer_expect(e.c[0], 12, 0, 6, "peer stream");
out:
	env_down(&e);
}

/* MSG_MORE composes one message; another socket's message cannot land inside it. */
static void t_send_msg_more(void)
{
	static uint8_t a[65536], b[4096];
	size_t alen, blen;
	struct env e;

	if (!env_up(&e, 2, 1)) /* two KCM sockets, one transport */
		goto out;
	alen = msg_build(a, 13, 1, 3000);
	blen = msg_build(b, 13, 0, 500);
	CHECK_EQ(kcm_send(e.k[0], a, 100, MSG_MORE), 100, "first part with MSG_MORE");
	CHECK_EQ(kcm_send(e.k[0], a + 100, 1000, MSG_MORE), 1000, "second part with MSG_MORE");
	CHECK_EQ(kcm_send(e.k[1], b, blen, 0), (ssize_t)blen, "a whole message from the other socket");
	CHECK_EQ(kcm_send(e.k[0], a + 1100, alen - 1100, 0), (ssize_t)(alen - 1100), "last part");
	/* on the wire: B (seq 0) whole, then A (seq 1) whole */
	peer_expect(e.c[0], 13, 0, 2, "peer stream");
	CHECK_EQ(kcm_send(e.k[0], a, 3000, MSG_MORE), 3000, "a part of 3000");
	/* the default maximum is 64 KiB */
	CHECK_ERR(kcm_send(e.k[0], a, 65536 - 100, MSG_MORE), EMSGSIZE, "a part past the maximum");
	CHECK_EQ(kcm_send(e.k[0], b, blen, 0), (ssize_t)blen, "the discarded message left nothing");
	peer_expect(e.c[0], 13, 0, 1, "peer stream after EMSGSIZE");
out:
	env_down(&e);
}

/* Put @n messages on socket @a only (others disabled meanwhile). */
static bool queue_on(struct env *e, int a, int b, uint32_t conn, uint32_t seq0, int n)
{
	struct kcm_requeue_report rep;

	CHECK_OK(kcm_recv_disable(e->k[b], true, &rep), "disable the other socket");
	peer_send(e->c[0], conn, seq0, n, 300);
	return wait_queued(e->k[a], n, "queue on one socket");
}

static void t_recv_disable_moves(void)
{
	struct kcm_requeue_report rep;
	struct env e;

	if (!env_up(&e, 2, 1))
		goto out;
	if (!queue_on(&e, 0, 1, 13, 0, 5))
		goto out;
	CHECK_OK(kcm_recv_disable(e.k[1], false, NULL), "enable B");
	memset(&rep, 0x5a, sizeof(rep));
	CHECK_OK(kcm_recv_disable(e.k[0], true, &rep), "disable A");
	CHECK_EQ(rep.moved, 5, "rep.moved");
	CHECK_EQ(rep.kept, 0, "rep.kept");
	CHECK_EQ(rep.kept_bytes, 0, "rep.kept_bytes");
	CHECK_EQ(rep.kept_reason, 0, "rep.kept_reason");
	for (uint32_t i = 0; i < 5; i++)
		if (!expect_msg(e.k[1], 13, i, 300, "moved to B"))
			break;
	CHECK_EQ(queued_msgs(e.k[0]), 0, "left on A");
	peer_send(e.c[0], 13, 5, 4, 300);
	for (uint32_t i = 5; i < 9; i++)
		if (!expect_msg(e.k[1], 13, i, 300, "new messages go to B"))
			break;
	expect_quiet(e.k[0], "A gets nothing while disabled");
out:
	env_down(&e);
}

static void t_recv_disable_keeps(void)
{
	struct kcm_requeue_report rep;
	struct env e;

	if (!env_up(&e, 2, 1))
		goto out;
	if (!queue_on(&e, 0, 1, 14, 0, 4))
		goto out;
	memset(&rep, 0x5a, sizeof(rep));
	CHECK_OK(kcm_recv_disable(e.k[0], true, &rep), "disable A with B disabled");
	CHECK_EQ(rep.moved, 0, "rep.moved");
	CHECK_EQ(rep.kept, 4, "rep.kept");
	CHECK_EQ(rep.kept_bytes, 4 * 304, "rep.kept_bytes");
	CHECK_EQ(rep.kept_reason, ENOENT, "rep.kept_reason");
	for (uint32_t i = 0; i < 4; i++)
		if (!expect_msg(e.k[0], 14, i, 300, "kept on A"))
			break;
out:
	env_down(&e);
}

static void t_recv_enable(void)
{
	struct env e;

	if (!env_up(&e, 2, 1))
		goto out;
	CHECK_OK(kcm_recv_disable(e.k[0], true, NULL), "disable A");
	peer_send(e.c[0], 15, 0, 3, 40);
	for (uint32_t i = 0; i < 3; i++)
		if (!expect_msg(e.k[1], 15, i, 40, "B while A is disabled"))
			break;
	expect_quiet(e.k[0], "A while disabled");
	CHECK_OK(kcm_recv_disable(e.k[0], false, NULL), "enable A");
	CHECK_OK(kcm_recv_disable(e.k[1], true, NULL), "disable B");
	peer_send(e.c[0], 15, 3, 3, 40);
	for (uint32_t i = 3; i < 6; i++)
		if (!expect_msg(e.k[0], 15, i, 40, "A after enable"))
			break;
	expect_quiet(e.k[1], "B while disabled");
out:
	env_down(&e);
}

/* Receive disable must not wait for a reader blocked on the same socket (AF_KCM does not). */
struct blocked {
	int k;
	atomic_bool done;
	ssize_t r;
	int err;
};

static void *blocked_recv(void *arg)
{
	struct blocked *b = arg;
	static uint8_t buf[1024];

	b->r = kcm_recv(b->k, buf, sizeof(buf), 0);
	b->err = errno;
	atomic_store(&b->done, true);
	return NULL;
}

static void *disable_a(void *arg)
{
	struct blocked *b = arg;

	b->r = kcm_recv_disable(b->k, true, NULL);
	b->err = errno;
	atomic_store(&b->done, true);
	return NULL;
}

static void on_usr1(int sig)
{
	(void)sig; /* only interrupts poll() */
}

static void t_recv_disable_blocked_reader(void)
{
	struct sigaction sa = { .sa_handler = on_usr1 }; /* no SA_RESTART */
	struct blocked rd = { 0 }, ds = { 0 };
	pthread_t rth, dth;
	uint64_t end;
	struct env e;

	if (!env_up(&e, 2, 1))
		goto out;
	sigaction(SIGUSR1, &sa, NULL);
	rd.k = ds.k = e.k[0];
	pthread_create(&rth, NULL, blocked_recv, &rd);
	usleep(100000); /* let it block in kcm_recv */
	pthread_create(&dth, NULL, disable_a, &ds);
	end = now_ns() + 2000000000ull;
	while (!atomic_load(&ds.done) && now_ns() < end)
		usleep(1000);
	if (!atomic_load(&ds.done))
		FAILF("kcm_recv_disable(A) with a reader blocked in kcm_recv(A): expected it to "
		      "return, got still blocked after 2 s");
	else
		CHECK_EQ(ds.r, 0, "kcm_recv_disable(A) with a reader blocked on A");
	if (atomic_load(&ds.done)) {
		/* A is disabled: a new message goes to B, the reader keeps waiting */
		peer_send(e.c[0], 19, 0, 1, 60);
		expect_msg(e.k[1], 19, 0, 60, "B while A is disabled and A's reader waits");
	}
	/* unblock the reader (EINTR), which also lets a stuck kcm_recv_disable() finish */
	while (!atomic_load(&rd.done)) {
		pthread_kill(rth, SIGUSR1);
		usleep(10000);
	}
	pthread_join(rth, NULL);
	pthread_join(dth, NULL);
	CHECK_EQ(rd.r, -1, "the interrupted kcm_recv");
out:
	env_down(&e);
}

static void t_send_emsgsize(void)
{
	struct env e;
	ssize_t r;

	if (!env_up(&e, 1, 1))
		goto out;
	CHECK_ERR(kcm_send(e.k[0], wbuf, msg_build(wbuf, 16, 0, 65533), 0), EMSGSIZE,
		  "kcm_send of max + 1 (65537)");
	r = kcm_send(e.k[0], wbuf, msg_build(wbuf, 16, 1, 65532), 0);
	CHECK_EQ(r, 65536, "kcm_send of exactly max");
	peer_expect(e.c[0], 16, 1, 1, "max-size message");
out:
	env_down(&e);
}

static void t_send_enotconn(void)
{
	struct env e;

	if (!env_up(&e, 1, 0))
		goto out;
	CHECK_ERR(kcm_send(e.k[0], wbuf, msg_build(wbuf, 17, 0, 100), 0), ENOTCONN,
		  "kcm_send without transports");
	CHECK_ERR(kcm_send(e.k[0], wbuf, msg_build(wbuf, 17, 0, 100), MSG_DONTWAIT), ENOTCONN,
		  "kcm_send MSG_DONTWAIT without transports");
out:
	env_down(&e);
}

/* Nonblocking send into full transports: EAGAIN, and never half a message on the wire. */
#define NB_COUNT 3000

struct nb_sender {
	int k;
	atomic_bool full;		/* EAGAIN seen */
	atomic_bool readers;		/* the peers started reading */
	atomic_uint sent;
	unsigned int eagain_before, eagain_total;
	int err;
};

static uint32_t nb_body(uint32_t seq)
{
	return 12 + (seq * 2654435761u) % 600;
}

static void *nb_send(void *arg)
{
	struct nb_sender *st = arg;
	static uint8_t buf[1024];

	for (uint32_t seq = 0; seq < NB_COUNT; seq++) {
		size_t len = msg_build(buf, 18, seq, nb_body(seq));

		for (;;) {
			ssize_t r = kcm_send(st->k, buf, len, MSG_DONTWAIT);

			if (r == (ssize_t)len)
				break;
			if (r >= 0 || errno != EAGAIN) {
				st->err = r < 0 ? errno : EIO;
				return NULL;
			}
			st->eagain_total++;
			if (!atomic_load(&st->readers))
				st->eagain_before++;
			atomic_store(&st->full, true);
			usleep(200);
		}
		atomic_fetch_add(&st->sent, 1);
	}
	return NULL;
}

static void t_send_nonblock(void)
{
	static uint8_t acc[2][1 << 17];
	struct nb_sender st = { .k = -1 };
	uint8_t *seen = calloc(NB_COUNT, 1);
	size_t have[2] = { 0, 0 };
	bool eof[2] = { false, false }, joined = false;
	unsigned int got = 0, corrupt = 0;
	pthread_t th;
	uint64_t end;
	struct env e;
	int small = 4096;

	if (!env_up(&e, 1, 0))
		goto out;
	for (; e.nt < 2; e.nt++) {
		tcp_pair(&e.c[e.nt], &e.s[e.nt]);
		setsockopt(e.s[e.nt], SOL_SOCKET, SO_SNDBUF, &small, sizeof(small));
		if (kcm_attach(e.mux, e.s[e.nt])) {
			FAILF("kcm_attach: %s", strerror(errno));
			e.nt++;
			goto out;
		}
	}
	st.k = e.k[0];
	pthread_create(&th, NULL, nb_send, &st);
	/* Peers do not read until every transport is full and the sender saw EAGAIN. */
	end = now_ns() + 3000000000ull;
	while (!atomic_load(&st.full) && now_ns() < end)
		usleep(1000);
	CHECK_EQ(atomic_load(&st.full), 1, "EAGAIN while no peer reads (within 3 s)");
	atomic_store(&st.readers, true);
	/* Then read, re-split each stream and check every message. */
	end = now_ns() + 60000000000ull;
	while ((!eof[0] || !eof[1]) && now_ns() < end) {
		struct pollfd p[2] = { { .fd = e.c[0], .events = POLLIN },
				       { .fd = e.c[1], .events = POLLIN } };

		if (!joined && atomic_load(&st.sent) == NB_COUNT) {
			pthread_join(th, NULL);
			joined = true;
			shutdown(e.s[0], SHUT_WR); /* the peers then see EOF after the last byte */
			shutdown(e.s[1], SHUT_WR);
		}
		if (!joined && st.err) {
			FAILF("kcm_send MSG_DONTWAIT: expected success or EAGAIN, got %s",
			      ename(st.err));
			break;
		}
		if (poll(p, 2, 20) <= 0)
			continue;
		for (int i = 0; i < 2; i++) {
			ssize_t r;

			if (!(p[i].revents & (POLLIN | POLLHUP)))
				continue;
			r = read(e.c[i], acc[i] + have[i], 4096);
			if (r <= 0) {
				eof[i] = true;
				p[i].fd = -1;
				continue;
			}
			have[i] += r;
			for (;;) {
				uint32_t body, c, s;

				if (have[i] < 4)
					break;
				memcpy(&body, acc[i], 4);
				body = ntohl(body);
				if (body > 1024) { /* lost sync: bytes of two messages mixed */
					corrupt++;
					eof[i] = true;
					break;
				}
				if (have[i] < 4 + body)
					break;
				if (msg_check(acc[i], 4 + body, &c, &s) || c != 18 || s >= NB_COUNT)
					corrupt++;
				else if (seen[s]++ == 0)
					got++;
				memmove(acc[i], acc[i] + 4 + body, have[i] - 4 - body);
				have[i] -= 4 + body;
			}
		}
	}
	if (!joined) {
		FAILF("sender did not finish: %u of %u sent", atomic_load(&st.sent), NB_COUNT);
		pthread_cancel(th);
		pthread_join(th, NULL);
	}
	CHECK_EQ(corrupt, 0, "corrupt or interleaved frames");
	CHECK_EQ(have[0] + have[1], 0, "bytes of a partial message left at EOF");
	CHECK_EQ(got, NB_COUNT, "distinct messages received");
	for (uint32_t s = 0, dups = 0; s < NB_COUNT; s++)
		if (seen[s] > 1 && dups++ == 0)
			FAILF("message %u received %u times", s, seen[s]);
	printf("  %s: %u EAGAIN before the peers read, %u in all\n", cur_name, st.eagain_before,
	       st.eagain_total);
out:
	free(seen);
	env_down(&e);
}

/* ---- pinned mux ---- */

static char pin_name[64];

static int mode_of(const char *path)
{
	struct stat sb;

	return stat(path, &sb) ? -errno : (int)(sb.st_mode & 07777);
}

static void t_pinned(void)
{
	struct kcm_framing dns = KCM_FRAMING_DNS;
	struct kcm_mux *m, *m2, *o = NULL;
	char dir[256], path[600];
	struct dirent *de;
	int files = 0, k, c = -1, s = -1;
	DIR *d;

	snprintf(pin_name, sizeof(pin_name), "apitest-%d", getpid());
	snprintf(dir, sizeof(dir), "/sys/fs/bpf/kcm/%s", pin_name);
	m = mux_new(&dns, 1000, pin_name);
	if (!m)
		return;
	if (mode_of(dir) != 0700)
		FAILF("mode of %s: expected 0700, got %o", dir, mode_of(dir));
	d = opendir(dir);
	while (d && (de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		if (mode_of(path) != 0600)
			FAILF("mode of %s: expected 0600, got %o", path, mode_of(path));
		files++;
	}
	if (d)
		closedir(d);
	if (files == 0)
		FAILF("%s: expected pinned maps and programs, got none", dir);

	/* same name again */
	errno = 0;
	m2 = kcm_mux_create(&(struct kcm_mux_opts){ .sz = sizeof(struct kcm_mux_opts),
						    .framing = KCM_FRAMING_THRIFT,
						    .pin_name = pin_name });
	if (m2 || errno != EEXIST)
		FAILF("kcm_mux_create of an existing name: expected NULL/EEXIST, got %p/%s",
		      (void *)m2, ename(errno));
	kcm_mux_destroy(m2);
	if (mode_of(dir) != 0700)
		FAILF("pins after the refused create: expected a 0700 folder, got %d", mode_of(dir));

	/* open it and use it: DNS framing and max 1000 must come from the pins */
	o = kcm_mux_open(pin_name);
	if (!o) {
		FAILF("kcm_mux_open(%s): %s", pin_name, strerror(errno));
		goto destroy;
	}
	k = kcm_socket(o);
	tcp_pair(&c, &s);
	CHECK_OK(kcm_attach(o, s), "attach through the opened handle");
	for (int i = 0; i < 3; i++) {
		uint16_t plen = 100 + i * 400;
		ssize_t r;

		wbuf[0] = plen >> 8;
		wbuf[1] = plen & 0xff;
		for (int j = 0; j < plen; j++)
			wbuf[2 + j] = pattern_byte(i, 0, j);
		write_all(c, wbuf, 2 + plen);
		r = krecv_to(k, rbuf, sizeof(rbuf), TIMEOUT_MS);
		CHECK_EQ(r, 2 + plen, "DNS message %d length on the opened mux", i);
		if (r == 2 + plen && memcmp(rbuf, wbuf, r))
			FAILF("DNS message %d: expected intact, got different bytes", i);
	}
	memset(wbuf, 0, 1001);
	wbuf[0] = (998 >> 8);
	wbuf[1] = 998 & 0xff;
	CHECK_EQ(kcm_send(k, wbuf, 1000, 0), 1000, "kcm_send of max (1000) on the opened mux");
	CHECK_ERR(kcm_send(k, wbuf, 1001, 0), EMSGSIZE, "kcm_send of 1001 on the opened mux");
	{
		uint8_t got[1000];
		size_t n = 0;
		struct pollfd p = { .fd = c, .events = POLLIN };

		while (n < sizeof(got) && poll(&p, 1, TIMEOUT_MS) > 0) {
			ssize_t r = read(c, got + n, sizeof(got) - n);

			if (r <= 0)
				break;
			n += r;
		}
		CHECK_EQ(n, 1000, "bytes at the peer");
	}
	kcm_mux_close(o);
destroy:
	kcm_mux_destroy(m);
	CHECK_EQ(mode_of(dir), -ENOENT, "pin folder after kcm_mux_destroy");
	if (c >= 0)
		close(c);
	if (s >= 0)
		close(s);
	kcm_mux_unpin(pin_name); /* leave nothing behind when a check above failed */
}

/* ---- parser programs ---- */

/* A parser object of the build tree ($BUILD, as the bats suites export it). */
static const char *obj_path(const char *rel)
{
	static char buf[4][512];
	static int next;
	const char *build = getenv("BUILD");
	char *p = buf[next++ % 4];

	snprintf(p, sizeof(buf[0]), "%s/%s", build && *build ? build : "build", rel);
	return p;
}

static struct kcm_mux *mux_parser(const char *rel)
{
	struct kcm_mux_opts o = { .sz = sizeof(o), .parser = obj_path(rel) };
	struct kcm_mux *m = kcm_mux_create(&o);

	if (!m)
		FAILF("kcm_mux_create with parser %s: %s", o.parser, kcm_last_error());
	return m;
}

/* Option sizes of older callers, batching with parsers, and parser ids and objects. */
static void t_parser_api(void)
{
	struct kcm_mux_opts o = { .sz = 8, .framing = KCM_FRAMING_THRIFT };
	struct kcm_mux *m, *p;
	int c = -1, s = -1;

	CHECK_ERR(kcm_mux_create(&o) ? 0 : -1, EINVAL, "kcm_mux_create with sz 8");
	o.sz = offsetof(struct kcm_mux_opts, persistent) + sizeof(bool); /* before .parser */
	m = kcm_mux_create(&o);
	if (!m)
		FAILF("kcm_mux_create with the options of an older kcm.h: %s", strerror(errno));
	CHECK_ERR(kcm_parser_open(m, obj_path("parsers/thrift.bpf.o")), EOPNOTSUPP,
		  "kcm_parser_open on a mux with a length prefix");
	tcp_pair(&c, &s);
	CHECK_ERR(kcm_attach_parser(m, s, 1), EOPNOTSUPP, "kcm_attach_parser(1), length prefix");
	kcm_mux_destroy(m);
	o = (struct kcm_mux_opts){ .sz = sizeof(o), .parser = obj_path("parsers/thrift.bpf.o"),
				   .batch = 4 };
	CHECK_ERR(kcm_mux_create(&o) ? 0 : -1, EINVAL, "kcm_mux_create with a parser, batch 4");
	p = mux_parser("parsers/thrift.bpf.o");
	if (!p)
		goto out;
	CHECK_EQ(kcm_parser_open(p, obj_path("parsers/thrift.bpf.o")), 0, "the mux's own parser");
	CHECK_EQ(kcm_parser_open(p, obj_path("tests/parsers/thrift_checked.bpf.o")), 1,
		 "a second parser");
	CHECK_EQ(kcm_parser_open(p, obj_path("tests/parsers/thrift_checked.bpf.o")), 1,
		 "the second parser again");
	CHECK_ERR(kcm_parser_open(p, obj_path("tests/parsers/bad_no_parser.bpf.o")), ENOENT,
		  "an object without a stream parser");
	CHECK_ERR(kcm_parser_open(p, obj_path("tests/parsers/bad_kcm_style.bpf.o")), EINVAL,
		  "an AF_KCM socket filter");
	CHECK_ERR(kcm_parser_open(p, obj_path("tests/parsers/bad_modifies.bpf.o")), EINVAL,
		  "a parser that modifies the packet");
	CHECK_ERR(kcm_parser_open(p, obj_path("tests/parsers/bad_verifier.bpf.o")), EACCES,
		  "a parser the verifier rejects");
	CHECK_ERR(kcm_attach_parser(p, s, 5), ENOENT, "kcm_attach_parser with no parser 5");
	CHECK_ERR(kcm_attach_parser(p, s, 16), EINVAL, "parser id 16 (KCM_MAX_PARSERS)");
	CHECK_OK(kcm_attach_parser(p, s, 1), "kcm_attach_parser(1)");
	kcm_mux_destroy(p);
out:
	close(c);
	close(s);
}

/* Wait until @bytes are queued on @k (peeking: messages merge in a peek). */
static bool wait_bytes(int k, ssize_t bytes)
{
	uint64_t end = now_ns() + TIMEOUT_MS * 1000000ull;
	ssize_t n = 0;

	while (now_ns() < end) {
		struct pollfd pf = { .fd = k, .events = POLLIN };

		n = recv(k, rbuf, sizeof(rbuf), MSG_PEEK | MSG_DONTWAIT);
		if (n >= bytes)
			return true;
		poll(&pf, 1, 5);
	}
	FAILF("expected %zd bytes queued, got %zd", bytes, n);
	return false;
}

/* recvmmsg and recv_disable when lengths come from the kernel (UDP KCM sockets). */
static void t_parser_recv(void)
{
	static uint8_t bufs[8][512];
	struct kcm_requeue_report rep = { 0 };
	struct mmsghdr vec[8];
	struct iovec iov[8];
	struct kcm_mux *p = mux_parser("parsers/thrift.bpf.o");
	int k0, k1, c = -1, s = -1, n;
	size_t total = 0;

	if (!p)
		return;
	k0 = kcm_socket(p);
	tcp_pair(&c, &s);
	CHECK_OK(kcm_attach(p, s), "attach to the parser mux");
	for (int i = 0; i < 8; i++) {
		iov[i] = (struct iovec){ bufs[i], sizeof(bufs[i]) };
		vec[i] = (struct mmsghdr){ .msg_hdr = { .msg_iov = &iov[i], .msg_iovlen = 1 } };
	}
	for (uint32_t i = 0; i < 5; i++)
		total += msg_build(wbuf + total, 21, i, 100 + i * 50);
	write_all(c, wbuf, total); /* five messages in one write */
	if (!wait_bytes(k0, total))
		goto out;
	n = kcm_recvmmsg(k0, vec, 8, MSG_DONTWAIT);
	CHECK_EQ(n, 5, "kcm_recvmmsg of 5 queued into 8 slots");
	for (int i = 0; i < n && i < 8; i++) {
		uint32_t cn = 0, sq = 0;

		CHECK_EQ(vec[i].msg_len, 104 + i * 50, "msg_len[%d]", i);
		if (msg_check(bufs[i], vec[i].msg_len, &cn, &sq) || cn != 21 || sq != (uint32_t)i)
			FAILF("message %d: expected intact 21/%d, got %u/%u", i, i, cn, sq);
	}
	/* queue five more on k0 alone, then move them to a clone */
	peer_send(c, 22, 0, 5, 300);
	if (!wait_bytes(k0, 5 * 304))
		goto out;
	k1 = kcm_clone(k0);
	CHECK_OK(kcm_recv_disable(k0, true, &rep), "kcm_recv_disable");
	CHECK_EQ(rep.moved, 5, "messages moved");
	CHECK_EQ(rep.kept, 0, "messages kept");
	for (uint32_t i = 0; i < 5; i++)
		expect_msg(k1, 22, i, 300, "moved message");
out:
	kcm_mux_destroy(p);
	close(c);
	close(s);
}

/* ---- transport options ---- */

static int sockopt_int(int fd, int level, int opt)
{
	int v = -1;
	socklen_t len = sizeof(v);

	getsockopt(fd, level, opt, &v, &len);
	return v;
}

/* kcm_attach_opts sets every option, keeps an explicit SO_RCVBUF, refuses bad ranges. */
static void t_transport_options(void)
{
	struct kcm_transport_opts o = {
		.sz = sizeof(o), .nodelay = 1, .keepalive_idle = 7, .keepalive_intvl = 3,
		.keepalive_cnt = 4, .user_timeout_ms = 2500, .rcvbuf = 32768, .rcvtimeo_ms = 1500,
		.linger = -1,
	};
	struct kcm_mux *m = mux_new(NULL, 1 << 20, NULL);
	struct linger l = { 0 };
	struct timeval tv = { 0 };
	socklen_t len;
	int c = -1, s = -1, k;

	if (!m)
		return;
	tcp_pair(&c, &s);
	o.keepalive_cnt = 200;
	CHECK_ERR(kcm_attach_opts(m, s, &o), EINVAL, "keepalive_cnt 200");
	if (!strstr(kcm_last_error(), "keepalive_cnt is 200"))
		FAILF("error for keepalive_cnt 200: expected it named, got '%s'", kcm_last_error());
	o.keepalive_cnt = 4;
	o.sz = 8;
	CHECK_ERR(kcm_attach_opts(m, s, &o), EINVAL, "sz 8");
	o.sz = sizeof(o);
	CHECK_OK(kcm_attach_opts(m, s, &o), "kcm_attach_opts");
	CHECK_EQ(sockopt_int(s, IPPROTO_TCP, TCP_NODELAY), 1, "TCP_NODELAY");
	CHECK_EQ(sockopt_int(s, SOL_SOCKET, SO_KEEPALIVE), 1, "SO_KEEPALIVE");
	CHECK_EQ(sockopt_int(s, IPPROTO_TCP, TCP_KEEPIDLE), 7, "TCP_KEEPIDLE");
	CHECK_EQ(sockopt_int(s, IPPROTO_TCP, TCP_KEEPINTVL), 3, "TCP_KEEPINTVL");
	CHECK_EQ(sockopt_int(s, IPPROTO_TCP, TCP_KEEPCNT), 4, "TCP_KEEPCNT");
	CHECK_EQ(sockopt_int(s, IPPROTO_TCP, TCP_USER_TIMEOUT), 2500, "TCP_USER_TIMEOUT");
	/* the kernel doubles it; attach would have raised it to carry 1 MiB messages */
	CHECK_EQ(sockopt_int(s, SOL_SOCKET, SO_RCVBUF), 65536, "SO_RCVBUF kept");
	len = sizeof(tv);
	getsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, &len);
	CHECK_EQ(tv.tv_sec * 1000 + tv.tv_usec / 1000, 1500, "SO_RCVTIMEO ms");
	len = sizeof(l);
	getsockopt(s, SOL_SOCKET, SO_LINGER, &l, &len);
	CHECK_EQ(l.l_onoff * 1000 + l.l_linger, 1000, "SO_LINGER abortive (on, 0 s)");
	/* the transport still carries messages */
	k = kcm_socket(m);
	peer_send(c, 31, 0, 3, 100);
	for (uint32_t i = 0; i < 3; i++)
		expect_msg(k, 31, i, 100, "message on the transport with options");
	kcm_mux_destroy(m);
	close(c);
	close(s);
}

/* ---- inspection (kcm_mux_state, kcm_*_foreach, kcm_mux_counters) ---- */

struct seen {
	unsigned int n, attached, stale, receiving, disabled, bad;
	uint64_t cookie, rx_msgs;
	int port;
};

static int see_transport(const struct kcm_transport_status *t, void *ctx)
{
	struct seen *v = ctx;
	const struct sockaddr_in *r = (const struct sockaddr_in *)&t->remote;

	v->n++;
	v->attached += t->state == KCM_SLOT_ATTACHED;
	v->stale += t->state == KCM_SLOT_STALE;
	v->cookie = t->cookie;
	v->port = t->remote.ss_family == AF_INET ? ntohs(r->sin_port) : -1;
	if (t->pid != getpid() || !t->owner_alive || t->parser != 0)
		v->bad++;
	return 0;
}

static int see_member(const struct kcm_member_status *m, void *ctx)
{
	struct seen *v = ctx;

	v->n++;
	v->receiving += m->state == KCM_SLOT_RECEIVING;
	v->disabled += m->state == KCM_SLOT_RECV_DISABLED;
	v->rx_msgs += m->rx_msgs;
	if (m->pid != getpid())
		v->bad++;
	return 0;
}

static int see_program(const struct kcm_program_status *p, void *ctx)
{
	struct seen *v = ctx;

	v->n++;
	v->bad += !p->ok || !p->prog_id || p->prog_id != p->pinned_prog_id;
	return 0;
}

static int stop_at_first(const struct kcm_program_status *p, void *ctx)
{
	(void)p;
	(*(int *)ctx)++;
	return 7;
}

static uint64_t cookie_of(int fd)
{
	uint64_t v = 0;
	socklen_t len = sizeof(v);

	getsockopt(fd, SOL_SOCKET, 57 /* SO_COOKIE */, &v, &len);
	return v;
}

static int find_name(const char *name, void *ctx)
{
	return !strcmp(name, (const char *)ctx);
}

static void t_inspect(void)
{
	struct kcm_mux_open_opts io = { .sz = sizeof(io), .inspect = true };
	struct kcm_mux_state st = { .sz = sizeof(st) };
	struct kcm_mux_counters ct = { .sz = sizeof(ct) };
	struct sockaddr_in peer;
	socklen_t plen = sizeof(peer);
	struct kcm_mux *m, *o = NULL;
	struct seen v;
	char path[600];
	int k, c = -1, s = -1, calls = 0;

	snprintf(pin_name, sizeof(pin_name), "apitest-%d", getpid());
	m = mux_new(NULL, 4096, pin_name);
	if (!m)
		return;
	k = kcm_socket(m);
	tcp_pair(&c, &s);
	CHECK_OK(kcm_attach(m, s), "attach");
	peer_send(c, 1, 0, 5, 100);
	for (int i = 0; i < 5; i++)
		expect_msg(k, 1, i, 100, "delivered before inspecting");
	CHECK_OK(kcm_recv_disable(k, true, NULL), "recv_disable");

	/* another handle, read only, sees all of it */
	o = kcm_mux_open_opts(pin_name, &io);
	if (!o) {
		FAILF("kcm_mux_open_opts(%s, inspect): %s", pin_name, strerror(errno));
		goto out;
	}
	CHECK_OK(kcm_mux_state(o, &st), "kcm_mux_state");
	CHECK_EQ(st.health, KCM_MUX_OK, "health (%s)", kcm_mux_health_name(st.health));
	CHECK_EQ(strcmp(st.framing, "u32be+4@0"), 0, "framing '%s'", st.framing);
	CHECK_EQ(st.max_msg, 4096, "max_msg");
	CHECK_EQ(st.stale, 0, "stale entries");
	CHECK_EQ(st.bad_programs, 0, "programs not as pinned");
	memset(&v, 0, sizeof(v));
	CHECK_OK(kcm_transport_foreach(o, see_transport, &v), "kcm_transport_foreach");
	getsockname(c, (struct sockaddr *)&peer, &plen);
	CHECK_EQ(v.n, 1, "transports");
	CHECK_EQ(v.attached, 1, "attached transports");
	CHECK_EQ(v.cookie, cookie_of(s), "the transport's cookie");
	CHECK_EQ(v.port, ntohs(peer.sin_port), "the transport's remote port");
	CHECK_EQ(v.bad, 0, "transports with a wrong owner, pid or parser");
	memset(&v, 0, sizeof(v));
	CHECK_OK(kcm_member_foreach(o, see_member, &v), "kcm_member_foreach");
	CHECK_EQ(v.n, 1, "KCM sockets (the hold queue is not one)");
	CHECK_EQ(v.disabled, 1, "recv-disabled KCM sockets");
	CHECK_EQ(v.rx_msgs, 5, "messages delivered to it");
	memset(&v, 0, sizeof(v));
	CHECK_OK(kcm_program_foreach(o, see_program, &v), "kcm_program_foreach");
	CHECK_EQ(v.n, 3, "program places (parser, verdict, requeue)");
	CHECK_EQ(v.bad, 0, "programs not as pinned");
	CHECK_EQ(kcm_program_foreach(o, stop_at_first, &calls), 7, "foreach returns fn's value");
	CHECK_EQ(calls, 1, "foreach stops at fn's first non-zero return");
	CHECK_OK(kcm_mux_counters(o, &ct), "kcm_mux_counters");
	CHECK_EQ(ct.rx_msgs, 5, "rx_msgs");
	CHECK_EQ(ct.rx_bytes, 5 * 104, "rx_bytes");
	CHECK_EQ(kcm_mux_list(find_name, pin_name), 1, "kcm_mux_list finds the mux");
	/* read only */
	CHECK_ERR(kcm_socket(o), EROFS, "kcm_socket on an inspect handle");
	CHECK_ERR(kcm_mux_prune(o), EROFS, "kcm_mux_prune on an inspect handle");
	CHECK_EQ(strcmp(kcm_slot_state_name(KCM_SLOT_RECV_DISABLED), "recv-disabled"), 0,
		 "slot state name");

	/* the transport closes without an unattach (the mux's handle, and with it the
	 * library's copies, closed first): its record is stale */
	kcm_mux_close(m);
	m = NULL;
	close(s);
	s = -1;
	for (int i = 0; i < 100; i++) {
		if (!kcm_mux_state(o, &st) && st.stale)
			break;
		usleep(10 * 1000);
	}
	CHECK_OK(kcm_mux_state(o, &st), "kcm_mux_state after close");
	CHECK_EQ(st.stale, 1, "stale entries after the transport closed");
	memset(&v, 0, sizeof(v));
	kcm_transport_foreach(o, see_transport, &v);
	CHECK_EQ(v.stale, 1, "stale transports (of %u, %u attached)", v.n, v.attached);
	kcm_mux_close(o);

	/* a pin missing: incomplete, named; a plain open refuses it */
	snprintf(path, sizeof(path), "%s/%s/steer", kcm_pin_root(), pin_name);
	CHECK_OK(unlink(path), "remove %s", path);
	o = kcm_mux_open_opts(pin_name, &io);
	if (!o) {
		FAILF("inspect an incomplete mux: %s", strerror(errno));
		goto out;
	}
	CHECK_OK(kcm_mux_state(o, &st), "kcm_mux_state of an incomplete mux");
	CHECK_EQ(st.health, KCM_MUX_INCOMPLETE, "health (%s)", kcm_mux_health_name(st.health));
	CHECK_EQ(strcmp(st.missing, "steer"), 0, "missing '%s'", st.missing);
	kcm_mux_close(o);
	o = NULL;
	CHECK_EQ(kcm_mux_open(pin_name) == NULL, true, "kcm_mux_open of an incomplete mux fails");
	CHECK_ERR(kcm_mux_open_opts("no-such-mux-here", &io) ? 0 : -1, ENOENT,
		  "inspect a mux that does not exist");
out:
	kcm_mux_close(o);
	if (c >= 0)
		close(c);
	if (s >= 0)
		close(s);
	kcm_mux_destroy(m);
	kcm_mux_unpin(pin_name);
}

/* ---- kcm_set_print ---- */

static int printed[3];

static int count_print(enum kcm_print_level level, const char *fmt, va_list ap)
{
	(void)fmt;
	(void)ap;
	if (level <= KCM_PRINT_DEBUG)
		printed[level]++;
	return 0;
}

static int print_stderr(enum kcm_print_level level, const char *fmt, va_list ap)
{
	return level == KCM_PRINT_DEBUG ? 0 : vfprintf(stderr, fmt, ap);
}

/* A mux whose parser object is not ELF: libbpf says so, through whatever print is set. */
static void load_garbage(const char *path)
{
	struct kcm_mux *m = kcm_mux_create(&(struct kcm_mux_opts){
		.sz = sizeof(struct kcm_mux_opts), .parser = path });

	if (m)
		FAILF("kcm_mux_create with a parser that is not ELF succeeded");
	kcm_mux_destroy(m);
}

static void t_set_print(void)
{
	char path[] = "/tmp/api_check_garbage_XXXXXX";
	kcm_print_fn old;
	int fd = mkstemp(path);

	if (fd < 0 || write(fd, "not an ELF object\n", 18) != 18) {
		FAILF("temporary file: %s", strerror(errno));
		return;
	}
	close(fd);
	memset(printed, 0, sizeof(printed));
	kcm_set_print(count_print);
	load_garbage(path);
	CHECK_EQ(printed[KCM_PRINT_WARN] + printed[KCM_PRINT_INFO] + printed[KCM_PRINT_DEBUG] > 0,
		 true, "libbpf's messages reach the function set (warn %d info %d debug %d)",
		 printed[KCM_PRINT_WARN], printed[KCM_PRINT_INFO], printed[KCM_PRINT_DEBUG]);
	old = kcm_set_print(NULL);
	CHECK_EQ(old == count_print, true, "kcm_set_print returns the function set before");
	memset(printed, 0, sizeof(printed));
	load_garbage(path);
	CHECK_EQ(printed[KCM_PRINT_WARN] + printed[KCM_PRINT_INFO] + printed[KCM_PRINT_DEBUG], 0,
		 "nothing printed after kcm_set_print(NULL)");
	kcm_set_print(print_stderr); /* as libbpf's default, for the subtests after this */
	unlink(path);
}

static const struct harness_test tests[] = {
	{ "attach_udp_eopnotsupp", t_attach_udp },
	{ "attach_unix_eopnotsupp", t_attach_unix },
	{ "attach_listening_eopnotsupp", t_attach_listening },
	{ "attach_unconnected_eopnotsupp", t_attach_unconnected },
	{ "attach_twice_ealready", t_attach_twice },
	{ "attach_second_mux_ealready", t_attach_second_mux },
	{ "unattach_never_attached_enoent", t_unattach_never },
	{ "unattach_twice_enoent", t_unattach_twice },
	{ "reattach_after_unattach", t_reattach },
	{ "queued_before_attach", t_queued_before_attach },
	{ "clone_same_mux_round_robin", t_clone },
	{ "clone_not_kcm_ebadf", t_clone_ebadf },
	{ "kcm_close_leaves_group", t_kcm_close },
	{ "plain_close_leaves_group", t_plain_close },
	{ "plain_close_fd_reuse", t_plain_close_fd_reuse },
	{ "poll_readable", t_poll },
	{ "epoll_readable", t_epoll },
	{ "recv_nonblock_eagain", t_recv_eagain },
	{ "recv_truncation", t_truncation },
	{ "recvmmsg_batch", t_recvmmsg },
	{ "recvmmsg_truncates_each", t_recvmmsg_trunc },
	{ "sendmmsg_batch", t_sendmmsg },
	{ "recv_disable_moves_queued", t_recv_disable_moves },
	{ "recv_disable_keeps_without_others", t_recv_disable_keeps },
	{ "recv_disable_off_receives_again", t_recv_enable },
	{ "recv_disable_with_blocked_reader", t_recv_disable_blocked_reader },
	{ "send_emsgsize", t_send_emsgsize },
	{ "send_msg_more_composes", t_send_msg_more },
	{ "send_enotconn", t_send_enotconn },
	{ "send_nonblock_eagain_whole", t_send_nonblock },
	{ "pinned_mux", t_pinned },
	{ "transport_options", t_transport_options },
	{ "parser_api", t_parser_api },
	{ "parser_recv", t_parser_recv },
	{ "inspect_mux", t_inspect },
	{ "set_print", t_set_print },
};

int main(int argc, char **argv)
{
	signal(SIGPIPE, SIG_IGN);
	return harness_main("api_check", tests, sizeof(tests) / sizeof(tests[0]), 60, argc, argv);
}
