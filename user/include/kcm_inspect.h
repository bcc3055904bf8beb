/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* libkcm's inspection API, part of kcm.h (include that). See libkcm(3). */
#ifndef KCM_INSPECT_H
#define KCM_INSPECT_H

#ifndef KCM_H
#error "include <kcm.h>, not <kcm_inspect.h>"
#endif

/*
 * Inspection: what /proc/net/kcm and /proc/net/kcm_stats give AF_KCM users, read from a
 * pinned mux's maps (kcm-loader status uses nothing else). Open the mux with
 * kcm_mux_open_opts() and .inspect = true to look at one that is incomplete or from
 * another version; such a handle can only be inspected and closed.
 */
struct kcm_mux_open_opts {
	size_t sz;		/* sizeof(struct kcm_mux_open_opts) */
	bool inspect;		/* open what is there; never fails for a missing pin */
};
struct kcm_mux *kcm_mux_open_opts(const char *name, const struct kcm_mux_open_opts *opts);

enum kcm_mux_health {
	KCM_MUX_OK,
	KCM_MUX_INCOMPLETE,	/* a pin is missing (a create that crashed) */
	KCM_MUX_ORPHANED,	/* the program that owned it exited */
	KCM_MUX_BROKEN,		/* a map does not have the programs it was pinned with */
	KCM_MUX_OTHER_VERSION,	/* made by another kcm-bpf version (or config unreadable) */
};
/* "ok", "incomplete", "orphaned", "broken", "other-version" */
const char *kcm_mux_health_name(enum kcm_mux_health health);

struct kcm_mux_state {
	size_t sz;		/* sizeof(struct kcm_mux_state) */
	enum kcm_mux_health health;
	char missing[32];	/* KCM_MUX_INCOMPLETE: the first pin missing */
	char framing[32];	/* "u32be+4"...; "parsers" for parser programs; "?" unknown */
	char splitter[16];	/* "" when none */
	uint32_t max_msg;
	uint32_t batch;
	enum kcm_policy policy;
	pid_t owner_pid;	/* 0: persistent */
	uint32_t generation;	/* changes on every attach and unattach */
	unsigned int stale;	/* transport and KCM socket entries whose socket closed */
	unsigned int bad_programs; /* attachments that are not the pinned programs */
	uint32_t config_version; /* of its config map (KCM_MUX_OTHER_VERSION); 0 unreadable */
};
int kcm_mux_state(struct kcm_mux *mux, struct kcm_mux_state *out);

enum kcm_slot_state {
	KCM_SLOT_ATTACHED,	/* a transport in its parser's map, recorded as such */
	KCM_SLOT_UNRECORDED,	/* a transport in the map with no record of its owner */
	KCM_SLOT_STALE,		/* a record whose socket left the map (it closed) */
	KCM_SLOT_RECEIVING,	/* a KCM socket in the group, receiving */
	KCM_SLOT_RECV_DISABLED,	/* a KCM socket after kcm_recv_disable() */
};
/* "attached", "attached-unrecorded", "stale", "receiving", "recv-disabled" */
const char *kcm_slot_state_name(enum kcm_slot_state state);

struct kcm_transport_status {
	size_t sz;
	uint32_t slot;
	uint64_t cookie;
	enum kcm_slot_state state;
	pid_t pid;		/* the process holding @fd (0: unknown) */
	int fd;
	bool owner_alive;
	unsigned int parser;	/* id of the parser program reading it */
	struct sockaddr_storage local, remote;	/* ss_family 0 when unknown */
	/* its counters (/proc/net/kcm_stats' psock lines); 0 unless attached */
	uint64_t rx_msgs;	/* delivered to KCM sockets */
	uint64_t rx_bytes;
	uint64_t tx_msgs;	/* sent whole on it */
	uint64_t tx_bytes;
	uint64_t need_more_hdr;	/* parser calls that found an incomplete header */
	uint64_t err_too_big;
	uint64_t err_bad_len;
	uint64_t err_timeout;	/* SO_RCVTIMEO expired during a message */
	uint64_t rx_drops;
	uint64_t lost_msgs;	/* in flight when it failed or was unattached */
	uint64_t lost_bytes;
	bool partial;		/* a message is being assembled */
	int last_err;		/* errno that failed it; 0 none */
	uint32_t tcp_state;	/* TCP_* as the health program last saw it; 0 unknown */
};
struct kcm_member_status {
	size_t sz;
	uint32_t slot;
	uint64_t cookie;
	enum kcm_slot_state state;
	pid_t pid;		/* the process that made it */
	uint64_t rx_msgs;	/* delivered to it by the data plane */
	uint64_t rx_bytes;
	uint64_t tx_msgs;	/* sent from it (0 unless receiving or recv-disabled) */
	uint64_t tx_bytes;
	uint64_t requeued_msgs;	/* moved off it by kcm_recv_disable() */
};
struct kcm_program_status {
	size_t sz;
	char map[24];		/* "transports", "transports_<id>", "group" */
	const char *attach_type; /* "stream_parser", "stream_verdict" */
	uint32_t prog_id;	/* attached, as the kernel reports it; 0: none */
	char prog_name[16];
	uint32_t pinned_prog_id; /* the program pinned with the mux for this place */
	bool ok;		/* the pinned program is there, or the kernel cannot say */
	int query_err;		/* errno of BPF_PROG_QUERY when the kernel cannot say */
};
struct kcm_parser_status {
	size_t sz;
	unsigned int id;
	char name[16];
	uint32_t prog_id;
	char path[96];		/* the object it was loaded from (truncated) */
};
/* Each calls @fn once per entry, in slot (or id) order, and stops at the first non-zero
 * return of @fn, which it returns; 0 after the last one, -1 with errno on error. The
 * hold queue of flow control is not a member (see kcm_mux_flow()). */
