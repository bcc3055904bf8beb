/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Watching a mux's transports (kcm-loader monitor is built on this): health events from
 * sock_ops callbacks armed on each transport (or, on kernels that cannot arm them, from
 * tracepoints), parse errors of the data plane, and flow control's braking episodes.
 * Included by kcm.h.
 *
 *	struct kcm_monitor_opts o = { .sz = sizeof(o), .srtt_us = 2000, .state = true };
 *	struct kcm_monitor *m = kcm_monitor_open(mux, &o);
 *	while (kcm_monitor_poll(m, 100, on_event, ctx) >= 0)
 *		;
 *	kcm_monitor_close(m);
 *
 * Needs what kcm-loader monitor needs: root (CAP_BPF, CAP_NET_ADMIN, CAP_PERFMON and
 * CAP_SYS_PTRACE over the transports' owners) and cgroup v2. The programs are attached
 * through bpf_links: they go away with the process, even when it is killed. One monitor
 * per mux: the thresholds and the event ring are the mux's.
 */
#ifndef KCM_MONITOR_H
#define KCM_MONITOR_H

struct kcm_monitor;

struct kcm_monitor_opts {
	size_t sz;		/* sizeof(struct kcm_monitor_opts) */
	const char *cgroup;	/* cgroup v2 to attach to; NULL: its root (sees every socket) */
	uint32_t srtt_us;	/* KCM_MON_SRTT when smoothed RTT rises above this; 0: off */
	uint32_t rttvar_us;	/* KCM_MON_RTTVAR likewise */
	uint32_t retrans;	/* every retransmission once this many segments were; 0: off */
	bool rto;		/* every retransmission timeout */
	bool state;		/* every TCP state change (a transport's death always shows) */
	bool trace;		/* tracepoints even where transports can be armed */
	pid_t arm_pid;		/* also arm the transports this process holds (when the owner
				 * recorded at attach passed them on); ESRCH if not running */
	bool stats_cost;	/* time the programs: kcm_monitor_info()'s run_cnt/run_time_ns */
};

enum kcm_monitor_event_type {
	KCM_MON_SRTT = 1,	/* smoothed RTT crossed srtt_us (value > threshold) */
	KCM_MON_RTTVAR = 2,	/* RTT variance crossed rttvar_us */
	KCM_MON_RETRANS = 3,	/* a retransmission at or past retrans (value: how many) */
	KCM_MON_RTO = 4,	/* the retransmission timer fired (value: in a row) */
	KCM_MON_STATE = 5,	/* TCP state changed: old_state -> state, err the socket error */
	KCM_MON_PARSE_ERROR = 6, /* the parser failed the transport (err) */
	KCM_MON_BRAKE = 16,	/* flow control started closing transports' windows */
	KCM_MON_RELEASE = 17,	/* every window is open again (episode_ns, peak_braked) */
	KCM_MON_ARMED = 18,	/* a transport's callbacks were armed (pid, fd: its owner) */
	KCM_MON_ARM_FAILED = 19, /* they could not be (err); reported once per transport */
};

struct kcm_monitor_event {
	size_t sz;		/* sizeof(struct kcm_monitor_event) as the library knows it */
	enum kcm_monitor_event_type type;
	uint64_t time_ns;	/* CLOCK_MONOTONIC */
	uint64_t cookie;	/* the transport's socket cookie */
	uint32_t slot;		/* its slot in the mux */
	int err;		/* errno: PARSE_ERROR, STATE (sk_err), ARM_FAILED */
	uint32_t value;		/* the measured value that crossed */
	uint32_t threshold;	/* the limit it crossed */
	uint32_t state, old_state; /* TCP_* */
	struct sockaddr_storage local, remote;	/* ss_family 0 when unknown */
	/* the transport's tcp_info when the event happened */
	uint32_t srtt_us, rttvar_us, rto_us, snd_cwnd, packets_out, retrans_out;
	uint32_t total_retrans;
	uint64_t bytes_acked, bytes_received;
	pid_t pid;		/* ARMED, ARM_FAILED: the process holding the transport */
	int fd;			/* as its fd */
	/* BRAKE, RELEASE: the mux's flow control (kcm_mux_flow()) at that moment */
	const struct kcm_flow *flow;
	uint64_t episode_ns;	/* RELEASE: since the first transport was braked */
	uint32_t peak_braked;	/* RELEASE: most transports braked at once */
	uint64_t brakes;	/* RELEASE: windows closed in the episode */
};

typedef int (*kcm_monitor_fn)(const struct kcm_monitor_event *e, void *ctx);

struct kcm_monitor_info {
	size_t sz;
	bool traced;		/* tracing path: the kernel cannot arm (or opts.trace) */
	char why_traced[256];	/* what check found, when it chose tracing by itself */
	unsigned int armed;	/* transports armed now */
	uint64_t events;	/* events given to callbacks */
	uint64_t stale;		/* events skipped: left in the ring from before the start */
	uint32_t prog_id;	/* stats_cost: the sock_ops program (or first tracing one) */
	uint64_t run_cnt;	/* stats_cost: program runs since the start */
	uint64_t run_time_ns;
};

/* Loads and attaches the health programs on @mux's maps and arms its transports; NULL
 * with errno (kcm_last_error() says what failed). EOPNOTSUPP: this kernel can neither arm
 * transports nor load the tracing programs (Linux 5.19). @mux must stay open. */
struct kcm_monitor *kcm_monitor_open(struct kcm_mux *mux, const struct kcm_monitor_opts *opts);
/* Waits up to @timeout_ms for events and calls @fn for each (a non-zero return stops
 * the call early and is returned); arms transports attached since the last look.
 * Returns the number of events, or -errno (-EINTR on a signal). */
int kcm_monitor_poll(struct kcm_monitor *m, int timeout_ms, kcm_monitor_fn fn, void *ctx);
/* An fd that is readable when events wait (for epoll); brakes are seen by polling. */
int kcm_monitor_fd(const struct kcm_monitor *m);
int kcm_monitor_info(const struct kcm_monitor *m, struct kcm_monitor_info *out);
/* Disarms the transports, detaches the programs, turns the thresholds off. */
void kcm_monitor_close(struct kcm_monitor *m);
const char *kcm_monitor_event_name(enum kcm_monitor_event_type type);

#endif /* KCM_MONITOR_H */
