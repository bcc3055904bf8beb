// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * A libkcm application on a pinned mux: opens it by name (or creates one it owns),
 * receives with N worker KCM sockets, verifies, optionally replies through the mux.
 */
#include <getopt.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>

#include "kcm.h"
#include "progs.h"

static struct kcm_mux *mux;
static atomic_long received, corrupt, sent;
static long expect;
static bool reply;
static int timeout_s = 20;

struct worker {
	pthread_t th;
	int fd;
	long msgs;
};

static void *work(void *arg)
{
	struct worker *w = arg;
	static __thread uint8_t buf[1 << 20];
	uint64_t deadline = now_ns() + (uint64_t)timeout_s * 1000000000ull;

	while (atomic_load(&received) < expect && now_ns() < deadline) {
		ssize_t r = kcm_recv(w->fd, buf, sizeof(buf), MSG_DONTWAIT);
		uint32_t conn, seq;

		if (r < 0) {
			struct pollfd p = { .fd = w->fd, .events = POLLIN };

			if (errno != EAGAIN)
				die("kcm_recv on worker socket %d: %s", w->fd, strerror(errno));
			poll(&p, 1, 100);
			continue;
		}
		if (msg_check(buf, r, &conn, &seq))
			atomic_fetch_add(&corrupt, 1);
		if (reply && kcm_send(w->fd, buf, r, 0) == r)
			atomic_fetch_add(&sent, 1);
		w->msgs++;
		atomic_fetch_add(&received, 1);
	}
	return NULL;
}

static void usage(FILE *f)
{
	fprintf(f, "Usage: mux_consumer (--open NAME | --create NAME) [--workers N] [--expect N]\n"
		   "                    [--reply] [--ready-file PATH] [--timeout SEC] [--hold]\n"
		   "--open uses a mux made by kcm-loader; --create pins one owned by this process.\n"
		   "--hold: after creating and signalling ready, wait for a signal (crash tests).\n");
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "open", required_argument, NULL, 'o' },
		{ "create", required_argument, NULL, 'c' },
		{ "workers", required_argument, NULL, 'w' },
		{ "expect", required_argument, NULL, 'e' },
		{ "reply", no_argument, NULL, 'r' },
		{ "ready-file", required_argument, NULL, 'f' },
		{ "timeout", required_argument, NULL, 't' },
		{ "hold", no_argument, NULL, 'H' },
		{ "help", no_argument, NULL, 'h' },
		{},
	};
	const char *open_name = NULL, *create_name = NULL, *ready = NULL;
	struct worker w[64] = { 0 };
	int c, nw = 2;
	bool hold = false;

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'o': open_name = optarg; break;
		case 'c': create_name = optarg; break;
		case 'w': nw = atoi(optarg); break;
		case 'e': expect = atol(optarg); break;
		case 'r': reply = true; break;
		case 'f': ready = optarg; break;
		case 't': timeout_s = atoi(optarg); break;
		case 'H': hold = true; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (!!open_name == !!create_name || nw < 1 || nw > 64) {
		usage(stderr);
		return 2;
	}
	if (open_name) {
		mux = kcm_mux_open(open_name);
	} else {
		struct kcm_mux_opts o = { .sz = sizeof(o), .framing = KCM_FRAMING_THRIFT,
					  .pin_name = create_name };

		mux = kcm_mux_create(&o);
	}
	if (!mux)
		die("failed to get mux: %s", kcm_last_error());
	for (int i = 0; i < nw; i++) {
		w[i].fd = i ? kcm_clone(w[0].fd) : kcm_socket(mux);
		if (w[i].fd < 0)
			die("failed to make KCM socket %d: %s", i, strerror(errno));
	}
	if (ready) {
		FILE *f = fopen(ready, "w");

		if (!f)
			die("failed to create %s: %s", ready, strerror(errno));
		fprintf(f, "%d\n", getpid());
		fclose(f);
	}
	if (hold)
		for (;;)
			pause();
	for (int i = 0; i < nw; i++)
		pthread_create(&w[i].th, NULL, work, &w[i]);
	for (int i = 0; i < nw; i++)
		pthread_join(w[i].th, NULL);
	printf("{\"received\":%ld,\"corrupt\":%ld,\"replied\":%ld,\"workers\":[",
	       atomic_load(&received), atomic_load(&corrupt), atomic_load(&sent));
	for (int i = 0; i < nw; i++)
		printf("%s%ld", i ? "," : "", w[i].msgs);
	printf("]}\n");
	kcm_mux_close(mux);
	return atomic_load(&received) == expect && !atomic_load(&corrupt) ? 0 : 1;
}
