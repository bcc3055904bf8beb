// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * kcm-loader stats: the counters KCM keeps in /proc/net/kcm and /proc/net/kcm_stats, per
 * mux, per KCM socket and per transport, as libkcm's inspection API reads them (kcm.h).
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "kcm.h"
#include "json.h"
#include "loader.h"
#include "format.h"

#define U(x) ((unsigned long long)(x))

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

static void show_totals(struct kcm_mux *mux)
{
	struct kcm_mux_counters t = { .sz = sizeof(t) };

	kcm_mux_counters(mux, &t);
	if (env.json) {
		json_start_object("mux");
		json_uint("rx_msgs", t.rx_msgs);
		json_uint("rx_bytes", t.rx_bytes);
		json_uint("rx_redirects", t.rx_redirects);
		json_uint("rx_drops", t.rx_drops);
		json_uint("tx_msgs", t.tx_msgs);
		json_uint("tx_bytes", t.tx_bytes);
		json_uint("tx_errors", t.tx_errors);
		json_uint("need_more_hdr", t.need_more_hdr);
		json_uint("err_too_big", t.err_too_big);
		json_uint("err_bad_len", t.err_bad_len);
		json_uint("err_timeout", t.err_timeout);
		json_uint("requeued_msgs", t.requeued_msgs);
		json_uint("attaches", t.attaches);
		json_uint("unattaches", t.unattaches);
		json_uint("transport_failures", t.transport_failures);
		json_uint("auto_unattached", t.auto_unattached);
		json_uint("lost_msgs", t.lost_msgs);
		json_uint("lost_bytes", t.lost_bytes);
		json_end_object();
		return;
	}
	printf("%-6s %10s %12s %10s %12s %8s %8s %8s %8s %8s %8s\n", "", "Rx-msgs", "Rx-bytes",
	       "Tx-msgs", "Tx-bytes", "Drops", "Requeue", "Attach", "Unattach", "Failed",
	       "Lost");
	printf("%-6s %10llu %12llu %10llu %12llu %8llu %8llu %8llu %8llu %8llu %8llu\n", "mux",
	       U(t.rx_msgs), U(t.rx_bytes), U(t.tx_msgs), U(t.tx_bytes), U(t.rx_drops),
	       U(t.requeued_msgs), U(t.attaches), U(t.unattaches), U(t.transport_failures),
	       U(t.lost_msgs));
	printf("       parse errors: need-more-header %llu, too-big %llu, bad-length %llu, "
	       "timeout %llu; tx errors %llu; lost %llu bytes; auto-unattached %llu\n",
	       U(t.need_more_hdr), U(t.err_too_big), U(t.err_bad_len), U(t.err_timeout),
	       U(t.tx_errors), U(t.lost_bytes), U(t.auto_unattached));
}

static int show_member(const struct kcm_member_status *m, void *ctx)
{
	const char *state = kcm_slot_state_name(m->state);

	(void)ctx;
	if (m->state == KCM_SLOT_STALE)
		return 0; /* status shows those */
	if (env.json) {
		json_start_object(NULL);
		json_uint("slot", m->slot);
		json_uint("cookie", m->cookie);
		json_uint("pid", m->pid);
		json_string("state", state);
		json_uint("rx_msgs", m->rx_msgs);
		json_uint("rx_bytes", m->rx_bytes);
		json_uint("tx_msgs", m->tx_msgs);
		json_uint("tx_bytes", m->tx_bytes);
		json_uint("requeued_msgs", m->requeued_msgs);
		json_end_object();
	} else {
		printf("%-6u %10llu %12llu %10llu %12llu %8llu %-8u %s\n", m->slot, U(m->rx_msgs),
		       U(m->rx_bytes), U(m->tx_msgs), U(m->tx_bytes), U(m->requeued_msgs), m->pid,
		       state);
	}
	return 0;
}

static int show_transport(const struct kcm_transport_status *t, void *ctx)
{
	char remote[64], err[32];

	(void)ctx;
	if (t->state != KCM_SLOT_ATTACHED)
		return 0; /* status shows those */
	fmt_sockaddr(remote, sizeof(remote), &t->remote);
	snprintf(err, sizeof(err), "%s", t->last_err ? strerror(t->last_err) : "-");
	if (env.json) {
		json_start_object(NULL);
		json_uint("slot", t->slot);
		json_uint("cookie", t->cookie);
		json_string("remote", remote);
		json_uint("parser", t->parser);
		json_uint("rx_msgs", t->rx_msgs);
		json_uint("rx_bytes", t->rx_bytes);
		json_uint("tx_msgs", t->tx_msgs);
		json_uint("tx_bytes", t->tx_bytes);
		json_uint("need_more_hdr", t->need_more_hdr);
		json_uint("err_too_big", t->err_too_big);
		json_uint("err_bad_len", t->err_bad_len);
		json_uint("err_timeout", t->err_timeout);
		json_uint("rx_drops", t->rx_drops);
		json_uint("lost_msgs", t->lost_msgs);
		json_uint("lost_bytes", t->lost_bytes);
		json_uint("partial", t->partial);
		json_int("last_err", t->last_err);
		json_string("tcp_state", tcp_state_name(t->tcp_state));
		json_end_object();
	} else {
		printf("%-6u %10llu %12llu %10llu %12llu %6llu %6llu %6llu %6llu %6llu %6llu "
		       "%-22s %s\n", t->slot, U(t->rx_msgs), U(t->rx_bytes), U(t->tx_msgs),
		       U(t->tx_bytes), U(t->need_more_hdr), U(t->err_too_big), U(t->err_bad_len),
		       U(t->err_timeout), U(t->rx_drops), U(t->lost_msgs), remote, err);
	}
	return 0;
}

