// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * kcm-loader stats: the counters KCM keeps in /proc/net/kcm and /proc/net/kcm_stats, per
 * mux, per KCM socket and per transport, read from the mux's pinned maps.
 */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "kcm.h"
#include "json.h"
#include "loader.h"
#include "pinned.h"

#define U(x) ((unsigned long long)(x))

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

static void show_totals(struct pinned *p, int ncpu)
{
	struct kcm_counters rx = pinned_counters(p, ncpu);
	struct kcm_mux_stats m = { 0 };
	__u32 key = 0;

	bpf_map_lookup_elem(p->map[KCM_MAP_MUX_STATS], &key, &m);
	if (env.json) {
		json_start_object("mux");
		json_uint("rx_msgs", rx.rx_msgs);
		json_uint("rx_bytes", rx.rx_bytes);
		json_uint("rx_redirects", rx.rx_redirects);
		json_uint("rx_drops", rx.rx_drops);
		json_uint("tx_msgs", m.tx_msgs);
		json_uint("tx_bytes", m.tx_bytes);
		json_uint("tx_errors", m.tx_errors);
		json_uint("need_more_hdr", rx.need_more_hdr);
		json_uint("err_too_big", rx.err_too_big);
		json_uint("err_bad_len", rx.err_bad_len);
		json_uint("err_timeout", m.err_timeout);
		json_uint("requeued_msgs", rx.requeued_msgs);
		json_uint("attaches", m.attaches);
		json_uint("unattaches", m.unattaches);
		json_uint("transport_failures", m.transport_failures);
		json_uint("auto_unattached", m.auto_unattached);
		json_uint("lost_msgs", m.lost_msgs);
		json_uint("lost_bytes", m.lost_bytes);
		json_end_object();
		return;
	}
	printf("%-6s %10s %12s %10s %12s %8s %8s %8s %8s %8s %8s\n", "", "Rx-msgs", "Rx-bytes",
	       "Tx-msgs", "Tx-bytes", "Drops", "Requeue", "Attach", "Unattach", "Failed",
	       "Lost");
	printf("%-6s %10llu %12llu %10llu %12llu %8llu %8llu %8llu %8llu %8llu %8llu\n", "mux",
	       U(rx.rx_msgs), U(rx.rx_bytes), U(m.tx_msgs), U(m.tx_bytes), U(rx.rx_drops),
	       U(rx.requeued_msgs), U(m.attaches), U(m.unattaches), U(m.transport_failures),
	       U(m.lost_msgs));
	printf("       parse errors: need-more-header %llu, too-big %llu, bad-length %llu, "
	       "timeout %llu; tx errors %llu; lost %llu bytes; auto-unattached %llu\n",
	       U(rx.need_more_hdr), U(rx.err_too_big), U(rx.err_bad_len), U(m.err_timeout),
	       U(m.tx_errors), U(m.lost_bytes), U(m.auto_unattached));
}

static void show_members(struct pinned *p, int ncpu)
{
	struct kcm_member_counters *mc = calloc(ncpu, sizeof(*mc));
	struct kcm_member_info info;
	struct kcm_member_stats ms;
	__u64 cookie;

	if (env.json)
		json_start_array("kcm_sockets");
	else
		printf("%-6s %10s %12s %10s %12s %8s %-8s %s\n", "KCM", "Rx-msgs", "Rx-bytes",
		       "Tx-msgs", "Tx-bytes", "Requeue", "Pid", "Status");
	for (__u32 slot = 0; mc && slot < KCM_MAX_MEMBERS; slot++) {
		__u64 msgs = 0, bytes = 0;

		if (bpf_map_lookup_elem(p->map[KCM_MAP_GROUP], &slot, &cookie) ||
		    bpf_map_lookup_elem(p->map[KCM_MAP_MEMBER_INFO], &slot, &info) ||
		    info.cookie != cookie || info.hold)
			continue;
		if (!bpf_map_lookup_elem(p->map[KCM_MAP_MEMBER_COUNTERS], &slot, mc))
			for (int c = 0; c < ncpu; c++) {
				msgs += mc[c].msgs;
				bytes += mc[c].bytes;
			}
		if (bpf_map_lookup_elem(p->map[KCM_MAP_MEMBER_STATS], &slot, &ms) ||
		    ms.cookie != cookie)
			memset(&ms, 0, sizeof(ms));
		if (env.json) {
			json_start_object(NULL);
			json_uint("slot", slot);
			json_uint("cookie", cookie);
			json_uint("pid", info.pid);
			json_string("status", info.enabled ? "receiving" : "recv-disabled");
			json_uint("rx_msgs", msgs);
			json_uint("rx_bytes", bytes);
			json_uint("tx_msgs", ms.tx_msgs);
			json_uint("tx_bytes", ms.tx_bytes);
			json_uint("requeued_msgs", ms.requeued_msgs);
			json_end_object();
		} else {
			printf("%-6u %10llu %12llu %10llu %12llu %8llu %-8u %s\n", slot, U(msgs),
			       U(bytes), U(ms.tx_msgs), U(ms.tx_bytes), U(ms.requeued_msgs),
			       info.pid, info.enabled ? "receiving" : "recv-disabled");
		}
	}
	free(mc);
	if (env.json)
		json_end_array();
}

