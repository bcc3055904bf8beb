// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * A libkcm application that only sends: opens a pinned mux (whose transports another
 * process, e.g. `kcm-loader connect`, holds), and sends N test messages (progs.h) from
 * one KCM socket. Each leaves whole on one of the mux's transports.
 */
#include <getopt.h>

#include "kcm.h"
#define PROG "pool_sender"
#include "progs.h"

static void usage(FILE *f)
{
	fprintf(f, "Usage: " PROG " --open NAME --count N [--size BYTES] [--conn ID]\n"
		   "Send N test messages (u32be+4, progs.h) of BYTES body bytes (default 100)\n"
		   "through mux NAME, as connection id ID (default 0, seqs 0..N-1). Prints\n"
		   "{\"sent\":N}. Exit status: 0 all sent, 1 a send failed, 2 usage error.\n");
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "open", required_argument, NULL, 'o' },
		{ "count", required_argument, NULL, 'n' },
		{ "size", required_argument, NULL, 's' },
		{ "conn", required_argument, NULL, 'c' },
		{ "help", no_argument, NULL, 'h' },
		{},
	};
	uint32_t count = 0, size = 100, conn = 0, sent = 0;
	const char *name = NULL;
	struct kcm_mux *mux;
	uint8_t *buf;
	int c, k;

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'o': name = optarg; break;
		case 'n': count = parse_num("--count", optarg, 1, 1u << 28); break;
		case 's': size = parse_num("--size", optarg, PROG_BODY_IDS, 1 << 16); break;
		case 'c': conn = parse_num("--conn", optarg, 0, 1u << 19); break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (!name || !count)
		usage_error("--open NAME and --count N are required");
	buf = malloc(4 + (size_t)size);
	mux = kcm_mux_open(name);
	if (!buf || !mux)
		die(PROG ": failed to open mux %s: %s", name, kcm_last_error());
	k = kcm_socket(mux);
	if (k < 0)
		die(PROG ": failed to make a KCM socket: %s", strerror(errno));
	for (; sent < count; sent++) {
		size_t len = msg_build(buf, conn, sent, size);

		if (kcm_send(k, buf, len, 0) != (ssize_t)len) {
			fprintf(stderr, PROG ": failed to send message %u: %s\n", sent,
				strerror(errno));
			break;
		}
	}
	printf("{\"sent\":%u}\n", sent);
	kcm_close(k);
	kcm_mux_close(mux);
	free(buf);
	return sent == count ? 0 : 1;
}
