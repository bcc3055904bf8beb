// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * An unmodified TCP application: accepts connections and holds them without reading,
 * writing "PID FD" per connection to --ready-file so kcm-loader can attach them.
 */
#include <getopt.h>
#include <signal.h>

#include "progs.h"

static void usage(FILE *f)
{
	fprintf(f, "Usage: tcp_holder --listen ADDR:PORT --ready-file PATH [--conns N]\n"
		   "Accept N connections (default 1), write \"PID FD\" lines to PATH, then wait\n"
		   "for SIGTERM without touching the sockets.\n");
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "listen", required_argument, NULL, 'l' },
		{ "ready-file", required_argument, NULL, 'r' },
		{ "conns", required_argument, NULL, 'n' },
		{ "help", no_argument, NULL, 'h' },
		{},
	};
	const char *listen_at = NULL, *ready = NULL;
	int c, n = 1, lfd;
	char tmp[512];
	FILE *f;

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'l':
			listen_at = optarg;
			break;
		case 'r':
			ready = optarg;
			break;
		case 'n':
			n = atoi(optarg);
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (!listen_at || !ready || n < 1) {
		usage(stderr);
		return 2;
	}
	lfd = tcp_listen(listen_at, n);
	snprintf(tmp, sizeof(tmp), "%s.tmp", ready);
	f = fopen(tmp, "w");
	if (!f)
		die("failed to write %s: %s", tmp, strerror(errno));
	for (int i = 0; i < n; i++) {
		int fd = accept(lfd, NULL, NULL);

		if (fd < 0)
			die("accept: %s", strerror(errno));
		fprintf(f, "%d %d\n", getpid(), fd);
	}
	fclose(f);
	if (rename(tmp, ready))
		die("failed to create %s: %s", ready, strerror(errno));
	for (;;)
		pause();
}
