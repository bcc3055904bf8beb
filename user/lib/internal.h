/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* libkcm internals shared by its source files (not installed). */
#ifndef KCM_INTERNAL_H
#define KCM_INTERNAL_H

#include <errno.h>
#include <linux/bpf.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <time.h>

#include "kcm.h"
#include "kcm_shared.h"
#include "pins.h"

struct kcm_bpf;

/* A shipped parser built for user space (splitters.c): the length of the message at the
 * start of @buf, 0 when @len bytes are not enough to tell, or -errno. */
typedef __s64 (*kcm_split_fn)(const void *buf, __u32 len);

/* A transport this process can write to (attached here or imported from its owner). */
struct kcm_transport {
	int fd;
	uint32_t slot;
	uint64_t cookie;
	atomic_bool dead;	/* a write failed or it failed: never chosen again */
	atomic_bool reported;	/* kcm_transport_poll() returned its failure */
	bool settling;		/* delivering what came before a FIN (health.c) */
	struct sockaddr_storage local, remote;	/* as when it was added (a reset peer
						 * leaves no address to ask for) */
	pthread_mutex_t lock;	/* one message at a time on the wire */
};

struct kcm_mux {
	struct kcm_bpf *skel;	/* NULL when opened from pins */
	int map_fd[KCM_MAP_COUNT];
	int prog_fd[KCM_PROG_COUNT];
	int parser_map[KCM_MAX_PARSERS]; /* transport map of parser id > 0, -1 until opened */
	struct kcm_config cfg;
	const struct kcm_config *cfg_map; /* the config map, mmapped read-only */
	struct kcm_transport_stats *tstats;	/* mmapped stats maps (stats.c) */
	struct kcm_member_stats *mstats;
	struct kcm_mux_stats *xstats;
	struct kcm_credits *credits;	/* mmapped flow-control maps (credits.c) */
	struct kcm_flow_state *flow;
	struct kcm_flowctl *ctl;	/* this process's flow controller (flowctl.c) */
	struct kcm_framing framing;
	kcm_split_fn split;		/* parser programs that batch; NULL otherwise */
	int split_prog;			/* splitter "prog": the parser as a tc program, or -1 */
	char name[KCM_NAME_MAX];	/* pin name, "" when private */
	bool inspect;			/* kcm_mux_open_opts(.inspect): read only */
	bool mount_bpffs;		/* kcm_mux_opts.mount_bpffs, while creating */
	char missing[32];		/* inspect: the first pin that was not there */
	int lock_fd;			/* bpffs folder for flock(), -1 when private */
	pthread_mutex_t lock;		/* members, transport table */

	pthread_rwlock_t tx_lock;	/* guards tx[] and ntx */
	struct kcm_transport *tx[KCM_MAX_TRANSPORTS];
	unsigned int ntx;
	uint32_t tx_generation;		/* cfg.generation the table was built from */
	uint64_t tx_scanned_ns;		/* last scan of every slot for a send that found none */
	uint32_t tx_scanned_gen;	/* the generation it saw */
	atomic_uint tx_next;

	/* kcm_mux_connect(): a sidecar does what needs bpf() (remote.c) */
	int remote_fd;			/* SOCK_SEQPACKET to the sidecar, -1 when local */
	pthread_mutex_t remote_lock;	/* one request at a time */
	uint32_t remote_seq;
};

/* A KCM socket: a self-connected AF_UNIX datagram socket in the group map. */
struct kcm_sock {
	int fd;
	uint32_t slot;
	uint64_t cookie;
	struct kcm_mux *mux;
	pthread_mutex_t rlock;		/* one reader at a time: peek then read */
	pthread_mutex_t wlock;		/* guards the message being composed */
	uint8_t *pending;		/* bytes sent with MSG_MORE, not yet on the wire */
	size_t pending_len, pending_cap;
};

/* probe.c: the kernel has FIONREAD for UDP sockets in a sockmap (udp_bpf_ioctl) */
bool kcm_kernel_udp_inq(void);
/* probe.c: sk_skb programs may call bpf_loop (the parser's batch scan uses it) */
bool kcm_kernel_bpf_loop(void);

/* monitor_hz.c: HZ from how fast /proc/timer_list's jiffies advance (cached); 0 unknown */
unsigned int kcm_estimate_hz(void);

/* health_progs.c: the health programs and what this kernel lets them do */
#define KCM_ARM_UNSUPPORTED "this kernel's bpf_setsockopt() cannot set " \
	"TCP_BPF_SOCK_OPS_CB_FLAGS from a cgroup/setsockopt program (Linux 6.12 added it), " \
	"so monitor cannot arm transports here"
