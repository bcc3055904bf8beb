// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * kcm-loader monitor: stream the transport health events of one mux. monitor_progs.c
 * loads the health programs on the mux's own maps and attaches them (through bpf_links:
 * they go away with this process, even when it is killed); monitor_print.c prints
 * events; this file takes the options, reads the ring buffer and flow control's braking
 * episodes, and runs the loop.
 */
#include <errno.h>
#include <fcntl.h>
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
#include "kcm_health.h"
#include "kcm_health.skel.h"
#include "json.h"
#include "loader.h"
#include "output.h"
#include "monitor.h"

#define POLL_MS 100

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

static __u64 mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (__u64)ts.tv_sec * 1000000000ULL + ts.tv_nsec;
}

/* One event printed: --count stops the run after that many. */
static void counted(struct monitor *m)
{
	m->events++;
	if (m->max_events && m->events >= m->max_events)
		stop = 1;
}

/*
 * Braking episodes: from the first transport braked to the moment none is. Looked at
 * every poll, so an episode shorter than that shows as one "release" with the brakes
 * counted since the last look.
 */
static void check_brakes(struct monitor *m)
{
	struct kcm_flow f = { .sz = sizeof(f) };
	__u64 now = mono_ns();
	uint64_t brakes;

	if (!m->mux || kcm_mux_flow(m->mux, &f))
		return;
	brakes = f.brakes - m->brakes_seen;
	if (f.braked && !m->brake_start_ns) {
		m->brake_start_ns = now;
		m->brake_peak = 0;
		monitor_print_brake(m, "brake", &f, now, brakes);
		counted(m);
	}
	if (f.braked > m->brake_peak)
		m->brake_peak = f.braked;
	if (!f.braked && (m->brake_start_ns || brakes)) {
		if (!m->brake_start_ns)
			m->brake_start_ns = now;
		monitor_print_brake(m, "release", &f, now, brakes);
		counted(m);
		m->brake_start_ns = 0;
		m->brakes_seen = f.brakes;
	}
}

static int on_event(void *ctx, void *data, size_t size)
{
	struct monitor *m = ctx;
	struct kcm_event e = { 0 };

	memcpy(&e, data, size < sizeof(e) ? size : sizeof(e));
	/* left in the ring by an earlier run (or by the data plane while nobody listened) */
	if (e.ts_ns < m->start_ns) {
		m->stale++;
		return 0;
	}
	monitor_print_event(m, &e);
	counted(m);
	return 0;
}

static void report_cost(struct monitor *m)
{
	struct bpf_prog_info info = { 0 };
	const char *what = m->traced ? "tracing" : "sock_ops";
	double per = 0;
	int err = program_cost(m, &info);

	if (err) {
		fprintf(stderr, "kcm-loader: failed to read the %s programs' statistics: %s\n",
			what, strerror(-err));
		return;
	}
	if (info.run_cnt)
		per = (double)info.run_time_ns / info.run_cnt;
	open_json_object(NULL);
	open_json_object("stats_cost");
	print_string(PRINT_JSON, "prog", NULL, m->traced ? "kcm_health_trace" : "kcm_health");
	print_string(PRINT_ANY, "path", "%s cost:", what);
	print_uint(PRINT_JSON, "prog_id", NULL, info.id);
	print_uint(PRINT_ANY, "run_cnt", " %llu callbacks", info.run_cnt);
	print_uint(PRINT_ANY, "run_time_ns", ", %llu ns", info.run_time_ns);
	print_uint(PRINT_JSON, "ns_per_callback", NULL, (uint64_t)(per + 0.5));
	if (!env.json)
		printf(", %.1f ns per callback", per); /* text keeps the decimal */
	close_json_object();
	close_json_object();
	end_record();
}

static void monitor_close(struct monitor *m)
{
	__u32 zero = 0;

	if (m->skel && m->arm_link)
		disarm_all(m);
	bpf_link__destroy(m->arm_link);
	bpf_link__destroy(m->sockops_link);
	for (size_t i = 0; i < sizeof(m->trace_link) / sizeof(m->trace_link[0]); i++)
		bpf_link__destroy(m->trace_link[i]);
	ring_buffer__free(m->rb);
	if (m->skel && m->cfg_fd >= 0 && (m->sockops_link || m->traced)) {
		struct kcm_health_cfg off = { 0 };

		bpf_map_update_elem(m->cfg_fd, &zero, &off, BPF_ANY);
	}
	kcm_health_bpf__destroy(m->skel);
	if (m->stats_fd >= 0)
		close(m->stats_fd); /* the kernel stops timing programs with the last such fd */
	if (m->cgroup_fd >= 0)
		close(m->cgroup_fd);
	kcm_mux_close(m->mux);
}

static int ready(const char *path)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

	if (fd < 0)
		return fail("failed to create ready file %s: %s", path, strerror(errno));
	close(fd);
	return 0;
}

