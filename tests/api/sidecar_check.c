// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * sidecar_check: an application without privileges uses a mux through its sidecar
 * (kcm_mux_connect(); `kcm-loader serve NAME --socket $KCM_SIDECAR_SOCKET` runs beside
 * it). Loopback TCP pairs the application makes itself; messages go straight between its
 * sockets, never through the sidecar.
 *
 *   KCM_SIDECAR_SOCKET=PATH sidecar_check [-l] [NAME...]
 */
#include <signal.h>
#include <stdbool.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "kcm.h"
#include "kcm_sidecar.h"
#include "progs.h"
#include "harness.h"

#define TIMEOUT_MS 5000
#define N 200

static uint8_t buf[4096];

static const char *path(void)
{
	const char *p = getenv("KCM_SIDECAR_SOCKET");

	return p ? p : "/run/kcm/sidecar.sock";
}

/* Two KCM sockets, one transport: every message arrives whole, on one of the two,
 * both get some; a message sent leaves whole on the transport. */
static void t_data_path(void)
{
	struct kcm_mux *mux = kcm_mux_connect(path());
	unsigned int got[2] = { 0 }, total = 0;
	int k[2], c, s, n;
	uint32_t conn, seq;

	if (!mux) {
		FAILF("kcm_mux_connect(%s): %s (%s)", path(), strerror(errno), kcm_last_error());
		return;
	}
	CHECK_EQ(geteuid() != 0, 1, "runs without root");
	k[0] = kcm_socket(mux);
	k[1] = kcm_clone(k[0]);
	CHECK_EQ(k[0] >= 0 && k[1] >= 0, 1, "kcm_socket and kcm_clone (%s)", kcm_last_error());
	tcp_pair(&c, &s);
	CHECK_OK(kcm_attach(mux, s), "kcm_attach through the sidecar (%s)", kcm_last_error());
	for (int i = 0; i < N; i++) {
		n = msg_build(buf, 1, i, 100);
		write_all(c, buf, n);
	}
	while (total < N) {
		ssize_t r0 = krecv_to(k[0], buf, sizeof(buf), total ? 200 : TIMEOUT_MS);
		ssize_t r1;

		if (r0 > 0) {
			CHECK_EQ(msg_check(buf, r0, &conn, &seq), 0, "a whole message on k0");
			got[0]++;
		}
		r1 = krecv_to(k[1], buf, sizeof(buf), 50);
		if (r1 > 0) {
			CHECK_EQ(msg_check(buf, r1, &conn, &seq), 0, "a whole message on k1");
			got[1]++;
		}
		total = got[0] + got[1];
		if (r0 <= 0 && r1 <= 0)
			break;
	}
	CHECK_EQ(total, N, "messages received");
	CHECK_EQ(got[0] > 0 && got[1] > 0, 1, "both KCM sockets got some (%u, %u)", got[0],
		 got[1]);
	/* transmit: whole on the transport */
	n = msg_build(buf, 2, 7, 300);
	CHECK_EQ(kcm_send(k[0], buf, n, 0), n, "kcm_send (%s)", kcm_last_error());
	{
		uint8_t in[4096];
		size_t have = 0;
		uint64_t end = now_ns() + TIMEOUT_MS * 1000000ULL;

		while (have < (size_t)n && now_ns() < end) {
			ssize_t r = recv(c, in + have, sizeof(in) - have, MSG_DONTWAIT);

			if (r > 0)
				have += r;
			else
				usleep(1000);
		}
		CHECK_EQ(have, n, "bytes the peer got");
		CHECK_EQ(memcmp(in, buf, n), 0, "the message as sent");
	}
	CHECK_OK(kcm_unattach(mux, s), "kcm_unattach (%s)", kcm_last_error());
	CHECK_ERR(kcm_unattach(mux, s), ENOENT, "unattach twice");
	CHECK_OK(kcm_close(k[1]), "kcm_close");
	kcm_mux_close(mux);
	close(c);
	close(s);
}

