// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * kcm-loader connect: keep N TCP connections to one destination attached to a mux.
 * Connects are non-blocking and bounded by --connect-timeout; a slot whose connect fails
 * or whose transport dies is tried again with exponential backoff and jitter. Between
 * attempts the process sleeps in poll(): on its signalfd, its connecting sockets and its
 * own fd of every attached transport.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "kcm.h"
#include "json.h"
#include "loader.h"
#include "pins.h"
#include "transport_args.h"

#ifndef SO_COOKIE
#define SO_COOKIE 57
#endif

#define MAX_COUNT 1024
#define MAX_ADDRS 16
/* A transport that lived this long was healthy: replace it at once, without backoff. */
#define STABLE_MS 1000
/* How often a transport still delivering what came before the peer's FIN is checked again. */
#define DRAIN_CHECK_MS 100
/* How often every attached transport is checked without a poll event (an unattach by
 * another process, a failure the library saw first). */
#define SWEEP_MS 1000

enum slot_state { IDLE, CONNECTING, UP };

struct slot {
	enum slot_state state;
	int fd;			/* connecting socket, or this process's fd of the transport */
	uint64_t due_ms;	/* IDLE: next attempt; CONNECTING: connect timeout */
	uint64_t up_ms;		/* when it came up */
	unsigned int failures;	/* consecutive failed attempts (the backoff exponent) */
	unsigned int attempts;	/* connects started, for the events */
	unsigned int addr;	/* index of the address it tries */
	bool draining;		/* the peer sent FIN; the transport still delivers */
	uint64_t cookie;
	char local[64], remote[64];
};

struct pool {
	const char *name;
	struct kcm_mux *mux;
	struct kcm_transport_opts topts;
	struct sockaddr_storage addr[MAX_ADDRS];
	socklen_t addrlen[MAX_ADDRS];
	char addrname[MAX_ADDRS][64];
	unsigned int naddr;
	unsigned int count, up;
	unsigned int connect_timeout_ms, backoff_min_ms, backoff_max_ms;
	const char *ready_file;
	bool ready;
	struct slot *slots;
	unsigned int seed;
};

static uint64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static uint64_t wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void fmt_sockaddr(const struct sockaddr_storage *ss, socklen_t len, char *buf, size_t n)
{
	char host[64], port[8];

	if (!len || getnameinfo((const struct sockaddr *)ss, len, host, sizeof(host), port,
				sizeof(port), NI_NUMERICHOST | NI_NUMERICSERV)) {
		snprintf(buf, n, "?");
		return;
	}
	snprintf(buf, n, ss->ss_family == AF_INET6 ? "[%s]:%s" : "%s:%s", host, port);
}

static void fmt_sockname(int fd, bool peer, char *buf, size_t n)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);

	if ((peer ? getpeername : getsockname)(fd, (struct sockaddr *)&ss, &len))
		len = 0;
	fmt_sockaddr(&ss, len, buf, n);
}

/* "HOST:PORT" or "[V6]:PORT" resolved into p->addr: 0, -EINVAL (malformed) or -ENOENT. */
static int resolve(struct pool *p, const char *spec)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV };
	struct addrinfo *res, *ai;
	const char *colon = strrchr(spec, ':');
	char host[256];
	size_t hl;
	uint64_t port;
	int err;

	if (!colon || colon == spec || parse_u64(colon + 1, 1, 65535, &port))
		return -EINVAL;
	hl = colon - spec;
	if (spec[0] == '[') {
		if (hl < 3 || spec[hl - 1] != ']')
			return -EINVAL;
		spec++;
		hl -= 2;
	} else if (memchr(spec, ':', hl)) {
		return -EINVAL; /* an IPv6 address needs brackets: [::1]:7000 */
	}
	if (hl >= sizeof(host))
		return -EINVAL;
	memcpy(host, spec, hl);
	host[hl] = '\0';
	err = getaddrinfo(host, colon + 1, &hints, &res);
	if (err) {
		fail("failed to resolve '%s': %s", host, gai_strerror(err));
		return -ENOENT;
	}
	for (ai = res; ai && p->naddr < MAX_ADDRS; ai = ai->ai_next) {
		if (ai->ai_family != AF_INET && ai->ai_family != AF_INET6)
			continue;
		memcpy(&p->addr[p->naddr], ai->ai_addr, ai->ai_addrlen);
		p->addrlen[p->naddr] = ai->ai_addrlen;
		fmt_sockaddr(&p->addr[p->naddr], ai->ai_addrlen, p->addrname[p->naddr],
			     sizeof(p->addrname[0]));
		p->naddr++;
	}
	freeaddrinfo(res);
	if (!p->naddr) {
		fail("failed to resolve '%s': no IPv4 or IPv6 address", host);
		return -ENOENT;
	}
	return 0;
}