struct kcm_health_bpf;
struct bpf_program;
struct kcm_health_bpf *kcm_health_open(void);
/* The programs of the tracing path, or NULL at @i's end. */
struct bpf_program *kcm_health_trace_prog(struct kcm_health_bpf *skel, size_t i);
/* Set (or clear, @flags 0) the health callbacks of the socket behind our fd @copy. */
int kcm_health_arm_fd(int copy, __u32 flags);
/* Fill @seen; 0, -EOPNOTSUPP when the kernel lacks it, or another -errno. */
int kcm_health_check_arm(char *seen, size_t len);
int kcm_health_check_trace(char *seen, size_t len);

/* remote.c: one request to the sidecar of a connected mux and its reply. @send_fd (or
 * -1) goes with the request; up to @max_fds descriptors that come with the reply are
 * stored in @fds and counted in *@nfds (closed on failure). Returns the reply's payload
 * length, or -errno: the sidecar's own errno with its message in kcm_last_error(). */
int kcm_remote_call(struct kcm_mux *mux, int op, const void *req, size_t req_len,
		    int send_fd, void *reply, size_t reply_len, int *fds, int max_fds,
		    int *nfds);
/* Every transport attached to the sidecar's mux, with a descriptor for it that @fn owns
 * (it closes it or keeps it). */
int kcm_remote_transports(struct kcm_mux *mux,
			  int (*fn)(uint32_t slot, uint64_t cookie, int fd, void *ctx), void *ctx);
static inline bool kcm_is_remote(const struct kcm_mux *mux)
{
	return mux->remote_fd >= 0;
}

/* Copy what the caller's (older or newer) struct has room for; sz says how much. */
#define COPY_OUT(out, v)                                                            \
	do {                                                                        \
		size_t __n = (out)->sz < sizeof(v) ? (out)->sz : sizeof(v);         \
		(v).sz = __n;                                                       \
		memcpy((out), &(v), __n);                                           \
	} while (0)