int kcm_transport_foreach(struct kcm_mux *mux,
			  int (*fn)(const struct kcm_transport_status *t, void *ctx), void *ctx);
int kcm_member_foreach(struct kcm_mux *mux,
		       int (*fn)(const struct kcm_member_status *m, void *ctx), void *ctx);
int kcm_program_foreach(struct kcm_mux *mux,
			int (*fn)(const struct kcm_program_status *p, void *ctx), void *ctx);
int kcm_parser_foreach(struct kcm_mux *mux,
		       int (*fn)(const struct kcm_parser_status *p, void *ctx), void *ctx);

/*
 * For tools that load BPF programs on a mux's maps (kcm-loader monitor, parser SDK
 * objects): the mux's fd of map @name ("events", "health_cfg", "transport_info",
 * "transport_slot"..., as pinned), valid until kcm_mux_close(), or -1 with errno ENOENT;
 * and kcm_mux_share_maps(), which gives libbpf object @obj, before it is loaded, the
 * mux's maps in place of the ones bpf/kcm_mux_maps.h declares in it (names prefixed
 * with @prefix: "kcm_" in the parser SDK, "" in kcm-bpf's own objects).
 */
struct bpf_object;
int kcm_mux_map_fd(struct kcm_mux *mux, const char *name);
int kcm_mux_share_maps(struct kcm_mux *mux, struct bpf_object *obj, const char *prefix);

/* Calls @fn with the name of each pinned mux; as the foreach calls above. A missing
 * pin folder means no muxes (0); EACCES: only root may read them. */
int kcm_mux_list(int (*fn)(const char *name, void *ctx), void *ctx);
/* 0 when @name can name a pinned mux, -EINVAL otherwise. */
int kcm_name_check(const char *name);
/* The mount point of cgroup v2 (kcm-loader monitor's programs attach there), from
 * /proc/mounts: 0, -ENOENT when none is mounted, or -errno (no errno convention). */
int kcm_cgroup2_root(char *buf, size_t len);
/* The folder muxes are pinned in: "/sys/fs/bpf/kcm", or "$KCM_BPFFS/kcm" when the
 * environment variable KCM_BPFFS names another bpffs (read once per process). */
const char *kcm_pin_root(void);

/* The data plane's counters, summed over CPUs. */
struct kcm_mux_counters {
	size_t sz;
	uint64_t rx_msgs;	/* messages delivered to KCM sockets */
	uint64_t rx_bytes;
	uint64_t rx_redirects;	/* redirects (one per batch) */
	uint64_t rx_drops;	/* batches with no KCM socket to take them */
	uint64_t err_too_big;	/* frames over max_msg_size */
	uint64_t err_bad_len;	/* length fields that cannot be valid */
	uint64_t need_more_hdr;	/* parser calls that found an incomplete header */
	uint64_t requeued_msgs;	/* messages moved off receive-disabled KCM sockets */
	/* kept by libkcm */
	uint64_t tx_msgs;
	uint64_t tx_bytes;
	uint64_t tx_errors;	/* sends that failed on a transport */
	uint64_t err_timeout;	/* assembly timeouts */
	uint64_t attaches;
	uint64_t unattaches;
	uint64_t transport_failures;
	uint64_t auto_unattached; /* failed transports unattached by policy */
	uint64_t lost_msgs;	/* in flight on transports that failed or left */
	uint64_t lost_bytes;
};
int kcm_mux_counters(struct kcm_mux *mux, struct kcm_mux_counters *out);

#endif /* KCM_INSPECT_H */
