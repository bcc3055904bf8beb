// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * monitor_check: libkcm's kcm_monitor_open/poll/close as an application uses them, on
 * real loopback TCP. Needs root and cgroup v2.
 *
 *   monitor_check [-l] [NAME...]   run all subtests, or those whose name contains NAME
 */
#include <signal.h>
#include <sys/wait.h>
#include <stdbool.h>
#include <sys/socket.h>

#include "kcm.h"
#include "progs.h"
#include "harness.h"

#define TIMEOUT_MS 5000

static uint64_t cookie_of(int fd)
{
	uint64_t v = 0;
	socklen_t len = sizeof(v);

	getsockopt(fd, SOL_SOCKET, 57 /* SO_COOKIE */, &v, &len);
	return v;
}

static uint16_t port_of(const struct sockaddr_storage *ss)
{
	return ss->ss_family == AF_INET ? ntohs(((const struct sockaddr_in *)ss)->sin_port) : 0;
}

struct seen {
	uint64_t cookie;		/* the transport watched */
	unsigned int armed, arm_failed, deaths, other;
	int death_err;
	uint16_t death_remote_port;
	uint32_t death_old_state;
	int stop_with;			/* returned from the callback when non-zero */
	unsigned int calls;
};

static int on_event(const struct kcm_monitor_event *e, void *ctx)
{
	struct seen *v = ctx;

	v->calls++;
	if (e->sz < sizeof(*e) || e->cookie != v->cookie) {
		v->other++;
	} else if (e->type == KCM_MON_ARMED) {
		v->armed++;
	} else if (e->type == KCM_MON_ARM_FAILED) {
		v->arm_failed++;
	} else if (e->type == KCM_MON_STATE && e->state == 7 /* TCP_CLOSE */) {
		v->deaths++;
		v->death_err = e->err;
		v->death_remote_port = port_of(&e->remote);
		v->death_old_state = e->old_state;
	} else {
		v->other++;
	}
	return v->stop_with;
}

/* A transport is armed by the first poll (where the kernel can arm), a peer's RST comes
 * back as its death with ECONNRESET and the peer's port, and close leaves nothing. */