/* error.c: record "<what failed>: <strerror(err)>" for kcm_last_error(); returns @err */
int kcm_fail(int err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The same with @text as it is (it names its cause already). */
int kcm_fail_text(int err, const char *text);

/* registry.c: fd -> KCM socket; a socket it drops is freed with kcm_sock_free/forget */
int kcm_registry_add(struct kcm_sock *ks);
struct kcm_sock *kcm_registry_get(int fd);
struct kcm_sock *kcm_registry_get_checked(int fd);
struct kcm_sock *kcm_registry_take(int fd);
void kcm_registry_drop_mux(struct kcm_mux *mux, void (*fn)(struct kcm_sock *ks));
void kcm_sock_free(struct kcm_sock *ks);	/* closes ks->fd */
void kcm_sock_forget(struct kcm_sock *ks);	/* the fd is no longer ours */

/* mux_core.c: the handle, the mux lock and its config map */
struct kcm_mux *kcm_mux_alloc(void);
/* The fd of pin @i (see kcm_pin_file()). */
int *kcm_mux_pin_fd(struct kcm_mux *mux, int i);
/* mux->cfg_map: the config map mmapped read-only, NULL when it cannot be */
void kcm_mux_config_mmap(struct kcm_mux *mux);
int kcm_mux_lock(struct kcm_mux *mux);
void kcm_mux_unlock(struct kcm_mux *mux);
int kcm_config_bump(struct kcm_mux *mux);
int kcm_config_read(struct kcm_mux *mux);
uint32_t kcm_config_generation(struct kcm_mux *mux);

/* parser.c */
int kcm_transport_map(struct kcm_mux *mux, unsigned int parser_id);
int kcm_parser_load(struct kcm_mux *mux, const char *path, struct kcm_parser_info *info);
int kcm_parser_record(struct kcm_mux *mux, unsigned int id, const struct kcm_parser_info *info);

/* recv.c: length of the next queued message, -EAGAIN when none is */
ssize_t kcm_next_len(struct kcm_sock *ks);

/* steer.c: rebuild the steering list from the group and info maps; mux lock held */
int kcm_steer_sync(struct kcm_mux *mux);

/* members.c: a new member of the group (@hold: the mux's hold queue, see flowctl.c) */
int kcm_member_add(struct kcm_mux *mux, bool hold, struct kcm_sock **out);
/* A member the sidecar made: @fd (ours now) in group slot @slot. Returns @fd or -errno. */
int kcm_member_adopt(struct kcm_mux *mux, int fd, uint32_t slot, uint64_t cookie);

/*
 * SO_RCVBUF a transport gets by default (the kernel doubles it), see docs/memory.md.
 * Smaller with parser programs: each message in what a braked transport still delivers
 * pins a clone of its segment.
 */
#define KCM_TRANSPORT_RCVBUF (256 * 1024)
#define KCM_TRANSPORT_RCVBUF_PARSER (64 * 1024)

/*
 * requeue.c: how long kcm_recv_disable() and kcm_close() may wait for messages in flight;
 * kcm_close() waits that long after the last message it moved, up to KCM_CLOSE_MAX_MS
 * (what it leaves is lost with the socket)
 */
#define KCM_REQUEUE_MS 1000
#define KCM_CLOSE_MAX_MS 30000
#define KCM_REQUEUE_BATCH (256 * 1024) /* bytes of whole messages moved per datagram */
int kcm_requeue_all(struct kcm_sock *ks, uint64_t deadline, uint64_t until, bool hold_ok,
		    struct kcm_requeue_report *rep);
void kcm_requeue_close(struct kcm_sock *ks, struct kcm_requeue_report *rep);

/* remote_ops.c: attach and unattach through the sidecar of a connected mux */
int kcm_remote_attach(struct kcm_mux *mux, int tcpfd, int parser,
		      const struct kcm_transport_opts *opts);
int kcm_remote_unattach(struct kcm_mux *mux, uint64_t cookie);

/* flowctl.c: the mux's flow controller (hold queue and brake), one per mux */
void kcm_flowctl_start(struct kcm_mux *mux);
void kcm_flowctl_stop(struct kcm_mux *mux);
int kcm_flowctl_attach(struct kcm_mux *mux, uint32_t slot, int fd);
void kcm_flowctl_detach(struct kcm_mux *mux, uint32_t slot);

/* 0, or an error for a handle opened for inspection only (kcm_mux_open_opts). */
static inline int kcm_writable(struct kcm_mux *mux)
{
	return mux->inspect ? kcm_fail(-EROFS, "mux '%s' was opened for inspection only",
				       mux->name) : 0;
}

/* 0, or EOPNOTSUPP for @what on a mux served by a sidecar (kcm_mux_connect). */
static inline int kcm_local_only(struct kcm_mux *mux, const char *what)
{
	return kcm_is_remote(mux) ? kcm_fail(-EOPNOTSUPP, "%s needs bpf(): not on mux '%s', "
					     "which a sidecar serves", what, mux->name) : 0;
}

static inline uint64_t kcm_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + ts.tv_nsec;
}

/* splitters.c */
kcm_split_fn kcm_splitter_find(const char *name);
/* framing and splitter from mux->cfg */
void kcm_mux_framing_from_cfg(struct kcm_mux *mux);
/* Length of the message at @buf by the mux's framing or splitter: > 0, 0 when @len bytes
 * cannot tell, -EMSGSIZE over max_msg_size, -EBADMSG or another -errno when invalid. */
int64_t kcm_msg_length(const struct kcm_mux *mux, const void *buf, size_t len);

/* split_prog.c: splitter "prog", the parser program run by BPF_PROG_TEST_RUN on each
 * message's first bytes. Load the copy from @path, pin it with the mux, open the pin. */
#define KCM_SPLIT_PROG "prog"
#define KCM_SPLIT_PROG_PIN "split_prog"
#define KCM_SPLIT_PROG_PEEK 3072	/* bytes of a message the parser is shown, at most */
int kcm_split_prog_load(struct kcm_mux *mux, const char *path);
int kcm_split_prog_pin(struct kcm_mux *mux);
int kcm_split_prog_open(struct kcm_mux *mux);
int64_t kcm_split_prog_run(const struct kcm_mux *mux, const void *buf, size_t len);
/* A splitter name kcm_mux_opts may give: a shipped parser, or KCM_SPLIT_PROG. */
bool kcm_splitter_valid(const char *name);

/* Parser programs without a splitter: one message per redirect, UDP KCM sockets that
 * learn each message's length from FIONREAD. */
static inline bool kcm_one_per_redirect(const struct kcm_config *cfg)
{
	return cfg->parsers && !cfg->splitter[0];
}

/* credits.c: bytes given to and consumed from each group slot */
int kcm_credits_map(struct kcm_mux *mux);
void kcm_credits_unmap(struct kcm_mux *mux);
void kcm_credits_consume(struct kcm_mux *mux, uint32_t slot, uint64_t bytes, unsigned int msgs);