/* A read-only handle of a whole mux; NULL after saying why not. */
static struct kcm_mux *open_whole(const char *name)
{
	struct kcm_mux_open_opts oo = { .sz = sizeof(oo), .inspect = true };
	struct kcm_mux_state st = { .sz = sizeof(st) };
	struct kcm_mux *mux = kcm_mux_open_opts(name, &oo);

	if (!mux) {
		fail_lib("failed to open mux", errno);
		return NULL;
	}
	if (!kcm_mux_state(mux, &st) && st.health == KCM_MUX_INCOMPLETE) {
		fail("mux '%s' is incomplete (no %s): `kcm-loader clean` removes it", name,
		     st.missing);
		kcm_mux_close(mux);
		return NULL;
	}
	return mux;
}

static int show_stats(const char *name)
{
	struct kcm_mux *mux = open_whole(name);

	if (!mux)
		return EXIT_FAIL;
	if (env.json) {
		json_start_object(NULL);
		json_string("name", name);
		json_uint("time_ms", (uint64_t)time(NULL) * 1000);
	} else {
		printf("mux %s\n", name);
	}
	show_totals(mux);
	show_flow(name);
	if (env.json)
		json_start_array("members");
	else
		printf("%-6s %10s %12s %10s %12s %8s %-8s %s\n", "KCM", "Rx-msgs", "Rx-bytes",
		       "Tx-msgs", "Tx-bytes", "Requeue", "Pid", "Status");
	kcm_member_foreach(mux, show_member, NULL);
	if (env.json)
		json_end_array();
	if (env.json)
		json_start_array("transports");
	else
		printf("%-6s %10s %12s %10s %12s %6s %6s %6s %6s %6s %6s %-22s %s\n", "Psock",
		       "Rx-msgs", "Rx-bytes", "Tx-msgs", "Tx-bytes", "NHdr", "TooBig", "BadLen",
		       "Tmout", "Drops", "Lost", "Remote", "Error");
	kcm_transport_foreach(mux, show_transport, NULL);
	if (env.json) {
		json_end_array();
		json_end_object();
	}
	kcm_mux_close(mux);
	return EXIT_OK;
}

struct pass {
	int n, err;
};

static int show_one(const char *name, void *ctx)
{
	struct pass *p = ctx;

	if (p->n++ && !env.json)
		putchar('\n');
	if (show_stats(name))
		p->err = EXIT_FAIL;
	return 0;
}

/* One pass over NAME or every mux: one JSON array (one line) or tables. */
static int show_all(const char *only)
{
	struct pass p = { 0 };

	if (env.json)
		json_start_array(NULL);
	if (only)
		show_one(only, &p);
	else
		kcm_mux_list(show_one, &p);
	if (env.json) {
		json_end_array();
		json_done();
	} else if (!p.n) {
		printf("no muxes (nothing under %s)\n", kcm_pin_root());
	}
	fflush(stdout);
	return p.err;
}

int cmd_stats(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "watch", required_argument, NULL, 'w' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{},
	};
	const char *name = NULL;
	uint64_t watch = 0;
	char path[300] = "";
	int c, err;

	optind = 0;
	while ((c = getopt_long(argc, argv, ":jh", opts, NULL)) != -1) {
		switch (c) {
		case 'w':
			if (parse_u64(optarg, 1, 3600, &watch))
				return usage_error("stats", "--watch takes 1..3600 seconds, not '%s'",
						   optarg);
			break;
		case 'j':
			env.json = true;
			break;
		case 'h':
			printf("Usage: kcm-loader stats [NAME] [--watch SECONDS] [--json]\n\n"
			       "Counters of each mux, KCM socket and transport, like /proc/net/kcm:\n"
			       "messages and bytes received and sent, parse errors by kind\n"
			       "(need-more-header, too big, bad length, timeout), drops, requeues,\n"
			       "attaches, unattaches, failed transports and the messages lost with\n"
			       "them. The same maps read with `bpftool map dump pinned\n"
			       "/sys/fs/bpf/kcm/NAME/transport_stats` (and mux_stats, member_stats,\n"
			       "counters).\n\n"
			       "  --watch SECONDS  repeat every SECONDS until interrupted (with\n"
			       "                   --json, one line per pass)\n");
			return EXIT_OK;
		default:
			return bad_option("stats", c, argv);
		}
	}
	if (argc - optind > 1)
		return usage_error("stats", "expected at most one NAME");
	if (optind < argc) {
		struct kcm_mux *mux;

		name = argv[optind];
		if (kcm_name_check(name))
			return usage_error("stats", "invalid name '%s'", name);
		mux = open_whole(name); /* no such mux: exit 1 before any output */
		if (!mux)
			return EXIT_FAIL;
		kcm_mux_close(mux);
		snprintf(path, sizeof(path), "%s/%s", kcm_pin_root(), name);
	}
	if (!watch)
		return show_all(name);
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	while (!stop) {
		err = show_all(name);
		if (err || (name && access(path, F_OK)))
			return err ? err : fail("mux '%s' is gone", name);
		for (uint64_t i = 0; i < watch * 10 && !stop; i++)
			usleep(100 * 1000);
		if (!env.json && !stop)
			putchar('\n');
	}
	return EXIT_OK;
}
