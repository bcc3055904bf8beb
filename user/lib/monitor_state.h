/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* A running monitor (kcm_monitor.h): monitor.c loads, polls and closes; monitor_arm.c
 * arms and disarms the transports' callbacks. */
#ifndef KCM_LIB_MONITOR_H
#define KCM_LIB_MONITOR_H

#include "internal.h"

struct bpf_link;
struct ring_buffer;

/* An attached transport as the last scan saw it. */
struct kcm_monitored {
	__u64 cookie;
	__u32 slot;
	pid_t pid;
	int fd;
};

struct kcm_monitor {
	struct kcm_mux *mux;
	int cfg_fd, events_fd;
	struct kcm_health_bpf *skel;
	struct bpf_link *sockops_link, *arm_link, *trace_link[4];
	struct ring_buffer *rb;
	int cgroup_fd, stats_fd;
	bool traced;
	char why_traced[256];
	pid_t arm_pid;
	__u64 start_ns, last_scan_ns;
	uint64_t events, stale;
	__u64 armed[KCM_MAX_TRANSPORTS];	/* cookie armed in each slot */
	__u64 refused[KCM_MAX_TRANSPORTS];	/* cookie we failed to arm (reported once) */
	unsigned int narmed;
	struct kcm_monitored seen[KCM_MAX_TRANSPORTS];
	unsigned int nseen;
	__u64 brake_start_ns;			/* 0: not braking */
	uint64_t brakes_seen;			/* kcm_flow.brakes at the last look */
	uint32_t brake_peak;
	/* during kcm_monitor_poll() */
	kcm_monitor_fn fn;
	void *ctx;
	int ret;				/* what fn returned, when not 0 */
	int polled;				/* events given to fn in this call */
};

#define KCM_MONITOR_RESCAN_NS (500ULL * 1000 * 1000) /* look for transports attached later */

/* Give @e to the caller's function, unless it already asked to stop. */
static inline void kcm_monitor_deliver(struct kcm_monitor *m, struct kcm_monitor_event *e)
{
	if (m->ret || !m->fn)
		return;
	e->sz = sizeof(*e);
	m->events++;
	m->polled++;
	m->ret = m->fn(e, m->ctx);
}

static inline __u64 kcm_monitor_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (__u64)ts.tv_sec * 1000000000ULL + ts.tv_nsec;
}
/* monitor.c: the event ring's callback (ring_buffer__new) */
int kcm_monitor_on_ring(void *ctx, void *data, size_t size);
/* monitor_arm.c: arm what was attached since the last scan; disarm all at the end */
void kcm_monitor_arm_new(struct kcm_monitor *m);
void kcm_monitor_disarm_all(struct kcm_monitor *m);

#endif /* KCM_LIB_MONITOR_H */
