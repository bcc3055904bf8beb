// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * The connect pool's engine (pool.h): connects are non-blocking and bounded by the
 * connect timeout; a slot whose connect fails or whose transport dies is tried again
 * with backoff (pool_state.c). Between attempts the process sleeps in poll(): on its
 * signalfd, its connecting sockets and its own fd of every attached transport.
 */
#include <errno.h>
#include <fcntl.h>
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
#include "loader.h"
#include "pool.h"

#ifndef SO_COOKIE
#define SO_COOKIE 57
#endif

/* How often a transport still delivering what came before the peer's FIN is checked again. */
#define DRAIN_CHECK_MS 100
/* How often every attached transport is checked without a poll event (an unattach by
 * another process, a failure the library saw first). */
#define SWEEP_MS 1000

uint64_t pool_mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

uint64_t pool_wall_ms(void)
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

int pool_resolve(struct pool *p, const char *spec)
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
	for (ai = res; ai && p->naddr < POOL_MAX_ADDRS; ai = ai->ai_next) {
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

/* Every slot is up for the first time: say so, and create the ready file. */
static int signal_ready(struct pool *p)
{
	struct pool_event e = { .event = "ready" };
	int fd;

	p->ready = true;
	p->report(p, &e);
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
	struct pool_event e = { .event = "connect_failed", .slot = idx, .stage = stage,
				.err = err, .remote = p->addrname[s->addr] };

	if (s->fd >= 0)
		close(s->fd);
	s->fd = -1;
	e.retry_ms = pool_slot_failed(p, idx, pool_mono_ms());
	p->report(p, &e);
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
	bool all;

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
	all = pool_slot_up(p, idx, pool_mono_ms());
	p->report(p, &(struct pool_event){ .event = "connected", .slot = idx, .remote = s->remote });
	if (!p->ready && all && signal_ready(p))
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
	s->due_ms = pool_mono_ms() + p->connect_timeout_ms;
	if (!connect(s->fd, (const struct sockaddr *)a, p->addrlen[s->addr]))
		return connect_done(p, idx);
	if (errno != EINPROGRESS)
		connect_failed(p, idx, errno, "connect");
	return 0;
}

/* Slot @idx lost its transport (@ev from kcm_transport_check, or NULL when another
 * process unattached it): schedule the replacement, and say so. */
static void transport_lost(struct pool *p, unsigned int idx, const struct kcm_transport_event *ev)
{
	struct slot *s = &p->slots[idx];
	uint64_t now = pool_mono_ms();
	struct pool_event e = { .event = "failed", .slot = idx, .remote = s->remote, .ev = ev,
				.err = ev ? ev->err : 0, .uptime_ms = now - s->up_ms };

	close(s->fd);
	s->fd = -1;
	e.retry_ms = pool_slot_lost(p, idx, now);
	p->report(p, &e);
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
		transport_lost(p, idx, &ev);
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
		transport_lost(p, idx, NULL);
	}
	return 0;
}

unsigned int pool_stop(struct pool *p)
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

int pool_run(struct pool *p, int sig_fd)
{
	struct pollfd *pfd = calloc(p->count + 1, sizeof(*pfd));
	unsigned int *which = calloc(p->count + 1, sizeof(*which));
	uint64_t next_sweep = pool_mono_ms() + SWEEP_MS;
	int ret = EXIT_FAIL;

	if (!pfd || !which) {
		fail("failed to allocate poll set for %u connections", p->count);
		goto out;
	}
	for (;;) {
		uint64_t now = pool_mono_ms(), due = next_sweep;
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
		now = pool_mono_ms();
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