/* backoff_min doubling per consecutive failure up to backoff_max, then +-25% jitter so
 * that slots failing together do not retry in lockstep; never above backoff_max. */
static unsigned int backoff_ms(struct pool *p, unsigned int failures)
{
	uint64_t base = p->backoff_min_ms, d;

	for (unsigned int i = 1; i < failures && base < p->backoff_max_ms; i++)
		base *= 2;
	if (base > p->backoff_max_ms)
		base = p->backoff_max_ms;
	d = base * 3 / 4 + (uint64_t)rand_r(&p->seed) % (base / 2 + 1);
	return d < p->backoff_max_ms ? d : p->backoff_max_ms;
}

static void event_start(const char *event, unsigned int idx)
{
	json_start_object(NULL);
	json_string("event", event);
	json_uint("time_ms", wall_ms());
	json_uint("slot", idx);
}

static void event_end(struct pool *p)
{
	json_uint("up", p->up);
	json_uint("count", p->count);
	json_end_object();
	json_done();
}

static int signal_ready(struct pool *p)
{
	int fd;

	p->ready = true;
	if (env.json) {
		json_start_object(NULL);
		json_string("event", "ready");
		json_uint("time_ms", wall_ms());
		json_uint("up", p->up);
		json_uint("count", p->count);
		json_end_object();
		json_done();
	} else {
		printf("all %u connections to %s up\n", p->count, p->addrname[0]);
		fflush(stdout);
	}
	if (!p->ready_file)
		return 0;
	fd = open(p->ready_file, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) {
		fail("failed to create ready file %s: %s", p->ready_file, strerror(errno));
		return -errno;
	}
	dprintf(fd, "%d\n", getpid());
	close(fd);
	return 0;
}

/* A connect that failed (or an attach refused for a transient reason): try again later. */
static void connect_failed(struct pool *p, unsigned int idx, int err, const char *stage)
{
	struct slot *s = &p->slots[idx];
	unsigned int delay;

	if (s->fd >= 0)
		close(s->fd);
	s->fd = -1;
	s->state = IDLE;
	s->failures++;
	delay = backoff_ms(p, s->failures);
	s->due_ms = mono_ms() + delay;
	if (env.json) {
		event_start("connect_failed", idx);
		json_string("remote", p->addrname[s->addr]);
		json_string("stage", stage);
		json_uint("attempt", s->attempts);
		json_int("err", err);
		json_string("error", strerror(err));
		json_uint("retry_ms", delay);
		event_end(p);
	} else {
		printf("connect to %s failed: %s%s; retry in %u ms (slot %u, attempt %u)\n",
		       p->addrname[s->addr], strcmp(stage, "attach") ? "" : "attach: ",
		       strerror(err), delay, idx, s->attempts);
		fflush(stdout);
	}
	/* the next address of the name, if it has more than one */
	s->addr = (s->addr + 1) % p->naddr;
}

/* Errors of kcm_attach_opts() that a new connection may not meet: the peer went away
 * between connect and attach, or the mux is full for now. Anything else is fatal. */
static bool attach_err_transient(int err)
{
	return err == EOPNOTSUPP || err == ENOTCONN || err == ECONNRESET || err == EPIPE ||
	       err == ENOSPC || err == ENOMEM || err == EBUSY || err == EAGAIN;
}

