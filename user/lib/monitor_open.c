// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* kcm_monitor_open() and kcm_monitor_close(): load the health programs on the mux's maps,
 * choose the sock_ops or the tracing path, attach through bpf_links; and undo it all. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "kcm_health.skel.h"
#include "monitor_state.h"

/* The sock_ops path where transports can be armed (unless asked to trace), else tracing. */
static void choose_path(struct kcm_monitor *m, bool trace)
{
	struct bpf_program *p;
	char seen[256];

	m->traced = trace || kcm_health_check_arm(seen, sizeof(seen)) == -EOPNOTSUPP;
	if (m->traced && !trace)
		snprintf(m->why_traced, sizeof(m->why_traced), "%s", seen);
	bpf_program__set_autoload(m->skel->progs.kcm_health, !m->traced);
	bpf_program__set_autoload(m->skel->progs.kcm_health_arm, !m->traced);
	for (size_t i = 0; (p = kcm_health_trace_prog(m->skel, i)); i++)
		bpf_program__set_autoload(p, m->traced);
}

static int attach(struct kcm_monitor *m, const char *cgroup)
{
	struct bpf_program *p;
	int err;

	/* the tracing path sees every socket; the cgroup is checked all the same */
	m->cgroup_fd = open(cgroup, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (m->cgroup_fd < 0)
		return kcm_fail(-errno, "failed to open cgroup %s", cgroup);
	for (size_t i = 0; m->traced && (p = kcm_health_trace_prog(m->skel, i)); i++) {
		m->trace_link[i] = bpf_program__attach(p);
		if (!m->trace_link[i])
			return kcm_fail(-errno, "failed to attach %s", bpf_program__name(p));
	}
	if (m->traced)
		return 0;
	m->sockops_link = bpf_program__attach_cgroup(m->skel->progs.kcm_health, m->cgroup_fd);
	if (!m->sockops_link) {
		err = -errno;
		return kcm_fail(err, "failed to attach sock_ops program to cgroup %s%s", cgroup,
				err == -EPERM ? " (run as root)" : "");
	}
	m->arm_link = bpf_program__attach_cgroup(m->skel->progs.kcm_health_arm, m->cgroup_fd);
	if (!m->arm_link)
		return kcm_fail(-errno, "failed to attach setsockopt program to cgroup %s", cgroup);
	return 0;
}

static int start(struct kcm_monitor *m, const struct kcm_monitor_opts *o, const char *cgroup)
{
	struct kcm_health_cfg cfg = { .srtt_us = o->srtt_us, .rttvar_us = o->rttvar_us,
				      .retrans = o->retrans, .rto = o->rto, .state = o->state };
	struct kcm_flow f = { .sz = sizeof(f) };
	__u32 zero = 0;
	int err;

	m->cfg_fd = kcm_mux_map_fd(m->mux, "health_cfg");
	m->events_fd = kcm_mux_map_fd(m->mux, "events");
	if (m->cfg_fd < 0 || m->events_fd < 0)
		return kcm_fail(-ENOENT, "the mux has no health_cfg or events map");
	m->skel = kcm_health_open();
	if (!m->skel)
		return kcm_fail(-errno, "failed to open the health programs");
	if (kcm_mux_share_maps(m->mux, m->skel->obj, ""))
		return kcm_fail(-EPROTO, "%s (was the mux created by an older kcm-bpf? destroy it "
				"and create it again)", kcm_last_error());
	choose_path(m, o->trace);
	err = kcm_health_bpf__load(m->skel);
	if (err && m->traced && !o->trace)
		return kcm_fail(-EOPNOTSUPP, "monitor cannot run on this kernel: it cannot arm "
				"transports (monitor-arm: %s) and its tracing programs do not load "
				"(monitor-trace, Linux 5.19)", m->why_traced);
	if (err)
		return kcm_fail(err, "failed to load the health programs");
	if (bpf_map_update_elem(m->cfg_fd, &zero, &cfg, BPF_ANY))
		return kcm_fail(-errno, "failed to write the thresholds");
	if (o->stats_cost) {
		/* like kernel.bpf_stats_enabled=1, but only while this fd lives, even on SIGKILL */
		m->stats_fd = bpf_enable_stats(BPF_STATS_RUN_TIME);
		if (m->stats_fd < 0)
			return kcm_fail(-errno, "failed to turn on BPF run-time statistics");
	}
	m->rb = ring_buffer__new(m->events_fd, kcm_monitor_on_ring, m, NULL);
	if (!m->rb)
		return kcm_fail(-errno, "failed to read the events ring");
	m->start_ns = kcm_monitor_now_ns();
	if (!kcm_mux_flow(m->mux, &f))
		m->brakes_seen = f.brakes;
	return attach(m, cgroup);
}

struct kcm_monitor *kcm_monitor_open(struct kcm_mux *mux, const struct kcm_monitor_opts *opts)
{
	struct kcm_monitor_opts o = { 0 };
	struct kcm_monitor *m;
	char root[PATH_MAX];
	const char *cgroup;
	int err;

	if (!mux || !opts || opts->sz < offsetof(struct kcm_monitor_opts, cgroup) +
				       sizeof(opts->cgroup)) {
		errno = EINVAL;
		return NULL;
	}
	memcpy(&o, opts, opts->sz < sizeof(o) ? opts->sz : sizeof(o));
	if (o.arm_pid && (o.arm_pid < 0 || (kill(o.arm_pid, 0) && errno == ESRCH))) {
		errno = -kcm_fail(-ESRCH, "no process %d to arm the transports of", o.arm_pid);
		return NULL;
	}
	cgroup = o.cgroup;
	if (!cgroup) {
		err = kcm_cgroup2_root(root, sizeof(root));
		if (err) {
			errno = -kcm_fail(err, "failed to find cgroup v2 in /proc/mounts (mount it "
					  "with `mount -t cgroup2 none /sys/fs/cgroup/unified`)");
			return NULL;
		}
		cgroup = root;
	}
	m = calloc(1, sizeof(*m));
	if (!m) {
		errno = ENOMEM;
		return NULL;
	}
	m->mux = mux;
	m->arm_pid = o.arm_pid;
	m->cgroup_fd = m->stats_fd = m->cfg_fd = m->events_fd = -1;
	err = start(m, &o, cgroup);
	if (err) {
		kcm_monitor_close(m);
		errno = -err;
		return NULL;
	}
	return m;
}

void kcm_monitor_close(struct kcm_monitor *m)
{
	__u32 zero = 0;

	if (!m)
		return;
	if (m->skel && m->arm_link)
		kcm_monitor_disarm_all(m);
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
	free(m);
}