static void t_events(void)
{
	struct kcm_mux_opts mo = { .sz = sizeof(mo), .framing = KCM_FRAMING_THRIFT };
	struct kcm_monitor_opts o = { .sz = sizeof(o), .state = true };
	struct kcm_monitor_info info = { .sz = sizeof(info) };
	struct linger lg = { .l_onoff = 1, .l_linger = 0 };
	struct sockaddr_in peer;
	socklen_t plen = sizeof(peer);
	struct kcm_monitor *m = NULL;
	struct kcm_mux *mux;
	struct seen v = { 0 };
	uint8_t buf[256];
	uint64_t end;
	int k, c = -1, s = -1, n;

	mux = kcm_mux_create(&mo);
	if (!mux) {
		FAILF("kcm_mux_create: %s", strerror(errno));
		return;
	}
	k = kcm_socket(mux);
	tcp_pair(&c, &s);
	CHECK_OK(kcm_attach(mux, s), "attach");
	v.cookie = cookie_of(s);
	o.trace = getenv("KCM_MONITOR_TRACE") != NULL; /* as monitor.bats */
	m = kcm_monitor_open(mux, &o);
	if (!m) {
		FAILF("kcm_monitor_open: %s (%s)", strerror(errno), kcm_last_error());
		goto out;
	}
	CHECK_OK(kcm_monitor_info(m, &info), "kcm_monitor_info");
	n = kcm_monitor_poll(m, 0, on_event, &v);
	CHECK_EQ(n, info.traced ? 0 : 1, "events from the first poll (the arming)");
	CHECK_EQ(v.armed, info.traced ? 0 : 1, "KCM_MON_ARMED for the transport");
	CHECK_EQ(v.arm_failed, 0, "KCM_MON_ARM_FAILED");
	CHECK_OK(kcm_monitor_info(m, &info), "kcm_monitor_info");
	CHECK_EQ(info.armed, info.traced ? 0 : 1, "transports armed");
	CHECK_EQ(kcm_monitor_fd(m) >= 0, 1, "kcm_monitor_fd");

	/* traffic flows as before */
	n = msg_build(buf, 1, 0, 100);
	CHECK_OK(write_all(c, buf, n), "peer write");
	CHECK_EQ(krecv_to(k, buf, sizeof(buf), TIMEOUT_MS), n, "a message while monitored");

	/* the peer resets: the transport dies with ECONNRESET */
	getsockname(c, (struct sockaddr *)&peer, &plen);
	setsockopt(c, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	close(c);
	c = -1;
	end = now_ns() + TIMEOUT_MS * 1000000ULL;
	while (!v.deaths && now_ns() < end)
		if (kcm_monitor_poll(m, 100, on_event, &v) < 0)
			break;
	CHECK_EQ(v.deaths, 1, "the transport's death");
	CHECK_EQ(v.death_err, ECONNRESET, "its error");
	CHECK_EQ(v.death_old_state, 1 /* TCP_ESTABLISHED */, "the state it left");
	CHECK_EQ(v.death_remote_port, ntohs(peer.sin_port), "its remote port");
	CHECK_OK(kcm_monitor_info(m, &info), "kcm_monitor_info");
	CHECK_EQ(info.events, v.calls, "events counted");
out:
	kcm_monitor_close(m);
	/* one monitor per mux: a second one opens once the first is gone */
	m = kcm_monitor_open(mux, &o);
	CHECK_EQ(m != NULL, 1, "a monitor after close (%s)", m ? "" : kcm_last_error());
	kcm_monitor_close(m);
	kcm_mux_destroy(mux);
	if (c >= 0)
		close(c);
	if (s >= 0)
		close(s);
}

/* A callback's non-zero return stops the poll and comes back from it. */
static void t_stop(void)
{
	struct kcm_mux_opts mo = { .sz = sizeof(mo), .framing = KCM_FRAMING_THRIFT };
	struct kcm_monitor_opts o = { .sz = sizeof(o), .state = true };
	struct kcm_monitor *m;
	struct kcm_mux *mux;
	struct seen v = { .stop_with = 42 };
	int c = -1, s = -1, n = 0;
	uint64_t end;

	mux = kcm_mux_create(&mo);
	if (!mux) {
		FAILF("kcm_mux_create: %s", strerror(errno));
		return;
	}
	m = kcm_monitor_open(mux, &o);
	if (!m) {
		FAILF("kcm_monitor_open: %s (%s)", strerror(errno), kcm_last_error());
		goto out;
	}
	/* two transports, both closed: at least two events wait, the first stops the poll */
	for (int i = 0; i < 2; i++) {
		tcp_pair(&c, &s);
		CHECK_OK(kcm_attach(mux, s), "attach");
		kcm_monitor_poll(m, 0, on_event, &v); /* arms it */
		close(c);
		close(s);
	}
	v.calls = 0;
	end = now_ns() + TIMEOUT_MS * 1000000ULL;
	while (!v.calls && now_ns() < end)
		n = kcm_monitor_poll(m, 100, on_event, &v);
	CHECK_EQ(n, 42, "kcm_monitor_poll returns the callback's value");
	CHECK_EQ(v.calls, 1, "callbacks before the stop");
out:
	kcm_monitor_close(m);
	kcm_mux_destroy(mux);
}

/* Bad options are refused with errno and a message naming the cause. */
static void t_bad_opts(void)
{
	struct kcm_mux_opts mo = { .sz = sizeof(mo), .framing = KCM_FRAMING_THRIFT };
	struct kcm_monitor_opts o = { .sz = sizeof(o) };
	struct kcm_mux *mux = kcm_mux_create(&mo);
	struct kcm_monitor *m;
	pid_t gone;

	if (!mux) {
		FAILF("kcm_mux_create: %s", strerror(errno));
		return;
	}
	CHECK_ERR(kcm_monitor_open(mux, NULL) ? 0 : -1, EINVAL, "NULL options");
	CHECK_EQ(kcm_monitor_poll(NULL, 0, on_event, NULL), -EINVAL, "poll on NULL");
	gone = fork();
	if (!gone)
		_exit(0);
	waitpid(gone, NULL, 0);
	o.arm_pid = gone;
	CHECK_ERR((m = kcm_monitor_open(mux, &o)) ? 0 : -1, ESRCH, "arm_pid of an exited process");
	if (!strstr(kcm_last_error(), "no process"))
		FAILF("the message does not name the process: %s", kcm_last_error());
	kcm_monitor_close(m);
	o.arm_pid = 0;
	o.cgroup = "/nonexistent-cgroup";
	CHECK_ERR((m = kcm_monitor_open(mux, &o)) ? 0 : -1, ENOENT, "a missing cgroup");
	if (!strstr(kcm_last_error(), "/nonexistent-cgroup"))
		FAILF("the message does not name the cgroup: %s", kcm_last_error());
	kcm_monitor_close(m);
	kcm_mux_destroy(mux);
}

static const struct harness_test tests[] = {
	{ "monitor_events", t_events },
	{ "monitor_stop", t_stop },
	{ "monitor_bad_opts", t_bad_opts },
};

int main(int argc, char **argv)
{
	signal(SIGPIPE, SIG_IGN);
	return harness_main("monitor_check", tests, sizeof(tests) / sizeof(tests[0]), 60, argc,
			    argv);
}
