/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Helpers shared by the test and demo programs (header-only, static). */
#ifndef KCM_PROGS_H
#define KCM_PROGS_H

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "kcm.h"

#define PROG_BODY_IDS 12 /* conn, seq, size: present when the body is at least this long */

static inline void die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

#ifdef PROG
/* "PROG: message", a pointer to --help, exit 2 (a usage error). */
static inline void __attribute__((noreturn, format(printf, 1, 2))) usage_error(const char *fmt, ...)
{
	va_list ap;

	fputs(PROG ": ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs("\ntry '" PROG " --help'\n", stderr);
	exit(2);
}

/* A whole-string number in [min, max] for option @opt, or a usage error. */
static inline uint64_t parse_num(const char *opt, const char *s, uint64_t min, uint64_t max)
{
	unsigned long long val;
	char *end;

	errno = 0;
	if (*s < '0' || *s > '9')
		usage_error("invalid %s '%s': expected a number", opt, s);
	val = strtoull(s, &end, 0);
	if (errno || *end || val < min || val > max)
		usage_error("invalid %s '%s': expected %llu..%llu", opt, s,
			    (unsigned long long)min, (unsigned long long)max);
	return val;
}

/* kcm_mux_create(), or NULL after saying why on stderr (kcm_last_error()). */
static inline struct kcm_mux *mux_create_verbose(const struct kcm_mux_opts *mo)
{
	struct kcm_mux *mux = kcm_mux_create(mo);
	const char *why;

	if (mux)
		return mux;
	why = kcm_last_error();
	fprintf(stderr, PROG ": failed to create mux%s%s: %s\n", mo->pin_name ? " " : "",
		mo->pin_name ? mo->pin_name : "", why && *why ? why : strerror(errno));
	return NULL;
}
#endif

static inline uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + ts.tv_nsec;
}

/* "ADDR:PORT" (IPv4 or [IPv6]) into @ss. */
static inline int parse_hostport(const char *s, struct sockaddr_storage *ss, socklen_t *len)
{
	char host[128];
	const char *colon = strrchr(s, ':');
	struct addrinfo hints = { .ai_flags = AI_NUMERICHOST | AI_NUMERICSERV }, *ai;
	size_t hl;

	if (!colon)
		return -EINVAL;
	hl = colon - s;
	if (s[0] == '[' && hl >= 2 && s[hl - 1] == ']') {
		s++;
		hl -= 2;
	}
	if (hl >= sizeof(host))
		return -EINVAL;
	memcpy(host, s, hl);
	host[hl] = '\0';
	if (getaddrinfo(host, colon + 1, &hints, &ai))
		return -EINVAL;
	memcpy(ss, ai->ai_addr, ai->ai_addrlen);
	*len = ai->ai_addrlen;
	freeaddrinfo(ai);
	return 0;
}

static inline int tcp_listen(const char *hostport, int backlog)
{
	struct sockaddr_storage ss;
	socklen_t len;
	int fd, one = 1;

	if (parse_hostport(hostport, &ss, &len))
		die("bad address %s: expected ADDR:PORT", hostport);
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		die("socket: %s", strerror(errno));
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&ss, len) || listen(fd, backlog))
		die("failed to listen on %s: %s", hostport, strerror(errno));
	return fd;
}

static inline int tcp_connect(const char *hostport)
{
	struct sockaddr_storage ss;
	socklen_t len;
	int fd;

	if (parse_hostport(hostport, &ss, &len))
		die("bad address %s: expected ADDR:PORT", hostport);
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		die("socket: %s", strerror(errno));
	if (connect(fd, (struct sockaddr *)&ss, len))
		die("failed to connect to %s: %s", hostport, strerror(errno));
	return fd;
}

/* A connected loopback TCP pair (client end, server end). */
static inline void tcp_pair(int *c, int *s)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t al = sizeof(a);
	int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (l < 0 || bind(l, (struct sockaddr *)&a, sizeof(a)) || listen(l, 8) ||
	    getsockname(l, (struct sockaddr *)&a, &al))
		die("loopback listen: %s", strerror(errno));
	*c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (*c < 0 || connect(*c, (struct sockaddr *)&a, sizeof(a)))
		die("loopback connect: %s", strerror(errno));
	*s = accept(l, NULL, NULL);
	if (*s < 0)
		die("loopback accept: %s", strerror(errno));
	close(l);
}