static int run(struct monitor *m, const char *cgroup, const char *ready_file, __u64 duration,
	       bool cost)
{
	__u64 last_scan, deadline = duration ? mono_ns() + duration * 1000000000ULL : 0;
	__u32 zero = 0;
	int err;

	m->mux = kcm_mux_open(m->name);
	if (!m->mux)
		return fail_lib("failed to open mux", errno);
	m->cfg_fd = kcm_mux_map_fd(m->mux, "health_cfg");
	m->events_fd = kcm_mux_map_fd(m->mux, "events");
	m->info_fd = kcm_mux_map_fd(m->mux, "transport_info");
	m->slot_fd = kcm_mux_map_fd(m->mux, "transport_slot");
	m->skel = health_open();
	if (!m->skel)
		return fail("failed to open the health programs: %s", strerror(errno));
	if (reuse_maps(m))
		return EXIT_FAIL;
	choose_path(m);
	err = kcm_health_bpf__load(m->skel);
	if (err && m->traced && !m->want_trace)
		return fail("monitor cannot run on this kernel: it cannot arm transports "
			    "(monitor-arm) and its tracing programs do not load (monitor-trace, "
			    "Linux 5.19); `kcm-loader check` says why");
	if (err)
		return fail_lib("failed to load the health programs", -err);
	if (bpf_map_update_elem(m->cfg_fd, &zero, &m->cfg, BPF_ANY))
		return fail("failed to write the thresholds of mux '%s': %s", m->name,
			    strerror(errno));
	if (cost) {
		/* like kernel.bpf_stats_enabled=1, but only while this fd lives, even on SIGKILL */
		m->stats_fd = bpf_enable_stats(BPF_STATS_RUN_TIME);
		if (m->stats_fd < 0)
			return fail("failed to turn on BPF run-time statistics: %s",
				    strerror(errno));
	}
	m->rb = ring_buffer__new(m->events_fd, on_event, m, NULL);
	if (!m->rb)
		return fail("failed to read the events of mux '%s': %s", m->name, strerror(errno));
	m->start_ns = mono_ns();
	{
		struct kcm_flow f = { .sz = sizeof(f) };

		if (!kcm_mux_flow(m->mux, &f))
			m->brakes_seen = f.brakes;
	}
	if (monitor_attach(m, cgroup))
		return EXIT_FAIL;
	/* choose_path() asked the kernel whether arming works */
	if (!m->traced)
		arm_new(m);
	last_scan = mono_ns();
	if (ready_file && ready(ready_file))
		return EXIT_FAIL;
	while (!stop) {
		err = ring_buffer__poll(m->rb, POLL_MS);
		if (err < 0 && err != -EINTR)
			return fail("failed to poll the events of mux '%s': %s", m->name,
				    strerror(-err));
		if (stop || (deadline && mono_ns() >= deadline))
			break;
		check_brakes(m);
		if (!m->traced && mono_ns() - last_scan >= RESCAN_NS) {
			arm_new(m);
			last_scan = mono_ns();
		}
	}
	ring_buffer__consume(m->rb);
	if (cost)
		report_cost(m);
	if (m->stale && env.verbose)
		fprintf(stderr, "kcm-loader: skipped %llu events from before the start\n",
			U(m->stale));
	return EXIT_OK;
}

static void help(void)
{
	printf("Usage: kcm-loader monitor NAME [--json] [--srtt-us N] [--rttvar-us N]\n"
	       "         [--retrans N] [--rto] [--state] [--cgroup PATH] [--count N]\n"
	       "         [--duration S] [--ready-file PATH] [--stats-cost] [--arm-pid PID]\n"
	       "         [--trace]\n\n"
	       "Stream the health events of the transports of mux NAME, one line each:\n"
	       "  --srtt-us N     smoothed RTT rose above N us (once; again after it fell back)\n"
	       "  --rttvar-us N   RTT variance rose above N us (likewise)\n"
	       "  --retrans N     every retransmission once N segments were retransmitted\n"
	       "  --rto           every retransmission timeout\n"
	       "  --state         every TCP state change (a transport's death is always shown,\n"
	       "                  with its error: 104 reset, 110 timed out, 0 closed)\n"
	       "Parse errors of the data plane are shown too, and flow control's braking\n"
	       "episodes: \"brake\" when the mux starts closing transports' TCP windows because\n"
	       "its KCM sockets are full (or none exists), \"release\" when all are open again.\n\n"
	       "  --cgroup PATH   attach to this cgroup v2 (default: its root, which sees every\n"
	       "                  socket; a narrower one sees only sockets created in it)\n"
	       "  --count N       exit after N events\n"
	       "  --duration S    exit after S seconds\n"
	       "  --ready-file P  create P once the programs are attached and transports armed\n"
	       "  --stats-cost    time the programs and print their cost per callback\n"
	       "  --arm-pid PID   also arm the transports PID holds (when the owner recorded\n"
	       "                  at attach passed them on)\n"
	       "  --trace         watch through tracepoints, not armed sock_ops callbacks: the\n"
	       "                  only way where `kcm-loader check` lacks monitor-arm (Linux\n"
	       "                  6.1), chosen there by itself; sees every TCP socket of the\n"
	       "                  machine, whatever its cgroup, and costs more per segment\n"
	       "  --json          one JSON object per event (fields: monitor.md)\n\n"
	       "Each transport's callbacks are armed through its owner's fd (pidfd_getfd) and\n"
	       "disarmed on exit; the programs are attached through links, so they go away with\n"
	       "this process. One monitor per mux: the events and thresholds are the mux's.\n");
	help_docs();
}

