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
#include "output.h"
#include "loader.h"
#include "format.h"


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
	print_string(PRINT_FP, NULL, "%s", "          Rx-msgs     Rx-bytes    Tx-msgs     Tx-bytes"
		     "    Drops  Requeue   Attach Unattach   Failed     Lost\nmux   ");
	open_json_object("mux");
	print_uint(PRINT_ANY, "rx_msgs", " %10llu", t.rx_msgs);
	print_uint(PRINT_ANY, "rx_bytes", " %12llu", t.rx_bytes);
	print_uint(PRINT_JSON, "rx_redirects", NULL, t.rx_redirects);
	print_uint(PRINT_ANY, "tx_msgs", " %10llu", t.tx_msgs);
	print_uint(PRINT_ANY, "tx_bytes", " %12llu", t.tx_bytes);
	print_uint(PRINT_ANY, "rx_drops", " %8llu", t.rx_drops);
	print_uint(PRINT_ANY, "requeued_msgs", " %8llu", t.requeued_msgs);
	print_uint(PRINT_ANY, "attaches", " %8llu", t.attaches);
	print_uint(PRINT_ANY, "unattaches", " %8llu", t.unattaches);
	print_uint(PRINT_ANY, "transport_failures", " %8llu", t.transport_failures);
	print_uint(PRINT_ANY, "lost_msgs", " %8llu", t.lost_msgs);
	print_uint(PRINT_ANY, "need_more_hdr", "\n       parse errors: need-more-header %llu",
		   t.need_more_hdr);
	print_uint(PRINT_ANY, "err_too_big", ", too-big %llu", t.err_too_big);
	print_uint(PRINT_ANY, "err_bad_len", ", bad-length %llu", t.err_bad_len);
	print_uint(PRINT_ANY, "err_timeout", ", timeout %llu", t.err_timeout);
	print_uint(PRINT_ANY, "tx_errors", "; tx errors %llu", t.tx_errors);
	print_uint(PRINT_ANY, "lost_bytes", "; lost %llu bytes", t.lost_bytes);
	print_uint(PRINT_ANY, "auto_unattached", "; auto-unattached %llu", t.auto_unattached);
	print_nl();
	close_json_object();
}

static int show_member(const struct kcm_member_status *m, void *ctx)
{
	(void)ctx;
	if (m->state == KCM_SLOT_STALE)
		return 0; /* status shows those */
	open_json_object(NULL);
	print_uint(PRINT_ANY, "slot", "%-6llu", m->slot);
	print_uint(PRINT_JSON, "cookie", NULL, m->cookie);
	print_uint(PRINT_ANY, "rx_msgs", " %10llu", m->rx_msgs);
	print_uint(PRINT_ANY, "rx_bytes", " %12llu", m->rx_bytes);
	print_uint(PRINT_ANY, "tx_msgs", " %10llu", m->tx_msgs);
	print_uint(PRINT_ANY, "tx_bytes", " %12llu", m->tx_bytes);
	print_uint(PRINT_ANY, "requeued_msgs", " %8llu", m->requeued_msgs);
	print_uint(PRINT_ANY, "pid", " %-8llu", m->pid);
	print_string(PRINT_ANY, "state", " %s", kcm_slot_state_name(m->state));
	print_nl();
	close_json_object();
	return 0;
}