static void show_transports(struct pinned *p)
{
	struct kcm_transport_stats ts;
	struct kcm_transport_info info;
	char remote[64], err[32];
	__u64 cookie;

	if (env.json)
		json_start_array("transports");
	else
		printf("%-6s %10s %12s %10s %12s %6s %6s %6s %6s %6s %6s %-22s %s\n", "Psock",
		       "Rx-msgs", "Rx-bytes", "Tx-msgs", "Tx-bytes", "NHdr", "TooBig", "BadLen",
		       "Tmout", "Drops", "Lost", "Remote", "Error");
	for (__u32 slot = 0; slot < KCM_MAX_TRANSPORTS; slot++) {
		int map;

		if (bpf_map_lookup_elem(p->map[KCM_MAP_TRANSPORT_INFO], &slot, &info) ||
		    !info.cookie || info.parser >= KCM_MAX_PARSERS)
			continue;
		map = p->parser_map[info.parser];
		if (map < 0 || bpf_map_lookup_elem(map, &slot, &cookie) || cookie != info.cookie)
			continue;
		if (bpf_map_lookup_elem(p->map[KCM_MAP_TRANSPORT_STATS], &slot, &ts) ||
		    ts.cookie != cookie)
			memset(&ts, 0, sizeof(ts));
		fmt_addr(remote, sizeof(remote), info.family, info.remote_addr, info.remote_port);
		snprintf(err, sizeof(err), "%s", ts.last_err ? strerror(ts.last_err) : "-");
		if (env.json) {
			json_start_object(NULL);
			json_uint("slot", slot);
			json_uint("cookie", cookie);
			json_string("remote", remote);
			json_uint("parser", info.parser);
			json_uint("rx_msgs", ts.rx_msgs);
			json_uint("rx_bytes", ts.rx_bytes);
			json_uint("tx_msgs", ts.tx_msgs);
			json_uint("tx_bytes", ts.tx_bytes);
			json_uint("need_more_hdr", ts.need_more_hdr);
			json_uint("err_too_big", ts.err_too_big);
			json_uint("err_bad_len", ts.err_bad_len);
			json_uint("err_timeout", ts.err_timeout);
			json_uint("rx_drops", ts.rx_drops);
			json_uint("lost_msgs", ts.lost_msgs);
			json_uint("lost_bytes", ts.lost_bytes);
			json_uint("partial", ts.partial);
			json_int("last_err", ts.last_err);
			json_string("tcp_state", tcp_state_name(ts.tcp_state));
			json_end_object();
		} else {
			printf("%-6u %10llu %12llu %10llu %12llu %6llu %6llu %6llu %6llu %6llu %6llu "
			       "%-22s %s\n", slot, U(ts.rx_msgs), U(ts.rx_bytes), U(ts.tx_msgs),
			       U(ts.tx_bytes), U(ts.need_more_hdr), U(ts.err_too_big),
			       U(ts.err_bad_len), U(ts.err_timeout), U(ts.rx_drops),
			       U(ts.lost_msgs), remote, err);
		}
	}
	if (env.json)
		json_end_array();
}

static int show_stats(const char *name, int ncpu)
{
	struct pinned p;
	int err = pinned_open_whole(name, &p);

	if (err)
		return err;
	if (env.json) {
		json_start_object(NULL);
		json_string("name", name);
		json_uint("time_ms", (uint64_t)time(NULL) * 1000);
		show_totals(&p, ncpu);
		show_flow(name);
		show_members(&p, ncpu);
		show_transports(&p);
		json_end_object();
	} else {
		printf("mux %s\n", name);
		show_totals(&p, ncpu);
		show_flow(name);
		show_members(&p, ncpu);
		show_transports(&p);
	}
	pinned_close(&p);
	return EXIT_OK;
}

/* One pass over NAME or every mux: one JSON array (one line) or tables. */
static int show_all(const char *only, int ncpu)
{
	int err = EXIT_OK, n = 0;
	struct dirent *de;
	DIR *d;

	if (env.json)
		json_start_array(NULL);
	if (only) {
		err = show_stats(only, ncpu);
		n = 1;
	} else {
		d = opendir(KCM_PIN_ROOT);
		while (d && (de = readdir(d))) {
			if (de->d_name[0] == '.')
				continue;
			if (n++ && !env.json)
				putchar('\n');
			if (show_stats(de->d_name, ncpu))
				err = EXIT_FAIL;
		}
		if (d)
			closedir(d);
	}
	if (env.json) {
		json_end_array();
		json_done();
	} else if (!n) {
		printf("no muxes (nothing under %s)\n", KCM_PIN_ROOT);
	}
	fflush(stdout);
	return err;
}

int cmd_stats(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "watch", required_argument, NULL, 'w' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{},
	};
	int c, ncpu = libbpf_num_possible_cpus(), err;
	const char *name = NULL;
	uint64_t watch = 0;
	char path[256];

	optind = 0;
	while ((c = getopt_long(argc, argv, ":w:jh", opts, NULL)) != -1) {
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
			       "them. --watch repeats every SECONDS until interrupted (with --json,\n"
			       "one line per pass). The same maps read with `bpftool map dump\n"
			       "pinned /sys/fs/bpf/kcm/NAME/transport_stats` (and mux_stats,\n"
			       "member_stats, counters).\n");
			return EXIT_OK;
		default:
			return bad_option("stats", c, argv);
		}
	}
	if (argc - optind > 1)
		return usage_error("stats", "expected at most one NAME");
	if (ncpu <= 0)
		return fail("failed to count possible CPUs: %s", strerror(-ncpu));
	if (optind < argc) {
		name = argv[optind];
		err = pinned_name_arg("stats", name, path, sizeof(path));
		if (err)
			return err;
	}
	if (!watch)
		return show_all(name, ncpu);
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	while (!stop) {
		err = show_all(name, ncpu);
		if (err || (name && access(path, F_OK)))
			return err ? err : fail("mux '%s' is gone", name);
		for (uint64_t i = 0; i < watch * 10 && !stop; i++)
			usleep(100 * 1000);
		if (!env.json && !stop)
			putchar('\n');
	}
	return EXIT_OK;
}