int cmd_monitor(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "srtt-us", required_argument, NULL, 's' },
		{ "rttvar-us", required_argument, NULL, 'r' },
		{ "retrans", required_argument, NULL, 'R' },
		{ "rto", no_argument, NULL, 'o' },
		{ "state", no_argument, NULL, 'S' },
		{ "cgroup", required_argument, NULL, 'g' },
		{ "count", required_argument, NULL, 'c' },
		{ "duration", required_argument, NULL, 'd' },
		{ "ready-file", required_argument, NULL, 'f' },
		{ "stats-cost", no_argument, NULL, 'C' },
		{ "arm-pid", required_argument, NULL, 'p' },
		{ "trace", no_argument, NULL, 'T' },
		{ "help", no_argument, NULL, 'h' },
		{},
	};
	struct monitor *m;
	const char *cgroup = NULL, *ready_file = NULL;
	char root[256];
	uint64_t v, duration = 0;
	bool cost = false;
	int c, err;

	m = calloc(1, sizeof(*m));
	if (!m)
		return fail("out of memory");
	m->cgroup_fd = m->stats_fd = -1;
	m->cfg_fd = m->events_fd = m->info_fd = m->slot_fd = -1;

	optind = 0;
	err = EXIT_USAGE;
	while ((c = getopt_long(argc, argv, ":jh", opts, NULL)) != -1) {
		switch (c) {
		case 'j':
			env.json = true;
			break;
		case 'T':
			m->want_trace = true;
			break;
		case 's':
		case 'r':
		case 'R':
			if (parse_u64(optarg, 1, UINT32_MAX, &v)) {
				usage_error("monitor", "--%s takes 1..%u, not '%s'",
					    c == 's' ? "srtt-us" : c == 'r' ? "rttvar-us" : "retrans",
					    UINT32_MAX, optarg);
				goto out;
			}
			if (c == 's')
				m->cfg.srtt_us = v;
			else if (c == 'r')
				m->cfg.rttvar_us = v;
			else
				m->cfg.retrans = v;
			break;
		case 'o':
			m->cfg.rto = 1;
			break;
		case 'S':
			m->cfg.state = 1;
			break;
		case 'g':
			cgroup = optarg;
			break;
		case 'c':
			if (parse_u64(optarg, 1, UINT64_MAX, &m->max_events)) {
				usage_error("monitor", "--count takes a positive number, not '%s'",
					    optarg);
				goto out;
			}
			break;
		case 'd':
			if (parse_u64(optarg, 1, 86400 * 365, &duration)) {
				usage_error("monitor", "--duration takes seconds (>= 1), not '%s'",
					    optarg);
				goto out;
			}
			break;
		case 'f':
			ready_file = optarg;
			break;
		case 'C':
			cost = true;
			break;
		case 'p':
			if (parse_u64(optarg, 1, INT32_MAX, &v) || !pid_alive(v)) {
				usage_error("monitor", "--arm-pid takes a running process, not '%s'",
					    optarg);
				goto out;
			}
			m->arm_pid = v;
			break;
		case 'h':
			help();
			err = EXIT_OK;
			goto out;
		default:
			bad_option("monitor", c, argv);
			goto out;
		}
	}
	if (argc - optind != 1) {
		usage_error("monitor", "expected one mux NAME");
		goto out;
	}
	m->name = argv[optind];
	if (kcm_name_check(m->name)) {
		usage_error("monitor", "invalid name '%s'", m->name);
		goto out;
	}
	if (!cgroup) {
		err = kcm_cgroup2_root(root, sizeof(root));
		if (err) {
			err = fail("failed to find cgroup v2 in /proc/mounts: %s (mount it with "
				   "`mount -t cgroup2 none /sys/fs/cgroup/unified`, or pass "
				   "--cgroup)", err == -ENOENT ? "not mounted" : strerror(-err));
			goto out;
		}
		cgroup = root;
	}
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	err = run(m, cgroup, ready_file, duration, cost);
	monitor_close(m);
out:
	free(m);
	return err;
}
