// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * kcm-loader connect: keep N TCP connections to one destination attached to a mux. The
 * pool itself is pool.c; this file holds the options and prints its events.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "kcm.h"
#include "json.h"
#include "output.h"
#include "loader.h"
#include "pool.h"
#include "transport_args.h"

/* One event of the pool, as a line or a JSON object (pool.h says which fields). */
static void report(struct pool *p, const struct pool_event *e)
{
	struct slot *s = &p->slots[e->slot];
	const char *ev = e->event;

	open_json_object(NULL);
	print_string(PRINT_JSON, "event", NULL, ev);
	print_uint(PRINT_JSON, "time_ms", NULL, pool_wall_ms());
	if (strcmp(ev, "ready"))
		print_uint(PRINT_JSON, "slot", NULL, e->slot);
	if (!strcmp(ev, "connect_failed")) {
		print_string(PRINT_ANY, "remote", "connect to %s failed: ", e->remote);
		print_string(PRINT_JSON, "stage", NULL, e->stage);
		print_string(PRINT_FP, NULL, "%s", strcmp(e->stage, "attach") ? "" : "attach: ");
		print_uint(PRINT_JSON, "attempt", NULL, s->attempts);
		print_int(PRINT_JSON, "err", NULL, e->err);
		print_string(PRINT_ANY, "error", "%s", strerror(e->err));
		print_uint(PRINT_ANY, "retry_ms", "; retry in %llu ms", e->retry_ms);
		print_uint(PRINT_FP, NULL, " (slot %llu", e->slot);
		print_uint(PRINT_FP, NULL, ", attempt %llu)", s->attempts);
	} else if (!strcmp(ev, "connected")) {
		print_string(PRINT_ANY, "remote", "connected %s", s->remote);
		print_string(PRINT_ANY, "local", " from %s", s->local);
		print_uint(PRINT_FP, NULL, " slot %llu", e->slot);
		print_uint(PRINT_ANY, "cookie", " cookie %llu", s->cookie);
		print_uint(PRINT_JSON, "attempt", NULL, s->attempts);
	} else if (!strcmp(ev, "failed")) {
		uint64_t lost = e->ev ? e->ev->lost_msgs : 0;

		print_uint(PRINT_FP, NULL, "lost cookie %llu", s->cookie);
		print_string(PRINT_ANY, "remote", " (%s", s->remote);
		print_uint(PRINT_FP, NULL, " slot %llu)", e->slot);
		print_string(PRINT_JSON, "local", NULL, s->local);
		print_uint(PRINT_JSON, "cookie", NULL, s->cookie);
		print_string(PRINT_ANY, "reason", ": %s",
			     e->ev ? kcm_fail_reason_name(e->ev->reason) : "unattached");
		print_int(PRINT_JSON, "err", NULL, e->err);
		print_string(PRINT_JSON, "error", NULL, e->err ? strerror(e->err) : "");
		if (e->err)
			print_string(PRINT_FP, NULL, " (%s)", strerror(e->err));
		print_uint(PRINT_ANY, "lost_msgs", ", %llu", lost);
		print_string(PRINT_FP, NULL, " message%s lost", lost == 1 ? "" : "s");
		print_uint(PRINT_JSON, "lost_bytes", NULL, e->ev ? e->ev->lost_bytes : 0);
		print_uint(PRINT_JSON, "uptime_ms", NULL, e->uptime_ms);
		print_uint(PRINT_ANY, "retry_ms", "; reconnect in %llu ms", e->retry_ms);
	} else if (!strcmp(ev, "ready")) {
		print_uint(PRINT_FP, NULL, "all %llu connections", p->count);
		print_string(PRINT_FP, NULL, " to %s up", p->addrname[0]);
	}
	if (strcmp(ev, "connect_failed") && strcmp(ev, "ready")) {
		print_uint(PRINT_ANY, "up", " (%llu", p->up);
		print_uint(PRINT_ANY, "count", "/%llu up)", p->count);
	} else {
		print_uint(PRINT_JSON, "up", NULL, p->up);
		print_uint(PRINT_JSON, "count", NULL, p->count);
	}
	close_json_object();
	end_record();
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
	       "See connect-pool.md.\n", POOL_MAX_COUNT);
	help_docs();
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
		.report = report,
	};
	unsigned int closed;
	sigset_t mask, old;
	int c, err, sig_fd, ret;
	uint64_t v;

	optind = 0;
	while ((c = getopt_long(argc, argv, ":jh", opts, NULL)) != -1) {
		switch (c) {
		case 'n':
			if (parse_u64(optarg, 1, POOL_MAX_COUNT, &v))
				return usage_error("connect", "invalid --count '%s': 1..%d", optarg,
						   POOL_MAX_COUNT);
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
	err = pool_resolve(&p, argv[optind + 1]);
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
	p.seed = (unsigned int)(getpid() ^ pool_wall_ms());
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
		open_json_object(NULL);
		print_string(PRINT_ANY, "event", "%s:", "stopped");
		print_uint(PRINT_JSON, "time_ms", NULL, pool_wall_ms());
		print_uint(PRINT_ANY, "unattached", " unattached %llu", closed);
		print_string(PRINT_FP, NULL, " connection%s", closed == 1 ? "" : "s");
		print_string(PRINT_FP, NULL, " from mux '%s'", p.name);
		print_uint(PRINT_JSON, "count", NULL, p.count);
		close_json_object();
		end_record();
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
