/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Types and constants shared by the BPF data plane and user space. */
#ifndef KCM_SHARED_H
#define KCM_SHARED_H

#define KCM_MAX_TRANSPORTS 1024 /* slots in one mux's transport map */
#define KCM_MAX_MEMBERS 64	/* KCM sockets in one mux's group */
#define KCM_MAX_BATCH 1024	/* messages one redirect may carry */
#define KCM_MAX_PARSERS 16	/* parser programs (each with its transport map) in one mux */

enum kcm_policy_id {
	KCM_STEER_MESSAGES = 0, /* round-robin weighted by message count */
	KCM_STEER_BYTES = 1,	/* round-robin weighted by bytes */
};

/* Counters of one CPU (per-CPU array, key 0); user space sums them. */
struct kcm_counters {
	__u64 rx_msgs;		/* messages delivered to a KCM socket */
	__u64 rx_bytes;
	__u64 rx_redirects;	/* redirects (one per batch) */
	__u64 rx_drops;		/* batches with no live KCM socket to take them */
	__u64 err_too_big;	/* frames longer than the mux maximum */
	__u64 err_bad_len;	/* length fields that cannot be valid */
	__u64 need_more_hdr;	/* parser calls that found an incomplete header */
	__u64 requeued_msgs;	/* messages moved off a receive-disabled socket */
};

/* Per member counters (per-CPU array indexed by group slot). */
struct kcm_member_counters {
	__u64 msgs;
	__u64 bytes;
};

/*
 * Steering state: deficit round-robin over the receive-enabled members that have room
 * (struct kcm_credits). Each batch goes to the ready member that has been served least
 * (highest credit), ties broken in turn after @cursor, and costs it its messages (or
 * bytes): balance counts messages, not redirects, whatever the batch sizes. A member
 * without room does not bank credit while it waits.
 */
struct kcm_steer {
	struct bpf_spin_lock lock;
	__u32 nmembers;			/* valid entries in slots[] and credit[] */
	__u32 cursor;			/* index in slots[] of the member served last */
	__u32 hold;			/* group slot + 1 of the hold queue, 0: none */
	__u32 slots[KCM_MAX_MEMBERS];	/* group map slot of each member */
	__s64 credit[KCM_MAX_MEMBERS];	/* by group slot: minus the units served */
	/* the verdict's scratch while it scans (kept in the map so that the verifier does
	 * not track one state per candidate) */
	__s64 scan_credit;
	__u64 scan_least;
	__u32 scan_best;
	__u32 scan_low;
};

/*
 * Receive flow control: bytes given to each group slot by the verdicts, and bytes its
 * readers consumed (array, key 0, mmapable; one cache line per counter). given -
 * consumed is what a KCM socket holds unread, wherever the kernel keeps it (its
 * receive queue or its psock backlog). Both only grow; libkcm zeroes a slot's pair
 * before the slot is given out again.
 */
struct kcm_credit_line {
	__u64 bytes;
	__u64 pad[7];
};

struct kcm_credits {
	struct kcm_credit_line given[KCM_MAX_MEMBERS];		/* BPF atomic adds */
	struct kcm_credit_line consumed[KCM_MAX_MEMBERS];	/* libkcm atomic adds */
};

/* Flow-control state of a mux (array, key 0, mmapable), shared by BPF and libkcm. */
struct kcm_flow_state {
	__u64 saturated;	/* batches steered when no member had room (BPF) */
	__u64 brakes;		/* transport windows closed (controller) */
	__u64 releases;		/* and opened again */
	__u32 braked;		/* transports braked now */
	__u32 controller;	/* pid of the process running the controller, 0: none */
	__u32 brake_slot;	/* transport slot the brake program sends ballast to */
	__u32 pad;
	__u64 ballast[KCM_MAX_TRANSPORTS]; /* ballast bytes charged to each transport */
};

/*
 * Statistics of one transport (array indexed by transport slot, mmapable; libkcm zeroes
 * the slot at attach). The data plane adds the receive and parse counters, libkcm the
 * transmit counters and losses (atomic adds through the mmapped map).
 */
struct kcm_transport_stats {
	__u64 cookie;		/* SO_COOKIE of the transport these counters belong to */
	__u64 rx_msgs;		/* messages delivered to a KCM socket */
	__u64 rx_bytes;
	__u64 tx_msgs;		/* messages sent whole on it */
	__u64 tx_bytes;
	__u64 need_more_hdr;	/* parser calls that found an incomplete header */
	__u64 err_too_big;	/* frames longer than the mux maximum */
	__u64 err_bad_len;	/* length fields that cannot be valid */
	__u64 err_timeout;	/* SO_RCVTIMEO expired while a message was half assembled */
	__u64 rx_drops;		/* messages no KCM socket could take */
	__u64 lost_msgs;	/* in flight when the transport failed or was unattached */
	__u64 lost_bytes;	/* bytes received on it and never delivered */
	__u64 consumed_bytes;	/* bytes of whole messages passed on (delivered or dropped) */
	__u64 base_bytes;	/* bytes its owner had read itself before the attach */
	__u32 partial;		/* 1 while a message is being assembled */
	__u32 partial_bytes;	/* bytes of it the parser has seen */
	__u32 partial_need;	/* its whole length, 0 while the header is incomplete */
	__u32 accounted;	/* 1: losses counted (failure or unattach); 2: failure counted */
	__u64 fin_ms;		/* CLOCK_MONOTONIC ms of the FIN libkcm saw; it drains after */
	__s32 last_err;		/* errno that failed the transport (parser or TCP); 0 none */
	__u32 tcp_state;	/* last TCP state the health program saw (TCP_* numbers) */
};

