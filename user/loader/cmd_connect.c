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
#include "loader.h"
#include "pool.h"
#include "transport_args.h"

static void event_start(const char *event, unsigned int idx)
{
	json_start_object(NULL);
	json_string("event", event);
	json_uint("time_ms", pool_wall_ms());
	if (strcmp(event, "ready"))
		json_uint("slot", idx);
}

static void event_end(struct pool *p)
{
	json_uint("up", p->up);
	json_uint("count", p->count);
	json_end_object();
	json_done();
}

static void report_json(struct pool *p, const struct pool_event *e)
{
	struct slot *s = &p->slots[e->slot];

	event_start(e->event, e->slot);
	if (!strcmp(e->event, "connect_failed")) {
		json_string("remote", e->remote);
		json_string("stage", e->stage);
		json_uint("attempt", s->attempts);
		json_int("err", e->err);
		json_string("error", strerror(e->err));
		json_uint("retry_ms", e->retry_ms);
	} else if (!strcmp(e->event, "connected")) {
		json_string("remote", s->remote);
		json_string("local", s->local);
		json_uint("cookie", s->cookie);
		json_uint("attempt", s->attempts);
	} else if (!strcmp(e->event, "failed")) {
		json_string("remote", s->remote);
		json_string("local", s->local);
		json_uint("cookie", s->cookie);
		json_string("reason", e->ev ? kcm_fail_reason_name(e->ev->reason) : "unattached");
		json_int("err", e->err);
		json_string("error", e->err ? strerror(e->err) : "");
		json_uint("lost_msgs", e->ev ? e->ev->lost_msgs : 0);
		json_uint("lost_bytes", e->ev ? e->ev->lost_bytes : 0);
		json_uint("uptime_ms", e->uptime_ms);
		json_uint("retry_ms", e->retry_ms);
	}
	event_end(p);
}

static void report_text(struct pool *p, const struct pool_event *e)
{
	struct slot *s = &p->slots[e->slot];

	if (!strcmp(e->event, "connect_failed")) {
		printf("connect to %s failed: %s%s; retry in %u ms (slot %u, attempt %u)\n",
		       e->remote, strcmp(e->stage, "attach") ? "" : "attach: ", strerror(e->err),
		       e->retry_ms, e->slot, s->attempts);
	} else if (!strcmp(e->event, "connected")) {
		printf("connected %s from %s slot %u cookie %llu (%u/%u up)\n", s->remote,
		       s->local, e->slot, (unsigned long long)s->cookie, p->up, p->count);
	} else if (!strcmp(e->event, "failed")) {
		unsigned long long lost = e->ev ? e->ev->lost_msgs : 0;

		printf("lost cookie %llu (%s slot %u): %s", (unsigned long long)s->cookie,
		       s->remote, e->slot,
		       e->ev ? kcm_fail_reason_name(e->ev->reason) : "unattached");
		if (e->err)
			printf(" (%s)", strerror(e->err));
		printf(", %llu message%s lost; reconnect in %u ms (%u/%u up)\n", lost,
		       lost == 1 ? "" : "s", e->retry_ms, p->up, p->count);
	} else if (!strcmp(e->event, "ready")) {
		printf("all %u connections to %s up\n", p->count, p->addrname[0]);
	}
	fflush(stdout);
}

static void report(struct pool *p, const struct pool_event *e)
{
	(env.json ? report_json : report_text)(p, e);
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
		if (env.json) {
			json_start_object(NULL);
			json_string("event", "stopped");
			json_uint("time_ms", pool_wall_ms());
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