/* The connect of slot @idx completed: attach it. 0, or a fatal exit code. */
static int connect_done(struct pool *p, unsigned int idx)
{
	struct slot *s = &p->slots[idx];
	socklen_t len = sizeof(int);
	int err = 0, flags;

	if (getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &len))
		err = errno;
	if (err) {
		connect_failed(p, idx, err, "connect");
		return 0;
	}
	/* the library's dup and the copies senders import share the file: make it blocking,
	 * like the connection of any application */
	flags = fcntl(s->fd, F_GETFL);
	if (flags >= 0)
		fcntl(s->fd, F_SETFL, flags & ~O_NONBLOCK);
	if (kcm_attach_opts(p->mux, s->fd, &p->topts)) {
		err = errno;
		if (!attach_err_transient(err)) {
			char what[160];

			snprintf(what, sizeof(what), "failed to attach a connection to %s to mux '%s'",
				 p->addrname[s->addr], p->name);
			return fail_lib(what, err);
		}
		connect_failed(p, idx, err, "attach");
		return 0;
	}
	len = sizeof(s->cookie);
	s->cookie = 0;
	getsockopt(s->fd, SOL_SOCKET, SO_COOKIE, &s->cookie, &len);
	fmt_sockname(s->fd, false, s->local, sizeof(s->local));
	fmt_sockname(s->fd, true, s->remote, sizeof(s->remote));
	s->state = UP;
	s->draining = false;
	s->up_ms = mono_ms();
	p->up++;
	if (env.json) {
		event_start("connected", idx);
		json_string("remote", s->remote);
		json_string("local", s->local);
		json_uint("cookie", s->cookie);
		json_uint("attempt", s->attempts);
		event_end(p);
	} else {
		printf("connected %s from %s slot %u cookie %llu (%u/%u up)\n", s->remote,
		       s->local, idx, (unsigned long long)s->cookie, p->up, p->count);
		fflush(stdout);
	}
	if (!p->ready && p->up == p->count && signal_ready(p))
		return EXIT_FAIL;
	return 0;
}