/* recv-disable through the sidecar moves what is queued to the other KCM socket. */
static void t_recv_disable(void)
{
	struct kcm_requeue_report rep = { 0 };
	struct kcm_mux *mux = kcm_mux_connect(path());
	int a, b, c, s, n, moved = 0;

	if (!mux) {
		FAILF("kcm_mux_connect: %s", kcm_last_error());
		return;
	}
	a = kcm_socket(mux);
	CHECK_OK(kcm_recv_disable(a, true, NULL), "disable a while it is the only one");
	b = kcm_socket(mux);
	tcp_pair(&c, &s);
	CHECK_OK(kcm_attach(mux, s), "attach");
	CHECK_OK(kcm_recv_disable(b, true, &rep), "disable b (nothing queued)");
	CHECK_OK(kcm_recv_disable(a, false, NULL), "enable a");
	for (int i = 0; i < 10; i++) {
		n = msg_build(buf, 3, i, 50);
		write_all(c, buf, n);
	}
	for (int i = 0; i < 10; i++)
		moved += krecv_to(a, buf, sizeof(buf), TIMEOUT_MS) > 0;
	CHECK_EQ(moved, 10, "messages on the enabled socket");
	CHECK_ERR(kcm_recv_disable(-1, true, NULL), EBADF, "recv_disable of no KCM socket");
	kcm_mux_close(mux);
	close(c);
	close(s);
}

/* A peer's reset is found by kcm_transport_poll(), and the transport unattached through
 * the sidecar (KCM_AUTO_UNATTACH). */