static inline uint8_t pattern_byte(uint32_t conn, uint32_t seq, uint32_t i)
{
	return (uint8_t)(conn * 31u + seq * 7u + i * 13u + (i >> 8));
}

/*
 * A test message in Thrift framing (u32 big-endian body length, then the body). Bodies
 * of PROG_BODY_IDS bytes or more start with conn, seq and body size (big-endian), and
 * every other byte follows pattern_byte(), so corruption and mix-ups are detected.
 * Returns the whole length (4 + body).
 */
static inline size_t msg_build(uint8_t *buf, uint32_t conn, uint32_t seq, uint32_t body)
{
	uint32_t be = htonl(body);
	uint32_t i = 0;

	memcpy(buf, &be, 4);
	if (body >= PROG_BODY_IDS) {
		uint32_t ids[3] = { htonl(conn), htonl(seq), htonl(body) };

		memcpy(buf + 4, ids, sizeof(ids));
		i = PROG_BODY_IDS;
	}
	for (; i < body; i++)
		buf[4 + i] = body >= PROG_BODY_IDS ? pattern_byte(conn, seq, i) : pattern_byte(0, 0, i);
	return 4 + (size_t)body;
}

/* 0 when @buf is an intact message of exactly @len bytes; fills conn and seq when known. */
static inline int msg_check(const uint8_t *buf, size_t len, uint32_t *conn, uint32_t *seq)
{
	uint32_t body, ids[3], i = 0;

	if (len < 4)
		return -1;
	memcpy(&body, buf, 4);
	body = ntohl(body);
	if ((size_t)body + 4 != len)
		return -1;
	*conn = *seq = UINT32_MAX;
	if (body >= PROG_BODY_IDS) {
		memcpy(ids, buf + 4, sizeof(ids));
		*conn = ntohl(ids[0]);
		*seq = ntohl(ids[1]);
		if (ntohl(ids[2]) != body)
			return -1;
		i = PROG_BODY_IDS;
	}
	for (; i < body; i++) {
		uint8_t want = body >= PROG_BODY_IDS ? pattern_byte(*conn, *seq, i) : pattern_byte(0, 0, i);

		if (buf[4 + i] != want)
			return -1;
	}
	return 0;
}

/* Write all of @buf: 0, or -errno (a peer that closed: -EPIPE or -ECONNRESET). */
static inline int write_all_err(int fd, const void *buf, size_t len)
{
	const uint8_t *p = buf;

	while (len) {
		ssize_t r = write(fd, p, len);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return r < 0 ? -errno : -EIO;
		p += r;
		len -= r;
	}
	return 0;
}

/* write_all_err() as 0 or -1 with errno set. */
static inline int write_all(int fd, const void *buf, size_t len)
{
	int err = write_all_err(fd, buf, len);

	if (err)
		errno = -err;
	return err ? -1 : 0;
}

/* One message from a KCM socket within @ms: its length, -ETIMEDOUT, or -errno. */
static inline ssize_t krecv_to(int k, void *buf, size_t cap, int ms)
{
	uint64_t end = now_ns() + (uint64_t)ms * 1000000;

	for (;;) {
		struct pollfd p = { .fd = k, .events = POLLIN };
		int64_t left = ((int64_t)end - (int64_t)now_ns()) / 1000000;
		ssize_t r;

		if (left < 0)
			return -ETIMEDOUT;
		r = poll(&p, 1, (int)left);
		if (r < 0 && errno != EINTR)
			return -errno;
		if (r <= 0)
			continue;
		r = kcm_recv(k, buf, cap, MSG_DONTWAIT);
		if (r >= 0)
			return r;
		if (errno != EAGAIN)
			return -errno;
	}
}

#endif /* KCM_PROGS_H */