/* Statistics of one KCM socket (array indexed by group slot, mmapable), zeroed when
 * the slot is given out; receive counts are in member_counters. */
struct kcm_member_stats {
	__u64 cookie;
	__u64 tx_msgs;
	__u64 tx_bytes;
	__u64 requeued_msgs;	/* moved off it by kcm_recv_disable() */
};

/* Totals of the mux kept by libkcm (array, key 0, mmapable). */
struct kcm_mux_stats {
	__u64 attaches;
	__u64 unattaches;
	__u64 tx_msgs;
	__u64 tx_bytes;
	__u64 tx_errors;	/* sends that failed on a transport (it was then left) */
	__u64 err_timeout;	/* assembly timeouts (SO_RCVTIMEO) */
	__u64 transport_failures; /* transports that failed (any reason) */
	__u64 lost_msgs;
	__u64 lost_bytes;
	__u64 auto_unattached;	/* failed transports unattached and closed by policy */
};

/*
 * Health thresholds of a mux (array, key 0): the health program (kcm_health.bpf.c)
 * sends an event to user space only when a transport crosses one. 0 turns one off.
 */
struct kcm_health_cfg {
	__u32 srtt_us;		/* smoothed RTT rises above this */
	__u32 rttvar_us;	/* RTT variance (mdev) rises above this */
	__u32 retrans;		/* total retransmissions reach this (then every further one) */
	__u32 rto;		/* 1: every RTO that fires */
	__u32 state;		/* 1: every TCP state change */
	__u32 pad;
};

enum kcm_event_type {
	KCM_EV_SRTT = 1,	/* smoothed RTT crossed health_cfg.srtt_us */
	KCM_EV_RTTVAR = 2,	/* RTT variance crossed health_cfg.rttvar_us */
	KCM_EV_RETRANS = 3,	/* a retransmission at or past health_cfg.retrans */
	KCM_EV_RTO = 4,		/* the retransmission timer fired */
	KCM_EV_STATE = 5,	/* TCP state changed (old_state -> state) */
	KCM_EV_PARSE_ERROR = 6,	/* the parser failed the transport (err) */
};

/* One event in the mux's ring buffer: which transport, why, and a TCP_INFO-style view. */
struct kcm_event {
	__u64 ts_ns;		/* bpf_ktime_get_ns() */
	__u64 cookie;
	__u32 type;		/* enum kcm_event_type */
	__u32 slot;		/* transport slot */
	__s32 err;		/* errno for PARSE_ERROR and STATE (sk_err), else 0 */
	__u32 value;		/* the measured value that crossed */
	__u32 threshold;	/* the limit it crossed */
	__u32 state;		/* TCP state now */
	__u32 old_state;
	__u32 srtt_us;
	__u32 rttvar_us;
	__u32 rto_us;
	__u32 snd_cwnd;
	__u32 packets_out;
	__u32 retrans_out;
	__u32 total_retrans;
	__u64 bytes_acked;
	__u64 bytes_received;
	__u16 family;
	__u16 local_port;
	__u16 remote_port;
	__u16 pad;
	__u8 local_addr[16];
	__u8 remote_addr[16];
};

#define KCM_EVENTS_SIZE (256 * 1024) /* bytes of the event ring buffer */

/* How the mux was created (array, key 0); read by kcm_mux_open() and status. */
struct kcm_config {
	__u32 len_offset;
	__u32 len_size;
	__u32 big_endian;
	__u32 policy;
	__s64 len_adjust;
	__u32 max_msg;
	__u32 batch;
	__s32 transport_rcvbuf;
	__s32 member_rcvbuf;
	__u32 generation;	/* bumped on every attach and unattach */
	__u32 version;		/* KCM_CONFIG_VERSION */
	__u32 owner_pid;	/* program whose exit should remove the pins; 0 = persistent */
	__u32 parsers;		/* 1: parser programs, one message per redirect (see below) */
	__u32 window;		/* flow control: unread bytes a member may hold */
	__u32 pad;
	char splitter[16];	/* shipped parser whose user-space build splits batches */
};

#define KCM_CONFIG_VERSION 4

/* Who attached a transport (array indexed by transport slot). */
struct kcm_transport_info {
	__u64 cookie;		/* SO_COOKIE; 0 = free slot */
	__u32 pid;		/* process holding @fd (for pidfd_getfd) */
	__s32 fd;
	__u16 family;		/* AF_INET or AF_INET6 */
	__u16 local_port;
	__u16 remote_port;
	__u16 parser;		/* id of the parser whose transport map holds it */
	__u8 local_addr[16];	/* IPv4 in the first 4 bytes */
	__u8 remote_addr[16];
};

/* A KCM socket of the group (array indexed by group slot). */
struct kcm_member_info {
	__u64 cookie;		/* SO_COOKIE; 0 = free slot */
	__u32 pid;		/* process that made it */
	__u32 enabled;		/* 0 after kcm_recv_disable() */
	__s32 fd;		/* its fd in @pid (for pidfd_getfd: status reads its memory) */
	__u32 hold;		/* 1: the mux's hold queue, not a KCM socket of a worker */
};

/*
 * A parser program of a mux in parser mode (array indexed by parser id). Parser 0 is
 * the default one, on the "transports" map; each other id has a transport map of its
 * own, pinned as "transports_<id>", with the same verdict steering into the same group.
 */
struct kcm_parser_info {
	__u32 prog_id;		/* 0 = free id */
	__u32 pad;
	__u8 tag[8];		/* BPF_TAG of the program: the same object loads to the same id */
	char name[16];		/* program name */
	char path[96];		/* object file it was loaded from (truncated) */
};

#endif /* KCM_SHARED_H */