static void t_transport_poll(void)
{
	struct kcm_mux *mux = kcm_mux_connect(path());
	struct linger lg = { .l_onoff = 1, .l_linger = 0 };
	struct kcm_transport_event ev = { 0 };
	struct sockaddr_in peer;
	socklen_t plen = sizeof(peer);
	int k, c, s;

	if (!mux) {
		FAILF("kcm_mux_connect: %s", kcm_last_error());
		return;
	}
	k = kcm_socket(mux);
	tcp_pair(&c, &s);
	CHECK_OK(kcm_attach(mux, s), "attach");
	CHECK_EQ(kcm_transport_poll(mux, &ev, 1, 0, 0), 0, "healthy at first");
	getsockname(c, (struct sockaddr *)&peer, &plen);
	setsockopt(c, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	close(c);
	CHECK_EQ(kcm_transport_poll(mux, &ev, 1, TIMEOUT_MS, KCM_AUTO_UNATTACH), 1,
		 "a failed transport (%s)", kcm_last_error());
	CHECK_EQ(ev.reason, KCM_FAIL_RESET, "reason");
	CHECK_EQ(ev.err, ECONNRESET, "errno");
	CHECK_EQ(ntohs(((struct sockaddr_in *)&ev.remote)->sin_port), ntohs(peer.sin_port),
		 "its remote port");
	CHECK_EQ(ev.unattached, true, "unattached through the sidecar");
	CHECK_ERR(kcm_unattach(mux, s), ENOENT, "unattached already");
	close(k);
	kcm_mux_close(mux);
	close(s);
}

/* What a request to the sidecar costs: recv-disable off and on, timed. */
static void t_cost(void)
{
	struct kcm_mux *mux = kcm_mux_connect(path());
	uint64_t t0, t1;
	int k, n = 500;

	if (!mux) {
		FAILF("kcm_mux_connect: %s", kcm_last_error());
		return;
	}
	k = kcm_socket(mux);
	t0 = now_ns();
	for (int i = 0; i < n; i++)
		CHECK_OK(kcm_recv_disable(k, i & 1, NULL), "recv_disable %d", i);
	t1 = now_ns();
	printf("# %d requests through the sidecar: %.1f us each\n", n,
	       (double)(t1 - t0) / n / 1000);
	kcm_mux_close(mux);
}

/* What the sidecar refuses, each with the errno a local mux would give. */
static void t_refusals(void)
{
	struct kcm_mux *mux = kcm_mux_connect(path());
	int p[2], u;

	if (!mux) {
		FAILF("kcm_mux_connect: %s", kcm_last_error());
		return;
	}
	CHECK_OK(pipe(p), "pipe");
	CHECK_ERR(kcm_attach(mux, p[0]), ENOTSOCK, "attach a pipe (as on a local mux)");
	u = socket(AF_INET, SOCK_DGRAM, 0);
	CHECK_ERR(kcm_attach(mux, u), EOPNOTSUPP, "attach a UDP socket");
	close(u);
	close(p[0]);
	close(p[1]);
	kcm_mux_close(mux);
}

/* Raw requests a broken client might send: each answered with an errno, and the
 * sidecar goes on serving. */
static void t_garbage(void)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	struct kcm_sc_hdr h = { .magic = KCM_SC_MAGIC, .version = KCM_SC_VERSION,
				.op = KCM_SC_CLOSE, .len = 3 };
	char big[KCM_SC_MAX_MSG * 2] = { 0 }, rep[KCM_SC_MAX_MSG];
	struct kcm_sc_hdr *r = (struct kcm_sc_hdr *)rep;
	struct kcm_mux *mux;
	int fd;

	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", path());
	fd = socket(AF_UNIX, SOCK_SEQPACKET, 0);
	CHECK_OK(connect(fd, (struct sockaddr *)&sun, sizeof(sun)), "connect");
	/* a payload of the wrong size */
	memcpy(big, &h, sizeof(h));
	send(fd, big, sizeof(h) + 3, 0);
	CHECK_EQ(recv(fd, rep, sizeof(rep), 0) >= (ssize_t)sizeof(*r), 1, "a reply");
	CHECK_EQ(r->err, EBADMSG, "wrong payload size");
	/* an unknown request */
	h.op = 99;
	h.len = 0;
	send(fd, &h, sizeof(h), 0);
	recv(fd, rep, sizeof(rep), 0);
	CHECK_EQ(r->err, EOPNOTSUPP, "unknown request");
	/* oversized */
	h.op = KCM_SC_HELLO;
	memcpy(big, &h, sizeof(h));
	send(fd, big, sizeof(big), 0);
	recv(fd, rep, sizeof(rep), 0);
	CHECK_EQ(r->err, EMSGSIZE, "oversized request");
	/* attach without a descriptor, and with a pipe */
	{
		struct kcm_sc_attach a = { 0 };
		char cbuf[CMSG_SPACE(sizeof(int))] = { 0 };
		struct iovec iov[2] = { { &h, sizeof(h) }, { &a, sizeof(a) } };
		struct msghdr msg = { .msg_iov = iov, .msg_iovlen = 2 };
		struct cmsghdr *cm;
		int p[2];

		h.op = KCM_SC_ATTACH;
		h.len = sizeof(a);
		sendmsg(fd, &msg, 0);
		recv(fd, rep, sizeof(rep), 0);
		CHECK_EQ(r->err, EBADF, "attach without a descriptor");
		CHECK_OK(pipe(p), "pipe");
		msg.msg_control = cbuf;
		msg.msg_controllen = sizeof(cbuf);
		cm = CMSG_FIRSTHDR(&msg);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(cm), &p[0], sizeof(int));
		sendmsg(fd, &msg, 0);
		recv(fd, rep, sizeof(rep), 0);
		CHECK_EQ(r->err, ENOTSOCK, "attach a pipe");
		close(p[0]);
		close(p[1]);
	}
	/* not the protocol at all: answered, then dropped */
	send(fd, "GET / HTTP/1.0\r\n\r\n", 18, 0);
	recv(fd, rep, sizeof(rep), 0);
	CHECK_EQ(r->err, EPROTO, "not a sidecar request");
	CHECK_EQ(recv(fd, rep, sizeof(rep), 0), 0, "dropped after that");
	close(fd);
	/* and others are still served */
	mux = kcm_mux_connect(path());
	CHECK_EQ(mux != NULL, 1, "connect after the garbage (%s)", kcm_last_error());
	kcm_mux_close(mux);
}

/* A client that dies holding KCM sockets and a transport: the sidecar drops them. Run
 * as a child that exits without closing; the caller checks `kcm-loader status`. */
static void t_die(void)
{
	struct kcm_mux *mux = kcm_mux_connect(path());
	int c, s;

	if (!mux) {
		FAILF("kcm_mux_connect: %s", kcm_last_error());
		return;
	}
	kcm_socket(mux);
	kcm_socket(mux);
	tcp_pair(&c, &s);
	CHECK_OK(kcm_attach(mux, s), "attach");
	printf("dying with 2 KCM sockets and 1 transport\n");
	fflush(stdout);
	_exit(0);
}

static const struct harness_test tests[] = {
	{ "sidecar_data_path", t_data_path },
	{ "sidecar_recv_disable", t_recv_disable },
	{ "sidecar_transport_poll", t_transport_poll },
	{ "sidecar_refusals", t_refusals },
	{ "sidecar_garbage", t_garbage },
	{ "sidecar_cost", t_cost },
	{ "sidecar_die", t_die },
};

int main(int argc, char **argv)
{
	signal(SIGPIPE, SIG_IGN);
	return harness_main("sidecar_check", tests, sizeof(tests) / sizeof(tests[0]), 60, argc,
			    argv);
}
