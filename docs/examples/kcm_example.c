// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * kcm-example: the application container of kcm-pod.yaml, an echo server for messages
 * with a 4-byte big-endian length prefix (Thrift framing). It has no privileges: it
 * reaches the mux through the sidecar's socket (kcm_mux_connect()), gets one KCM socket
 * per worker thread, accepts TCP connections and attaches them through the sidecar;
 * each worker receives whole messages and sends each back with kcm_send().
 *
 *   kcm-example SOCKET [--listen ADDR:PORT] [--workers N] [--conns N] [--expect N]
 *
 * Ends after --expect messages (or SIGTERM) and prints one JSON line: its uid, its
 * effective capabilities, and the messages each worker received and echoed.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>

#include "kcm.h"

#define MAX_WORKERS 16

static atomic_ulong total;
static unsigned long expect;
static volatile sig_atomic_t stop;

struct worker {
	pthread_t tid;
	int kcm;
	unsigned long received, echoed, bad;
};

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

static void *work(void *arg)
{
	struct worker *w = arg;
	static __thread unsigned char buf[65536];

	while (!stop && (!expect || atomic_load(&total) < expect)) {
		struct pollfd p = { .fd = w->kcm, .events = POLLIN };
		ssize_t n;

		if (poll(&p, 1, 200) <= 0)
			continue;
		n = kcm_recv(w->kcm, buf, sizeof(buf), MSG_DONTWAIT);
		if (n < 0)
			continue;
		w->received++;
		atomic_fetch_add(&total, 1);
		if (n < 4 || ntohl(*(uint32_t *)buf) + 4 != (uint32_t)n)
			w->bad++; /* not one whole message */
		else if (kcm_send(w->kcm, buf, n, 0) == n)
			w->echoed++;
	}
	return NULL;
}

/* Effective capabilities, as /proc/self/status gives them. */
static unsigned long long cap_eff(void)
{
	unsigned long long v = ~0ULL;
	char line[128];
	FILE *f = fopen("/proc/self/status", "re");

	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, "CapEff: %llx", &v) == 1)
			break;
	if (f)
		fclose(f);
	return v;
}

static int listen_on(const char *spec)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	char host[64];
	int fd, one = 1;
	unsigned int port;

	if (sscanf(spec, "%63[^:]:%u", host, &port) != 2 || inet_pton(AF_INET, host, &a.sin_addr) != 1)
		return -EINVAL;
	a.sin_port = htons(port);
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) || listen(fd, 64))
		return -errno;
	return fd;
}

int main(int argc, char **argv)
{
	const char *listen_spec = "0.0.0.0:7000";
	struct worker w[MAX_WORKERS] = { 0 };
	unsigned int workers = 4, conns = 4;
	struct kcm_mux *mux;
	int l, err = 0;

	if (argc < 2 || !strcmp(argv[1], "--help")) {
		fprintf(stderr, "usage: kcm-example SOCKET [--listen ADDR:PORT] [--workers N] "
			"[--conns N] [--expect N]\n");
		return 2;
	}
	for (int i = 2; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "--listen"))
			listen_spec = argv[i + 1];
		else if (!strcmp(argv[i], "--workers"))
			workers = atoi(argv[i + 1]);
		else if (!strcmp(argv[i], "--conns"))
			conns = atoi(argv[i + 1]);
		else if (!strcmp(argv[i], "--expect"))
			expect = strtoul(argv[i + 1], NULL, 0);
		else {
			fprintf(stderr, "kcm-example: unknown option '%s'\n", argv[i]);
			return 2;
		}
	}
	if (!workers || workers > MAX_WORKERS) {
		fprintf(stderr, "kcm-example: --workers takes 1 to %d\n", MAX_WORKERS);
		return 2;
	}
	signal(SIGTERM, on_signal);
	signal(SIGINT, on_signal);
	signal(SIGPIPE, SIG_IGN);
	mux = kcm_mux_connect(argv[1]); /* waits for the sidecar's socket */
	if (!mux) {
		fprintf(stderr, "kcm-example: %s\n", kcm_last_error());
		return 1;
	}
	for (unsigned int i = 0; i < workers; i++) {
		w[i].kcm = i ? kcm_clone(w[0].kcm) : kcm_socket(mux);
		if (w[i].kcm < 0) {
			fprintf(stderr, "kcm-example: KCM socket: %s\n", kcm_last_error());
			return 1;
		}
		pthread_create(&w[i].tid, NULL, work, &w[i]);
	}
	l = listen_on(listen_spec);
	if (l < 0) {
		fprintf(stderr, "kcm-example: listen on %s: %s\n", listen_spec, strerror(-l));
		return 1;
	}
	fprintf(stderr, "kcm-example: listening on %s, %u workers\n", listen_spec, workers);
	for (unsigned int i = 0; i < conns && !stop; i++) {
		int c = accept4(l, NULL, NULL, SOCK_CLOEXEC);

		if (c < 0) {
			i--;
			continue;
		}
		if (kcm_attach(mux, c)) {
			fprintf(stderr, "kcm-example: attach: %s\n", kcm_last_error());
			err = 1;
		}
		close(c); /* the library keeps its own reference, as AF_KCM does */
	}
	for (unsigned int i = 0; i < workers; i++)
		pthread_join(w[i].tid, NULL);
	printf("{\"uid\":%u,\"cap_eff\":\"%016llx\",\"workers\":[", (unsigned int)getuid(),
	       cap_eff());
	for (unsigned int i = 0; i < workers; i++)
		printf("%s{\"received\":%lu,\"echoed\":%lu,\"bad\":%lu}", i ? "," : "",
		       w[i].received, w[i].echoed, w[i].bad);
	printf("],\"total\":%lu}\n", atomic_load(&total));
	fflush(stdout);
	kcm_mux_close(mux);
	return err;
}
