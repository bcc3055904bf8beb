/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * libkcm: Kernel Connection Multiplexor semantics on stock kernels (sockmap + strparser).
 *
 * The calls mirror AF_KCM (Documentation/networking/kcm.rst):
 *   socket(AF_KCM)         -> kcm_mux_create() + kcm_socket()
 *   ioctl(SIOCKCMCLONE)    -> kcm_clone()
 *   ioctl(SIOCKCMATTACH)   -> kcm_attach()
 *   ioctl(SIOCKCMUNATTACH) -> kcm_unattach()
 *   setsockopt(KCM_RECV_DISABLE) -> kcm_recv_disable()
 *   sendmsg/recvmsg        -> kcm_sendmsg()/kcm_recvmsg() (+ mmsg batch variants)
 *
 * Functions return 0 (or a count) on success and -1 with errno set on failure;
 * constructors return NULL with errno set.
 */
#ifndef KCM_H
#define KCM_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/socket.h>

#ifdef __cplusplus
extern "C" {
#endif

#define KCM_NAME_MAX 64

/* Where the length of a message is, and how to turn it into the whole length. */
struct kcm_framing {
	uint32_t len_offset;	/* offset of the length field in the message */
	uint32_t len_size;	/* 1, 2, 3, 4 or 8 bytes */
	bool big_endian;	/* byte order of the field */
	int64_t len_adjust;	/* whole message length = field + len_adjust */
};

/* Thrift framed: u32 big-endian at 0, +4. */
#define KCM_FRAMING_THRIFT ((struct kcm_framing){ 0, 4, true, 4 })
/* DNS over TCP: u16 big-endian at 0, +2. */
#define KCM_FRAMING_DNS ((struct kcm_framing){ 0, 2, true, 2 })
/* HTTP/2 frames: u24 big-endian at 0, +9. */
#define KCM_FRAMING_HTTP2 ((struct kcm_framing){ 0, 3, true, 9 })

enum kcm_policy {
	KCM_POLICY_MESSAGES = 0, /* round-robin weighted by messages (default) */
	KCM_POLICY_BYTES = 1,	 /* round-robin weighted by bytes */
};

struct kcm_mux_opts {
	size_t sz;			/* sizeof(struct kcm_mux_opts): fields added later stay 0 */
	struct kcm_framing framing;
	uint32_t max_msg_size;		/* largest message; 0 = 64 KiB */
	/* Messages per redirect: 0 = adaptive (every complete message available, up to 1024
	 * and the transport's receive buffer; one when traffic is light), 1 = strictly one. */
	uint32_t batch;
	enum kcm_policy policy;
	/*
	 * SO_RCVBUF given to each attached transport: a message of max_msg_size must fit
	 * (strparser posts EMSGSIZE above the receive buffer), and it is what a transport
	 * can still take in once flow control closes its window (docs/memory.md).
	 * 0 = max(max_msg_size, 256 KiB), which the kernel doubles; -1 = leave it alone
	 * (autotuned up to net.ipv4.tcp_rmem's maximum).
	 */
	int transport_rcvbuf;
	/* SO_RCVBUF of each KCM socket; 0 = 32 MiB. See docs/memory.md for the cost. */
	int member_rcvbuf;
	/* Pin the mux under /sys/fs/bpf/kcm/<pin_name>/ so other processes can open it. */
	const char *pin_name;
	/* Pins outlive this process (kcm-loader create). Otherwise they belong to it, and
	 * `kcm-loader clean` removes them once it has exited without kcm_mux_destroy(). */
	bool persistent;
	/*
	 * Find messages with parser programs instead of @framing: the path of a parser
	 * object (built with kcm_parser.h, see docs/parser-sdk.md) that kcm_attach() uses.
	 * Transports can then have parsers of their own (kcm_parser_open()). Each redirect
	 * carries one message (batch must be 0 or 1) and KCM sockets are loopback UDP
	 * sockets that learn each message's length from the kernel (FIONREAD), so `lo`
	 * must be up in the network namespace.
	 */
	const char *parser;
	/*
	 * Receive flow control (docs/flow-control.md): unread bytes one KCM socket may hold
	 * before the mux steers past it to the others; 0 = 2 MiB. While every KCM socket is
	 * over it, or none exists, the transports' TCP windows are closed until one reads.
	 */
	uint32_t rx_window;
	/*
	 * With @parser: the name of a shipped parser ("thrift", "dns", "http2", "kafka",
	 * "memcached", "mqtt") that parses the same protocol. libkcm has their user-space
	 * builds, so readers can split batches, and the mux then batches like a length-prefix
	 * mux (batch 0 = adaptive) with AF_UNIX KCM sockets on any kernel. Transports cannot
	 * then have parsers of their own. "prog": readers find each end by running @parser
	 * itself (BPF_PROG_TEST_RUN) on the message's first 3,072 bytes. NULL: one message
	 * per redirect (see @parser), or "prog" where the kernel has no UDP FIONREAD in a
	 * sockmap (Linux 6.1).
	 */
	const char *splitter;
	/* With @pin_name: mount a bpf filesystem at kcm_pin_root()'s parent when none is
	 * there (kcm-loader create does). Otherwise a missing bpffs fails with ENODEV. */
	bool mount_bpffs;
};

struct kcm_mux;
struct mmsghdr;

struct kcm_mux *kcm_mux_create(const struct kcm_mux_opts *opts);
/* Open a mux pinned by kcm_mux_create() or kcm-loader (framing is read from the pins). */
struct kcm_mux *kcm_mux_open(const char *name);
/* Close this process's handle: its KCM sockets and its references to transports.
 * A pinned mux lives on (kcm-loader create uses this). */
void kcm_mux_close(struct kcm_mux *mux);
/* kcm_mux_close() and, for a pinned mux, remove the pins. */
void kcm_mux_destroy(struct kcm_mux *mux);
/* Remove the pins of a mux (the maps live on while a process still uses them). */
int kcm_mux_unpin(const char *name);

/* The first KCM socket of a mux, and more like SIOCKCMCLONE. File descriptors that work
 * with poll/epoll; close with kcm_close() (a plain close() also leaves the group). */
int kcm_socket(struct kcm_mux *mux);
int kcm_clone(int kcmfd);
int kcm_close(int kcmfd);

/* Load the stream parser in the BPF object at @path into a mux made with a parser:
 * returns its parser id (>= 0) for kcm_attach_parser(), the same id when the same
 * program is loaded already. Transports of every parser steer into the one group.
 * EOPNOTSUPP: the mux uses a length prefix; see kcm_last_error() for objects refused. */
int kcm_parser_open(struct kcm_mux *mux, const char *path);
/* kcm_attach() with parser @parser_id (0: the mux's own parser). */
int kcm_attach_parser(struct kcm_mux *mux, int tcpfd, int parser_id);

/*
 * TCP options for a transport, each answering a failure (docs/transport-options.md).
 * 0 leaves an option as it is.
 */
struct kcm_transport_opts {
	size_t sz;			/* sizeof(struct kcm_transport_opts) */
	int nodelay;			/* 1: TCP_NODELAY on, -1: off */
	int keepalive_idle;		/* seconds of quiet before probes (turns SO_KEEPALIVE on) */
	int keepalive_intvl;		/* seconds between probes */
	int keepalive_cnt;		/* unanswered probes before the connection is dropped */
	int user_timeout_ms;		/* TCP_USER_TIMEOUT: give up when data stays unacked */
	int rcvbuf;			/* SO_RCVBUF; kcm_attach_opts() then keeps it */
	int rcvtimeo_ms;		/* SO_RCVTIMEO: bounds message assembly (ETIMEDOUT) */
	int linger;			/* -1: abortive close (RST); > 0: linger that many seconds */
	int parser;			/* kcm_attach_opts(): parser id (0: the mux's own) */
};

/* Set @opts on a connected TCP socket; EINVAL names the option that is out of range. */
int kcm_transport_configure(int tcpfd, const struct kcm_transport_opts *opts);
/* kcm_transport_configure() then kcm_attach_parser(mux, tcpfd, opts->parser). */
int kcm_attach_opts(struct kcm_mux *mux, int tcpfd, const struct kcm_transport_opts *opts);

/* Attach a connected TCP socket (the library keeps its own reference), or unattach it.
 * EOPNOTSUPP: not TCP or not connected; EALREADY: attached; ENOENT: not attached. */
int kcm_attach(struct kcm_mux *mux, int tcpfd);
/* Attach a socket that process @owner_pid holds as @owner_fd (@tcpfd is this process's
 * copy, e.g. from pidfd_getfd()); no reference is kept: the owner's fd keeps it alive,
 * and libkcm users of a pinned mux import it with pidfd_getfd() to transmit. */
int kcm_attach_owned(struct kcm_mux *mux, int tcpfd, pid_t owner_pid, int owner_fd);
int kcm_attach_owned_parser(struct kcm_mux *mux, int tcpfd, pid_t owner_pid, int owner_fd,
			    int parser_id);
/* kcm_attach_owned() with transport options (and opts->parser). */
int kcm_attach_owned_opts(struct kcm_mux *mux, int tcpfd, pid_t owner_pid, int owner_fd,
			  const struct kcm_transport_opts *opts);
int kcm_unattach(struct kcm_mux *mux, int tcpfd);
/* Forget transports whose sockets closed without an unattach (their owner exited):
 * counted as unattached, with what they lost. Returns how many, or -1 with errno. */
int kcm_mux_prune(struct kcm_mux *mux);
/* Unattach by socket cookie (SO_COOKIE), for sockets this process has no fd of. */
int kcm_unattach_cookie(struct kcm_mux *mux, uint64_t cookie);

/* Why a transport stopped carrying messages (kcm_transport_check()). */
enum kcm_fail_reason {
	KCM_FAIL_NONE = 0,
	KCM_FAIL_RESET,			/* RST from the peer (ECONNRESET) */
	KCM_FAIL_PEER_CLOSED,		/* FIN from the peer: nothing more will arrive */
	KCM_FAIL_TIMEOUT,		/* keepalive, TCP_USER_TIMEOUT or retransmissions gave up */
	KCM_FAIL_ASSEMBLY_TIMEOUT,	/* SO_RCVTIMEO: a message stayed incomplete (ETIMEDOUT) */
	KCM_FAIL_TOO_BIG,		/* a frame over max_msg_size (EMSGSIZE) */
	KCM_FAIL_BAD_LENGTH,		/* a length field that cannot be valid (EBADMSG) */
	KCM_FAIL_SEND,			/* a send on it failed (EPIPE, ...) */
	KCM_FAIL_OTHER,			/* any other socket error (err says which) */
};

/* A failed transport. */
struct kcm_transport_event {
	uint64_t cookie;		/* SO_COOKIE */
	enum kcm_fail_reason reason;
	int err;			/* errno: ECONNRESET, ETIMEDOUT, EMSGSIZE... 0 for a FIN */
	int tcp_state;			/* TCP_ESTABLISHED, TCP_CLOSE_WAIT, TCP_CLOSE... */
	uint64_t lost_msgs;		/* messages it was still carrying, counted as lost */
	uint64_t lost_bytes;		/* bytes received on it and never delivered */
	bool unattached;		/* KCM_AUTO_UNATTACH: unattached and shut down */
	struct sockaddr_storage local, remote;
};

/* kcm_transport_check()/kcm_transport_poll() flags */
#define KCM_AUTO_UNATTACH 0x1	/* unattach a failed transport and shut it down */

/*
 * Look at one attached transport (@tcpfd: any fd of it): 1 and @ev filled when it has
 * failed, 0 when it is healthy or still delivering what arrived before a FIN. A failed
 * transport is never used to send again; what it was carrying is counted as lost in the
 * statistics (once); SO_ERROR is read (and so cleared) into ev->err. With
 * KCM_AUTO_UNATTACH it is also unattached and shut down (the caller closes @tcpfd).
 */
int kcm_transport_check(struct kcm_mux *mux, int tcpfd, struct kcm_transport_event *ev,
			unsigned int flags);
/*
 * Wait up to @timeout_ms (-1: without limit) for transports this process holds (attached
 * here, or imported to send) to fail; fills up to @max events and returns how many, 0 on
 * timeout, -1 with errno on error (EINTR included).
 */
int kcm_transport_poll(struct kcm_mux *mux, struct kcm_transport_event *ev, unsigned int max,
		       int timeout_ms, unsigned int flags);
/* "reset", "peer-closed", "timeout", "assembly-timeout", "too-big", "bad-length", "send",
 * "other" */
const char *kcm_fail_reason_name(enum kcm_fail_reason reason);

/* What kcm_recv_disable() did with the messages already queued on the socket. */
struct kcm_requeue_report {
	unsigned int moved;		/* handed to other members */
	unsigned int kept;		/* could not be moved; still readable on this socket
					 * (with parser programs: 1 when any, see libkcm(3)) */
	size_t kept_bytes;
	/* Why messages were kept: no other receive-enabled member (ENOENT), or a
	 * message larger than the socket's send buffer (EMSGSIZE); 0 when none kept. */
	int kept_reason;
};

/* Stop (on = true) or restart receiving on a KCM socket. @report may be NULL. */
int kcm_recv_disable(int kcmfd, bool on, struct kcm_requeue_report *report);

/* Receive flow control of a mux, as its maps say now (docs/flow-control.md). */
struct kcm_flow {
	size_t sz;			/* sizeof(struct kcm_flow) */
	uint32_t window;		/* unread bytes a KCM socket may hold (rx_window) */
	uint32_t members;		/* receive-enabled KCM sockets */
	uint64_t unread_bytes;		/* given to KCM sockets and the hold queue, not yet read */
	uint64_t held_bytes;		/* of those, in the hold queue (no KCM socket could take
					 * them); moved on as soon as one can */
	uint32_t transports;		/* attached transports */
	uint32_t braked;		/* transports whose TCP receive window is closed now */
	uint64_t brakes;		/* times a transport's window was closed */
	uint64_t releases;		/* times one was opened again */
	uint64_t saturated;		/* messages steered when no KCM socket had room */
	pid_t controller;		/* process running the mux's flow controller; 0: none */
	uint64_t charged_bytes;		/* receive memory the kernel charges to the KCM sockets
					 * and the hold queue (SO_MEMINFO; -1 when unreadable) */
};
int kcm_mux_flow(struct kcm_mux *mux, struct kcm_flow *out);
/* Bytes given to KCM socket @kcmfd and not yet read (the mux's own accounting). */
int64_t kcm_unread(int kcmfd);

/* One whole message per call. A short buffer gets the first bytes and MSG_TRUNC in
 * msg_flags; the rest of that message is dropped. MSG_TRUNC in @flags makes the call
 * return the real length. MSG_DONTWAIT or O_NONBLOCK: EAGAIN when nothing is queued. */
ssize_t kcm_recv(int kcmfd, void *buf, size_t len, int flags);
ssize_t kcm_recvmsg(int kcmfd, struct msghdr *msg, int flags);
int kcm_recvmmsg(int kcmfd, struct mmsghdr *vec, unsigned int vlen, int flags);

/* One message per call, sent whole on one transport, never interleaved with another.
 * Non-blocking (MSG_DONTWAIT or O_NONBLOCK): EAGAIN, with nothing written, when no
 * transport has room for the whole message now. A message larger than a transport's
 * whole send buffer is started only on an empty buffer, and the call then waits for
 * its tail: a half-sent message would corrupt the stream.
 * MSG_MORE: as on an AF_KCM datagram socket, the bytes are the start of a message that
 * the next call without MSG_MORE completes; it then leaves whole. A part that makes the
 * message longer than max_msg_size fails with EMSGSIZE and discards the message. */
ssize_t kcm_send(int kcmfd, const void *buf, size_t len, int flags);
ssize_t kcm_sendmsg(int kcmfd, const struct msghdr *msg, int flags);
int kcm_sendmmsg(int kcmfd, struct mmsghdr *vec, unsigned int vlen, int flags);

/* Where libbpf's messages go while libkcm loads programs (verifier logs included): to
 * @fn, or nowhere when @fn is NULL. Returns the function set before (NULL at first:
 * libbpf's default, warnings on stderr). One setting for the process, like libbpf's. */
enum kcm_print_level { KCM_PRINT_WARN, KCM_PRINT_INFO, KCM_PRINT_DEBUG };
typedef int (*kcm_print_fn)(enum kcm_print_level level, const char *fmt, va_list ap);
kcm_print_fn kcm_set_print(kcm_print_fn fn);

/* What the last failing libkcm call in this thread was doing, with the object and the
 * cause, e.g. "failed to attach stream parser to transport map: Invalid argument". */
const char *kcm_last_error(void);

/* This process's copy of fd @fd of process @pid (pidfd_getfd(2); a dup for this process),
 * for kcm_attach_owned(); -1 with errno: ESRCH no such process, EBADF it has no such fd,
 * EPERM not allowed (needs CAP_SYS_PTRACE over it). */
int kcm_process_fd(pid_t pid, int fd);

/* The mux a KCM socket belongs to, or NULL (errno EBADF) when it is not a KCM socket. */
struct kcm_mux *kcm_mux_of(int kcmfd);

/* Length of the message at the start of @buf under @f: > 0 length, 0 header
 * incomplete, -EMSGSIZE over @max (or a field above 2^40), -EBADMSG a length below
 * the end of the length field. Returns the errno (no -1/errno) like the BPF parser. */
int64_t kcm_frame_length(const struct kcm_framing *f, const void *buf, size_t len,
			 uint64_t max);
/* Parse "u32be+4", "u16be+2@0", "u24be+9", "u8+1@3", "u64le-8"... (see kcm-loader(8)). */
int kcm_framing_parse(const char *spec, struct kcm_framing *out);
/* Inverse of kcm_framing_parse(); returns snprintf's count. */
int kcm_framing_format(const struct kcm_framing *f, char *buf, size_t len);

/*
 * What this kernel and process allow (kcm-loader check): one callback per check, in a
 * fixed order. Checks that need bpf() report KCM_CHECK_UNKNOWN without the privileges.
 */
enum kcm_check_state {
	KCM_CHECK_OK,		/* there and usable */
	KCM_CHECK_MISSING,	/* needed and not there: see fix */
	KCM_CHECK_UNKNOWN,	/* could not be checked: see fix */
	KCM_CHECK_INFO,		/* reported only; nothing depends on it */
};

struct kcm_check {
	const char *name;	/* "kernel", "privileges", "bpffs", "stream-parser"... */
	enum kcm_check_state state;
	const char *needed_for;	/* what of kcm-bpf needs it */
	char seen[256];		/* what was found */
	const char *fix;	/* what to do when not OK; NULL when nothing can be done */
};

typedef void (*kcm_check_fn)(const struct kcm_check *check, void *ctx);

/* Runs every check; returns how many needed ones are missing or unknown. */
int kcm_check_system(kcm_check_fn fn, void *ctx);

/*
 * A mux served by a sidecar (kcm-loader serve --socket PATH, docs/sidecar.md): for
 * applications without the privileges bpf() needs. Waits up to 30 s for the socket to
 * appear (KCM_SIDECAR_WAIT=SECONDS changes that), then ETIMEDOUT. The handle works with
 * kcm_socket, kcm_clone, kcm_close, kcm_attach*, kcm_unattach*, kcm_recv*, kcm_send*,
 * kcm_recv_disable and kcm_transport_check/poll; messages never pass through the sidecar.
 */
struct kcm_mux *kcm_mux_connect(const char *socket_path);

/* Inspecting a mux: state, transports, KCM sockets, programs, counters. */
#include "kcm_inspect.h"
/* Watching a mux: transport health events and braking episodes. */
#include "kcm_monitor.h"

#ifdef __cplusplus
}
#endif
#endif /* KCM_H */