static int show_transport(const struct kcm_transport_status *t, void *ctx)
{
	char remote[64];

	(void)ctx;
	if (t->state != KCM_SLOT_ATTACHED)
		return 0; /* status shows those */
	fmt_sockaddr(remote, sizeof(remote), &t->remote);
	open_json_object(NULL);
	print_uint(PRINT_ANY, "slot", "%-6llu", t->slot);
	print_uint(PRINT_JSON, "cookie", NULL, t->cookie);
	print_uint(PRINT_JSON, "parser", NULL, t->parser);
	print_uint(PRINT_ANY, "rx_msgs", " %10llu", t->rx_msgs);
	print_uint(PRINT_ANY, "rx_bytes", " %12llu", t->rx_bytes);
	print_uint(PRINT_ANY, "tx_msgs", " %10llu", t->tx_msgs);
	print_uint(PRINT_ANY, "tx_bytes", " %12llu", t->tx_bytes);
	print_uint(PRINT_ANY, "need_more_hdr", " %6llu", t->need_more_hdr);
	print_uint(PRINT_ANY, "err_too_big", " %6llu", t->err_too_big);
	print_uint(PRINT_ANY, "err_bad_len", " %6llu", t->err_bad_len);
	print_uint(PRINT_ANY, "err_timeout", " %6llu", t->err_timeout);
	print_uint(PRINT_ANY, "rx_drops", " %6llu", t->rx_drops);
	print_uint(PRINT_ANY, "lost_msgs", " %6llu", t->lost_msgs);
	print_uint(PRINT_JSON, "lost_bytes", NULL, t->lost_bytes);
	print_uint(PRINT_JSON, "partial", NULL, t->partial);
	print_int(PRINT_JSON, "last_err", NULL, t->last_err);
	print_string(PRINT_JSON, "tcp_state", NULL, tcp_state_name(t->tcp_state));
	print_string(PRINT_ANY, "remote", " %-22s", remote);
	print_string(PRINT_FP, NULL, " %s", t->last_err ? strerror(t->last_err) : "-");
	print_nl();
	close_json_object();
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

/* One record of mux @name through its handle @mux (left open). */
static int show_stats(const char *name, struct kcm_mux *mux)
{
	open_json_object(NULL);
	print_string(PRINT_ANY, "name", "mux %s\n", name);
	print_uint(PRINT_JSON, "time_ms", NULL, (uint64_t)time(NULL) * 1000);
	show_totals(mux);
	show_flow(mux);
	open_json_array("members");
	print_string(PRINT_FP, NULL, "%s", "KCM       Rx-msgs     Rx-bytes    Tx-msgs     Tx-bytes"
		     "  Requeue Pid      Status\n");
	kcm_member_foreach(mux, show_member, NULL);
	close_json_array();
	open_json_array("transports");
	print_string(PRINT_FP, NULL, "%s", "Psock     Rx-msgs     Rx-bytes    Tx-msgs     Tx-bytes"
		     "   NHdr TooBig BadLen  Tmout  Drops   Lost Remote                 Error\n");
	kcm_transport_foreach(mux, show_transport, NULL);
	close_json_array();
	close_json_object();
	return EXIT_OK;
}

struct pass {
	int n, err;
	struct kcm_mux *only;	/* the one mux asked for, open for every pass */
};

static int show_one(const char *name, void *ctx)
{
	struct pass *p = ctx;

	if (p->n++ && !env.json)
		putchar('\n');
	if (p->only) {
		show_stats(name, p->only);
	} else {
		struct kcm_mux *mux = open_whole(name);

		if (!mux || show_stats(name, mux))
			p->err = EXIT_FAIL;
		kcm_mux_close(mux);
	}
	return 0;
}

/* One pass over NAME or every mux: one JSON array (one line) or tables. */
/* One pass over every mux, or over @only's open handle. */
static int show_all(const char *name, struct kcm_mux *only)
{
	struct pass p = { .only = only };

	if (env.json)
		json_start_array(NULL);
	if (only)
		show_one(name, &p);
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
	struct kcm_mux *mux = NULL;
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
		name = argv[optind];
		if (kcm_name_check(name))
			return usage_error("stats", "invalid name '%s'", name);
		mux = open_whole(name); /* no such mux: exit 1 before any output */
		if (!mux)
			return EXIT_FAIL;
		snprintf(path, sizeof(path), "%s/%s", kcm_pin_root(), name);
	}
	err = show_all(name, mux);
	if (watch) {
		signal(SIGINT, on_signal);
		signal(SIGTERM, on_signal);
	}
	while (watch && !err && !stop) {
		for (uint64_t i = 0; i < watch * 10 && !stop; i++)
			usleep(100 * 1000);
		if (stop)
			break;
		if (name && access(path, F_OK)) {
			err = fail("mux '%s' is gone", name);
			break;
		}
		if (!env.json)
			putchar('\n');
		err = show_all(name, mux);
	}
	kcm_mux_close(mux);
	return err;
}
