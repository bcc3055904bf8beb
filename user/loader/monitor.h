/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* kcm-loader monitor: loading, attaching and arming the health programs
 * (monitor_progs.c, with monitor_hz.c), printing records (monitor_print.c), and options
 * and the run loop (cmd_monitor.c). */
#ifndef KCM_LOADER_MONITOR_H
#define KCM_LOADER_MONITOR_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <linux/bpf.h>

#include "kcm.h"
#include "kcm_shared.h"
#include "format.h"

#define RESCAN_NS (500ULL * 1000 * 1000) /* look for transports attached later */
#define U(x) ((unsigned long long)(x))

struct kcm_health_bpf;
struct bpf_link;
struct ring_buffer;

struct monitor {
	const char *name;
	struct kcm_mux *mux;			/* its maps; kcm_mux_flow(): braking episodes */
	int cfg_fd, events_fd, info_fd, slot_fd; /* health_cfg, events, transport_info/slot */
	struct kcm_health_bpf *skel;
	struct bpf_link *sockops_link, *arm_link;
	bool traced;				/* tracepoints instead of arming */
	bool want_trace;			/* --trace */
	struct bpf_link *trace_link[4];
	struct ring_buffer *rb;
	int cgroup_fd, stats_fd;
	struct kcm_health_cfg cfg;
	__u64 start_ns;
	uint64_t events, stale;
	uint64_t max_events;
	pid_t arm_pid;				/* --arm-pid: also arm transports this process holds */
	__u64 armed[KCM_MAX_TRANSPORTS];	/* cookie armed in each slot */
	__u64 refused[KCM_MAX_TRANSPORTS];	/* cookie we failed to arm (reported once) */
	unsigned int narmed;
	__u64 brake_start_ns;			/* 0: not braking */
	uint64_t brakes_seen;			/* kcm_flow.brakes at the last look */
	uint32_t brake_peak;			/* most transports braked in this episode */
};

/* monitor_print.c */
struct kcm_event;
void monitor_print_event(struct monitor *m, struct kcm_event *e);
/* "brake" when the mux starts closing windows, "release" when every window is open. */
void monitor_print_brake(struct monitor *m, const char *what, const struct kcm_flow *f,
			 __u64 now, uint64_t brakes);

/* monitor_hz.c: HZ from how fast /proc/timer_list's jiffies advance (cached), 0 unknown */
unsigned int monitor_estimate_hz(void);

/* monitor_progs.c */
#define ARM_UNSUPPORTED "this kernel's bpf_setsockopt() cannot set TCP_BPF_SOCK_OPS_CB_FLAGS " \
	"from a cgroup/setsockopt program (Linux 6.12 added it), so monitor cannot arm " \
	"transports here"
struct kcm_health_bpf *health_open(void);
void arm_new(struct monitor *m);
void disarm_all(struct monitor *m);
int reuse_maps(struct monitor *m);
/* The sock_ops path where transports can be armed (or unless --trace), else tracing. */
void choose_path(struct monitor *m);
int monitor_attach(struct monitor *m, const char *cgroup);
/* Run count and time of the programs that ran, summed into @sum. */
int program_cost(struct monitor *m, struct bpf_prog_info *sum);

#endif /* KCM_LOADER_MONITOR_H */