/* Start a non-blocking connect on slot @idx. 0, or a fatal exit code. */
static int connect_start(struct pool *p, unsigned int idx)
{
	struct slot *s = &p->slots[idx];
	const struct sockaddr_storage *a = &p->addr[s->addr];

	s->attempts++;
	s->fd = socket(a->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (s->fd < 0) {
		connect_failed(p, idx, errno, "socket");
		return 0;
	}
	s->state = CONNECTING;
	s->due_ms = mono_ms() + p->connect_timeout_ms;
	if (!connect(s->fd, (const struct sockaddr *)a, p->addrlen[s->addr]))
		return connect_done(p, idx);
	if (errno != EINPROGRESS)
		connect_failed(p, idx, errno, "connect");
	return 0;
}

/* Slot @idx lost its transport (@ev from kcm_transport_check, or @err when the check
 * itself failed): log it, and schedule the replacement. */
static void transport_lost(struct pool *p, unsigned int idx, const struct kcm_transport_event *ev,
			   int err)
{
	struct slot *s = &p->slots[idx];
	uint64_t now = mono_ms(), uptime = now - s->up_ms;
	const char *reason = ev ? kcm_fail_reason_name(ev->reason) : "unattached";
	unsigned int delay;

	if (ev)
		err = ev->err;
	close(s->fd);
	s->fd = -1;
	s->state = IDLE;
	p->up--;
	/* a connection that failed right after it came up counts as a failed attempt: a peer
	 * that accepts and closes at once must not make us reconnect in a loop */
	if (uptime >= STABLE_MS) {
		s->failures = 0;
		delay = 0;
	} else {
		s->failures++;
		delay = backoff_ms(p, s->failures);
	}
	s->due_ms = now + delay;
	if (env.json) {
		event_start("failed", idx);
		json_string("remote", s->remote);
		json_string("local", s->local);
		json_uint("cookie", s->cookie);
		json_string("reason", reason);
		json_int("err", err);
		json_string("error", err ? strerror(err) : "");
		json_uint("lost_msgs", ev ? ev->lost_msgs : 0);
		json_uint("lost_bytes", ev ? ev->lost_bytes : 0);
		json_uint("uptime_ms", uptime);
		json_uint("retry_ms", delay);
		event_end(p);
	} else {
		unsigned long long lost = ev ? ev->lost_msgs : 0;

		printf("lost cookie %llu (%s slot %u): %s", (unsigned long long)s->cookie,
		       s->remote, idx, reason);
		if (err)
			printf(" (%s)", strerror(err));
		printf(", %llu message%s lost; reconnect in %u ms (%u/%u up)\n", lost,
		       lost == 1 ? "" : "s", delay, p->up, p->count);
		fflush(stdout);
	}
}

/* Ask the library about the transport of slot @idx; replace it when it failed. */
static int transport_check(struct pool *p, unsigned int idx)
{
	struct slot *s = &p->slots[idx];
	struct kcm_transport_event ev;
	int r;

	memset(&ev, 0, sizeof(ev));
	r = kcm_transport_check(p->mux, s->fd, &ev, KCM_AUTO_UNATTACH);
	if (r > 0) {
		transport_lost(p, idx, &ev, 0);
	} else if (r < 0) {
		int err = errno;

		if (err != ENOENT) {
			char what[160];

			snprintf(what, sizeof(what), "failed to check transport (cookie %llu) of "
				 "mux '%s'", (unsigned long long)s->cookie, p->name);
			return fail_lib(what, err);
		}
		/* unattached by someone else: a connection the mux no longer uses */
		shutdown(s->fd, SHUT_RDWR);
		transport_lost(p, idx, NULL, 0);
	}
	return 0;
}

/* SIGINT/SIGTERM: unattach and close everything. Returns how many were attached. */
static unsigned int pool_stop(struct pool *p)
{
	unsigned int n = 0;

	for (unsigned int i = 0; i < p->count; i++) {
		struct slot *s = &p->slots[i];

		if (s->state == UP) {
			if (kcm_unattach(p->mux, s->fd) && errno != ENOENT)
				fprintf(stderr, "kcm-loader: failed to unattach transport (cookie %llu) "
					"from mux '%s': %s\n", (unsigned long long)s->cookie,
					p->name, strerror(errno));
			n++;
		}
		if (s->fd >= 0)
			close(s->fd);
		s->fd = -1;
		s->state = IDLE;
	}
	p->up = 0;
	return n;
}

static int pool_run(struct pool *p, int sig_fd)
{
	struct pollfd *pfd = calloc(p->count + 1, sizeof(*pfd));
	unsigned int *which = calloc(p->count + 1, sizeof(*which));
	uint64_t next_sweep = mono_ms() + SWEEP_MS;
	int ret = EXIT_FAIL;

	if (!pfd || !which) {
		fail("failed to allocate poll set for %u connections", p->count);
		goto out;
	}
	for (;;) {
		uint64_t now = mono_ms(), due = next_sweep;
		unsigned int n = 1;
		int timeout, r;

		for (unsigned int i = 0; i < p->count; i++) {
			struct slot *s = &p->slots[i];

			if (s->state == IDLE && s->due_ms <= now) {
				ret = connect_start(p, i);
				if (ret)
					goto out;
			}
			if (s->state == IDLE || s->state == CONNECTING) {
				if (s->due_ms < due)
					due = s->due_ms;
			} else if (s->draining && now + DRAIN_CHECK_MS < due) {
				due = now + DRAIN_CHECK_MS;
			}
			if (s->state == IDLE)
				continue;
			which[n] = i;
			/* a draining transport keeps raising POLLRDHUP: wait only for POLLERR and
			 * POLLHUP on it, and look at it again every DRAIN_CHECK_MS */
			pfd[n++] = (struct pollfd){ s->fd, s->state == CONNECTING ? POLLOUT :
						    s->draining ? 0 : POLLRDHUP, 0 };
		}
		pfd[0] = (struct pollfd){ sig_fd, POLLIN, 0 };
		timeout = due > now ? (int)(due - now) : 0;
		r = poll(pfd, n, timeout);
		if (r < 0 && errno != EINTR) {
			ret = fail("failed to poll: %s", strerror(errno));
			goto out;
		}
		if (r > 0 && pfd[0].revents) {
			struct signalfd_siginfo si;

			if (read(sig_fd, &si, sizeof(si)) < 0)
				si.ssi_signo = SIGTERM;
			ret = EXIT_OK;
			goto out;
		}
		now = mono_ms();
		for (unsigned int k = 1; k < n; k++) {
			unsigned int i = which[k];
			struct slot *s = &p->slots[i];

			if (s->state == CONNECTING && pfd[k].revents) {
				ret = connect_done(p, i);
			} else if (s->state == CONNECTING && now >= s->due_ms) {
				connect_failed(p, i, ETIMEDOUT, "connect");
			} else if (s->state == UP && (pfd[k].revents || s->draining)) {
				ret = transport_check(p, i);
				/* still healthy after the peer's FIN: it delivers what is queued */
				if (!ret && s->state == UP && (pfd[k].revents & POLLRDHUP))
					s->draining = true;
			}
			if (ret)
				goto out;
		}
		if (now >= next_sweep) {
			for (unsigned int i = 0; i < p->count; i++) {
				if (p->slots[i].state != UP)
					continue;
				ret = transport_check(p, i);
				if (ret)
					goto out;
			}
			next_sweep = now + SWEEP_MS;
		}
	}
out:
	free(pfd);
	free(which);
	return ret;
}

static void connect_help(void)
{
	printf("Usage: kcm-loader connect NAME HOST:PORT [--count N] [options] [--json]\n\n"
	       "Keep N TCP connections to HOST:PORT attached to mux NAME (made with `kcm-loader\n"
	       "create NAME`): KCM assumes every transport of a mux leads to the same place.\n"
	       "Each connect is bounded by --connect-timeout; a failed connect is retried with\n"
	       "exponential backoff, and a transport that fails (reset, FIN, keepalive or\n"
	       "TCP_USER_TIMEOUT, a bad frame) is unattached and replaced. Runs until SIGINT\n"
	       "or SIGTERM, then unattaches and closes its connections. libkcm users of the\n"
	       "mux send through these connections. One line per event on stdout.\n\n"
	       "  --count N              connections to keep (1..%d, default 1)\n"
	       "  --connect-timeout MS   give up on a connect after MS ms (default 3000)\n"
	       "  --backoff-min MS       first retry delay (default 100), doubling per failure\n"
	       "  --backoff-max MS       longest retry delay (default 5000); +-25%% jitter\n"
	       "  --ready-file PATH      create PATH once all N connections are up\n"
	       "  --json                 one JSON object per event (as with -j)\n\n"
	       TRANSPORT_OPTIONS_HELP
	       "\nHOST is a name or an address ([::1] for IPv6); a name's addresses are tried\n"
	       "in turn. Exit status: 0 after a signal, 1 failure (no such mux), 2 usage error.\n"
	       "See docs/connect-pool.md.\n", MAX_COUNT);
}

int cmd_connect(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "count", required_argument, NULL, 'n' },
		{ "connect-timeout", required_argument, NULL, 't' },
		{ "backoff-min", required_argument, NULL, 'b' },
		{ "backoff-max", required_argument, NULL, 'B' },
		{ "ready-file", required_argument, NULL, 'r' },
		TRANSPORT_LONG_OPTIONS,
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{},
	};
	struct pool p = {
		.topts = { .sz = sizeof(struct kcm_transport_opts) },
		.count = 1,
		.connect_timeout_ms = 3000,
		.backoff_min_ms = 100,
		.backoff_max_ms = 5000,
	};
	unsigned int closed;
	sigset_t mask, old;
	int c, err, sig_fd, ret;
	uint64_t v;

	optind = 0;
	while ((c = getopt_long(argc, argv, ":jh", opts, NULL)) != -1) {
		switch (c) {
		case 'n':
			if (parse_u64(optarg, 1, MAX_COUNT, &v))
				return usage_error("connect", "invalid --count '%s': 1..%d", optarg,
						   MAX_COUNT);
			p.count = v;
			break;
		case 't':
			if (parse_u64(optarg, 1, 3600 * 1000, &v))
				return usage_error("connect", "invalid --connect-timeout '%s': "
						   "milliseconds", optarg);
			p.connect_timeout_ms = v;
			break;
		case 'b':
		case 'B':
			if (parse_u64(optarg, 1, 3600 * 1000, &v))
				return usage_error("connect", "invalid --%s '%s': milliseconds",
						   c == 'b' ? "backoff-min" : "backoff-max", optarg);
			*(c == 'b' ? &p.backoff_min_ms : &p.backoff_max_ms) = v;
			break;
		case 'r':
			p.ready_file = optarg;
			break;
		case 'j':
			env.json = true;
			break;
		case 'h':
			connect_help();
			return EXIT_OK;
		default:
			if (c > 0 && strchr(TRANSPORT_OPT_CHARS, c)) {
				err = transport_option("connect", c, optarg, &p.topts);
				if (err)
					return err;
				break;
			}
			return bad_option("connect", c, argv);
		}
	}
	if (optind != argc - 2)
		return usage_error("connect", "expected a mux NAME and HOST:PORT");
	if (p.backoff_min_ms > p.backoff_max_ms)
		return usage_error("connect", "--backoff-min %u is above --backoff-max %u",
				   p.backoff_min_ms, p.backoff_max_ms);
	p.name = argv[optind];
	if (kcm_name_check(p.name))
		return usage_error("connect", "invalid name '%s'", p.name);
	err = resolve(&p, argv[optind + 1]);
	if (err == -EINVAL)
		return usage_error("connect", "invalid destination '%s': HOST:PORT, [IPV6]:PORT, "
				   "port 1..65535", argv[optind + 1]);
	if (err)
		return EXIT_FAIL;

	p.mux = kcm_mux_open(p.name);
	if (!p.mux)
		return fail_lib("failed to open mux", errno);
	p.slots = calloc(p.count, sizeof(*p.slots));
	if (!p.slots) {
		kcm_mux_close(p.mux);
		return fail("failed to allocate %u connection slots", p.count);
	}
	for (unsigned int i = 0; i < p.count; i++) {
		p.slots[i].fd = -1;
		p.slots[i].addr = i % p.naddr;
	}
	p.seed = (unsigned int)(getpid() ^ wall_ms());
	if (p.ready_file)
		unlink(p.ready_file);

	/* signals arrive on a signalfd in the loop, so the cleanup runs in one place */
	sigemptyset(&mask);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGTERM);
	sigprocmask(SIG_BLOCK, &mask, &old);
	signal(SIGPIPE, SIG_IGN);
	sig_fd = signalfd(-1, &mask, SFD_CLOEXEC);
	if (sig_fd < 0) {
		ret = fail("failed to create signalfd: %s", strerror(errno));
		goto out;
	}
	if (!env.json) {
		printf("keeping %u connection%s to %s attached to mux '%s'\n", p.count,
		       p.count == 1 ? "" : "s", argv[optind + 1], p.name);
		fflush(stdout);
	}
	ret = pool_run(&p, sig_fd);
	closed = pool_stop(&p);
	if (ret == EXIT_OK) {
		if (env.json) {
			json_start_object(NULL);
			json_string("event", "stopped");
			json_uint("time_ms", wall_ms());
			json_uint("unattached", closed);
			json_uint("count", p.count);
			json_end_object();
			json_done();
		} else {
			printf("stopped: unattached %u connection%s from mux '%s'\n", closed,
			       closed == 1 ? "" : "s", p.name);
			fflush(stdout);
		}
	}
	close(sig_fd);
out:
	if (p.ready_file && p.ready)
		unlink(p.ready_file);
	kcm_mux_close(p.mux);
	free(p.slots);
	sigprocmask(SIG_SETMASK, &old, NULL);
	return ret;
}
