// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * kcm-example: the application container of kcm-pod.yaml. It has no privileges: it
 * reaches the mux through the sidecar's socket (kcm_mux_connect()), makes two KCM
 * sockets, connects a TCP socket to itself over loopback (in a real application: its
 * clients' or servers' connections), attaches one end, sends COUNT Thrift-framed messages
 * from the other, receives each whole on one of the KCM sockets, and sends one back.
 *
 *   kcm-example SOCKET [COUNT]      prints one JSON line; exit 0 when every message came
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>

#include "kcm.h"

static int loopback_pair(int *c, int *s)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t al = sizeof(a);
	int l = socket(AF_INET, SOCK_STREAM, 0);

	if (l < 0 || bind(l, (struct sockaddr *)&a, sizeof(a)) || listen(l, 1) ||
	    getsockname(l, (struct sockaddr *)&a, &al))
		return -1;
	*c = socket(AF_INET, SOCK_STREAM, 0);
	if (*c < 0 || connect(*c, (struct sockaddr *)&a, sizeof(a)))
		return -1;
	*s = accept(l, NULL, NULL);
	close(l);
	return *s < 0 ? -1 : 0;
}

/* A Thrift-framed message: a 4-byte big-endian length, then @n bytes of @seq. */
static size_t frame(unsigned char *buf, unsigned int seq, unsigned int n)
{
	uint32_t len = htonl(n);

	memcpy(buf, &len, 4);
	memset(buf + 4, seq & 0xff, n);
	return n + 4;
}

int main(int argc, char **argv)
{
	unsigned int count = argc > 2 ? atoi(argv[2]) : 1000, got[2] = { 0 }, bad = 0;
	unsigned char buf[2048];
	struct kcm_mux *mux;
	int k[2], c, s;

	if (argc < 2 || !strcmp(argv[1], "--help")) {
		fprintf(stderr, "usage: kcm-example SOCKET [COUNT]\n");
		return 2;
	}
	mux = kcm_mux_connect(argv[1]);
	if (!mux) {
		fprintf(stderr, "kcm-example: %s\n", kcm_last_error());
		return 1;
	}
	k[0] = kcm_socket(mux);
	k[1] = kcm_clone(k[0]);
	if (k[0] < 0 || k[1] < 0 || loopback_pair(&c, &s) || kcm_attach(mux, s)) {
		fprintf(stderr, "kcm-example: %s\n", kcm_last_error());
		return 1;
	}
	for (unsigned int i = 0; i < count; i++) {
		size_t n = frame(buf, i, 100);

		if (write(c, buf, n) != (ssize_t)n) {
			perror("kcm-example: write");
			return 1;
		}
	}
	while (got[0] + got[1] < count) {
		struct pollfd p[2] = { { k[0], POLLIN, 0 }, { k[1], POLLIN, 0 } };

		if (poll(p, 2, 5000) <= 0)
			break; /* nothing for 5 s: report what came */
		for (int i = 0; i < 2; i++) {
			ssize_t r;

			if (!(p[i].revents & POLLIN))
				continue;
			r = kcm_recv(k[i], buf, sizeof(buf), MSG_DONTWAIT);
			if (r == 104)
				got[i]++;
			else if (r >= 0)
				bad++;
		}
	}
	/* and a reply leaves whole on the transport */
	frame(buf, 7, 20);
	if (kcm_send(k[0], buf, 24, 0) != 24 || read(c, buf, sizeof(buf)) != 24)
		bad++;
	printf("{\"uid\":%u,\"sent\":%u,\"received\":[%u,%u],\"bad\":%u}\n", (unsigned int)getuid(),
	       count, got[0], got[1], bad);
	kcm_mux_close(mux);
	return got[0] + got[1] == count && !bad ? 0 : 1;
}