/*
 * Credits a message costs on top of its bytes. When each redirect is one
 * message, and it pins a clone of its whole TCP segment (up to ~64 KiB, docs/memory.md):
 * counting a share of that keeps the memory of a full window bounded.
 */
#define KCM_PARSER_MSG_COST (16 * 1024)
static inline uint32_t kcm_msg_cost(const struct kcm_config *cfg)
{
	return kcm_one_per_redirect(cfg) ? KCM_PARSER_MSG_COST : 0;
}
uint64_t kcm_credits_unread(const struct kcm_mux *mux, uint32_t slot);
void kcm_credits_reset(struct kcm_mux *mux, uint32_t slot);

/* transport_opts.c: 0 or -errno (kcm_last_error() says which option) */
int kcm_transport_apply(int fd, const struct kcm_transport_opts *o);

/* kcm_transport_stats.accounted bits: each is counted once, by whoever comes first */
#define LOSSES_COUNTED 1	/* the transport's losses (failure or unattach) */
#define FAILURE_COUNTED 2	/* its failure (transport_failures) */

/* stats.c: counters kept in the mux's mmapped maps, shared by every process using it */
int kcm_stats_map(struct kcm_mux *mux);
void kcm_stats_unmap(struct kcm_mux *mux);
int kcm_stats_transport_start(struct kcm_mux *mux, uint32_t slot, uint64_t cookie, int fd);
void kcm_stats_transport_end(struct kcm_mux *mux, uint32_t slot, uint64_t cookie, int fd);
int64_t kcm_stats_pending(struct kcm_mux *mux, uint32_t slot, int fd);
void kcm_stats_member_start(struct kcm_mux *mux, uint32_t slot, uint64_t cookie);
void kcm_stats_tx(struct kcm_mux *mux, uint32_t tslot, int mslot, unsigned int msgs, size_t bytes);
void kcm_stats_tx_error(struct kcm_mux *mux);
void kcm_stats_requeued(struct kcm_mux *mux, uint32_t mslot, unsigned int msgs);
uint64_t kcm_stats_lost(struct kcm_mux *mux, uint32_t slot, uint64_t cookie, int fd,
			uint64_t *bytes);

/* slots.c: what transport or group slot @slot holds: a kcm_slot_state, -ENOENT when
 * empty. @info is its record (zeroed when none), @cookie the socket there (or the
 * record's cookie when the map slot is empty). The hold queue is KCM_SLOT_RECEIVING
 * with info->hold set. */
int kcm_transport_slot(struct kcm_mux *mux, __u32 slot, struct kcm_transport_info *info,
		       __u64 *cookie);
int kcm_member_slot(struct kcm_mux *mux, __u32 slot, struct kcm_member_info *info,
		    __u64 *cookie);

/* tx_table.c: the transports this process can write to */
int kcm_tx_add(struct kcm_mux *mux, int fd, uint32_t slot, uint64_t cookie);
void kcm_tx_remove(struct kcm_mux *mux, uint64_t cookie);
int kcm_tx_refresh(struct kcm_mux *mux);
int kcm_tx_rescan(struct kcm_mux *mux);
/* This process's transport with @cookie, or NULL; the caller holds tx_lock. */
struct kcm_transport *kcm_tx_find(struct kcm_mux *mux, uint64_t cookie);
/* An fd of @cookie this process holds to send on, or -1. */
int kcm_tx_fd_of(struct kcm_mux *mux, uint64_t cookie);
void kcm_tx_clear(struct kcm_mux *mux);

/* Move past @r bytes of an iovec array (recv.c, xmit.c). */
static inline void kcm_iov_advance(struct iovec **iov, size_t *n, size_t r)
{
	while (*n && r >= (*iov)->iov_len) {
		r -= (*iov)->iov_len;
		(*iov)++;
		(*n)--;
	}
	if (*n && r) {
		(*iov)->iov_base = (char *)(*iov)->iov_base + r;
		(*iov)->iov_len -= r;
	}
}

/* sockopt.c */
uint64_t kcm_sock_cookie(int fd);
int kcm_set_buf(int fd, int opt, int force_opt, int bytes);
bool kcm_fd_nonblocking(int fd, int flags);
/* A socket address from a BPF record's family, raw address and host-order port
 * (ss_family 0 when the family is neither AF_INET nor AF_INET6). */
struct sockaddr_storage;
void kcm_sockaddr_of(struct sockaddr_storage *ss, int family, const __u8 *addr, __u16 port);

#endif /* KCM_INTERNAL_H */
