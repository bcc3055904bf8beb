// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * kcm-loader monitor: stream the transport health events of one mux. libkcm's
 * kcm_monitor_open/poll/close load, attach and arm (kcm_monitor.h); monitor_print.c
 * prints the events; this file takes the options and runs the loop.
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

#include "kcm.h"
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

static const char *arm_hint(int err)
{
	switch (err) {
	case ESRCH:
		return "its owner exited";
	case EBADF:
	case ESTALE:
		return "its owner closed it";
	case EPERM:
		return "pidfd_getfd needs CAP_SYS_PTRACE over its owner";
	case ENOPROTOOPT:
		return "the setsockopt program did not run for it: is the socket in another "
		       "cgroup tree than --cgroup?";
	default:
		return strerror(err);
	}
}

/* One event printed: --count stops the run after that many. */
static int on_event(const struct kcm_monitor_event *e, void *ctx)
{
	struct monitor *m = ctx;

	switch (e->type) {
	case KCM_MON_ARMED:
		if (env.verbose)
			fprintf(stderr, "kcm-loader: armed transport %llu (slot %u)\n",
				U(e->cookie), e->slot);
		return 0;
	case KCM_MON_ARM_FAILED:
		fprintf(stderr, "kcm-loader: failed to arm transport %llu (slot %u, pid %u fd %d) "
			"of mux '%s': %s\n", U(e->cookie), e->slot, e->pid, e->fd, m->name,
			arm_hint(e->err));
		return 0;
	case KCM_MON_BRAKE:
	case KCM_MON_RELEASE:
		monitor_print_brake(m, e);
		break;
	default:
		monitor_print_event(e);
		break;
	}
	m->events++;
	if (!m->max_events || m->events < m->max_events)
		return 0;
	stop = 1;
	return 1;
}

static void report_cost(struct monitor *m)
{
	struct kcm_monitor_info info = { .sz = sizeof(info) };
	double per = 0;
	int err = kcm_monitor_info(m->mon, &info);
	const char *what = info.traced ? "tracing" : "sock_ops";

	if (err) {
		fprintf(stderr, "kcm-loader: failed to read the %s programs' statistics: %s\n",
			what, strerror(-err));
		return;
	}
	if (info.run_cnt)
		per = (double)info.run_time_ns / info.run_cnt;
	open_json_object(NULL);
	open_json_object("stats_cost");
	print_string(PRINT_JSON, "prog", NULL, info.traced ? "kcm_health_trace" : "kcm_health");
	print_string(PRINT_ANY, "path", "%s cost:", what);
	print_uint(PRINT_JSON, "prog_id", NULL, info.prog_id);
	print_uint(PRINT_ANY, "run_cnt", " %llu callbacks", info.run_cnt);
	print_uint(PRINT_ANY, "run_time_ns", ", %llu ns", info.run_time_ns);
	print_uint(PRINT_JSON, "ns_per_callback", NULL, (uint64_t)(per + 0.5));
	if (!env.json)
		printf(", %.1f ns per callback", per); /* text keeps the decimal */
	close_json_object();
	close_json_object();
	end_record();
}

static int ready(const char *path)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

	if (fd < 0)
		return fail("failed to create ready file %s: %s", path, strerror(errno));
	close(fd);
	return 0;
}

static int run(struct monitor *m, const struct kcm_monitor_opts *o, const char *ready_file,
	       __u64 duration)
{
	__u64 deadline = duration ? mono_ns() + duration * 1000000000ULL : 0;
	struct kcm_monitor_info info = { .sz = sizeof(info) };
	int err;

	m->mux = kcm_mux_open(m->name);
	if (!m->mux)
		return fail_lib("failed to open mux", errno);
	m->mon = kcm_monitor_open(m->mux, o);
	if (!m->mon)
		return fail("failed to monitor mux '%s': %s%s", m->name, kcm_last_error(),
			    errno == EOPNOTSUPP ? " (`kcm-loader check` says why)" : "");
	if (!kcm_monitor_info(m->mon, &info) && info.why_traced[0])
		fprintf(stderr, "kcm-loader: %s; watching the transports through tracepoints "
			"instead (every TCP socket of the machine passes them)\n",
			info.why_traced);
	/* the first poll arms the transports already attached */
	err = kcm_monitor_poll(m->mon, 0, on_event, m);
	if (err >= 0 && ready_file && ready(ready_file))
		return EXIT_FAIL;
	while (!stop && err >= 0) {
		if (deadline && mono_ns() >= deadline)
			break;
		err = kcm_monitor_poll(m->mon, POLL_MS, on_event, m);
		if (err == -EINTR)
			err = 0;
	}
	if (err >= 0 && !(m->max_events && m->events >= m->max_events))
		err = kcm_monitor_poll(m->mon, 0, on_event, m); /* what came before the end */
	if (err < 0 && err != -EINTR)
		return fail("failed to poll the events of mux '%s': %s", m->name,
			    strerror(-err));
	if (o->stats_cost)
		report_cost(m);
	if (env.verbose && !kcm_monitor_info(m->mon, &info) && info.stale)
		fprintf(stderr, "kcm-loader: skipped %llu events from before the start\n",
			U(info.stale));
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
	struct kcm_monitor_opts o = { .sz = sizeof(o) };
	struct monitor mon = { 0 }, *m = &mon;
	const char *ready_file = NULL;
	char root[256];
	uint64_t v, duration = 0;
	int c, err;

	optind = 0;
	err = EXIT_USAGE;
	while ((c = getopt_long(argc, argv, ":jh", opts, NULL)) != -1) {
		switch (c) {
		case 'j':
			env.json = true;
			break;
		case 'T':
			o.trace = true;
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
				o.srtt_us = v;
			else if (c == 'r')
				o.rttvar_us = v;
			else
				o.retrans = v;
			break;
		case 'o':
			o.rto = true;
			break;
		case 'S':
			o.state = true;
			break;
		case 'g':
			o.cgroup = optarg;
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
			o.stats_cost = true;
			break;
		case 'p':
			if (parse_u64(optarg, 1, INT32_MAX, &v)) {
				usage_error("monitor", "--arm-pid takes a process ID, not '%s'",
					    optarg);
				goto out;
			}
			o.arm_pid = v;
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
	if (!o.cgroup) {
		err = kcm_cgroup2_root(root, sizeof(root));
		if (err) {
			err = fail("failed to find cgroup v2 in /proc/mounts: %s (mount it with "
				   "`mount -t cgroup2 none /sys/fs/cgroup/unified`, or pass "
				   "--cgroup)", err == -ENOENT ? "not mounted" : strerror(-err));
			goto out;
		}
		o.cgroup = root;
	}
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	err = run(m, &o, ready_file, duration);
	kcm_monitor_close(m->mon);
	kcm_mux_close(m->mux);
out:
	return err;
}
