/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The sidecar protocol (docs/sidecar.md): an unprivileged application asks a privileged
 * sidecar (kcm-loader serve) for what needs bpf(), over a SOCK_SEQPACKET UNIX socket.
 * kcm_mux_connect() speaks it; this header is for other implementations.
 *
 * Every message, both ways, is one datagram: a struct kcm_sc_hdr, then hdr.len bytes of
 * payload; descriptors travel with it as SCM_RIGHTS. A reply carries the request's op
 * and seq; err is 0 or a positive errno, and a failed reply's payload is a message
 * (text, not NUL-terminated) saying what failed.
 */
#ifndef KCM_SIDECAR_H
#define KCM_SIDECAR_H

#include <stdint.h>

#define KCM_SC_MAGIC 0x4b434d53u	/* "KCMS" */
#define KCM_SC_VERSION 1
#define KCM_SC_MAX_MSG 4096		/* bytes of one datagram, header included */
#define KCM_SC_MAX_FDS 32		/* descriptors with one datagram */

enum kcm_sc_op {
	/* -> struct kcm_sc_hello; fds: the maps named in it, in that order */
	KCM_SC_HELLO = 1,
	/* -> struct kcm_sc_member; fd: a new KCM socket of the mux */
	KCM_SC_SOCKET = 2,
	/* struct kcm_sc_member (cookie) -> nothing: the sidecar closes its copy (kcm_close) */
	KCM_SC_CLOSE = 3,
	/* struct kcm_sc_recv_disable -> struct kcm_sc_recv_disable (moved, kept) */
	KCM_SC_RECV_DISABLE = 4,
	/* fd: a connected TCP socket; struct kcm_sc_attach -> struct kcm_sc_transport */
	KCM_SC_ATTACH = 5,
	/* struct kcm_sc_transport (cookie) -> nothing */
	KCM_SC_UNATTACH = 6,
	/* struct kcm_sc_transports (from: first slot) -> struct kcm_sc_transports (n, next,
	 * each slot and cookie); fds: those transports, in that order */
	KCM_SC_TRANSPORTS = 7,
};

struct kcm_sc_hdr {
	uint32_t magic;		/* KCM_SC_MAGIC */
	uint16_t version;	/* KCM_SC_VERSION */
	uint16_t op;		/* enum kcm_sc_op */
	uint32_t seq;		/* chosen by the client, echoed in the reply */
	int32_t err;		/* reply: 0 or errno */
	uint32_t len;		/* payload bytes after the header */
};

#define KCM_SC_MAPS 8
struct kcm_sc_hello {
	char mux[64];		/* the mux's pin name */
	char framing[64];	/* as kcm_mux_state() gives it */
	uint32_t max_msg;
	uint32_t nmaps;		/* fds that came with the reply */
	char maps[KCM_SC_MAPS][24]; /* their names: "config", "credits", ... */
	int32_t sidecar_pid;
};

struct kcm_sc_member {
	uint32_t slot;
	uint32_t pad;
	uint64_t cookie;	/* SO_COOKIE of the KCM socket */
};

struct kcm_sc_recv_disable {
	uint64_t cookie;
	uint32_t on;		/* request: 1 disable, 0 enable */
	uint32_t moved;		/* reply: messages moved to other KCM sockets */
	uint32_t kept;		/* reply: messages kept (no other socket could take them) */
	uint32_t pad;
};

struct kcm_sc_attach {
	/* struct kcm_transport_opts without its sz, as kcm.h lays it out */
	int32_t nodelay, keepalive_idle, keepalive_intvl, keepalive_cnt, user_timeout_ms;
	int32_t rcvbuf, rcvtimeo_ms, linger, parser;
};

struct kcm_sc_transport {
	uint32_t slot;
	uint32_t pad;
	uint64_t cookie;
};

struct kcm_sc_transports {
	uint32_t from;		/* request: first slot; reply: unused */
	uint32_t n;		/* reply: entries (and fds) */
	uint32_t next;		/* reply: slot to ask from next; 0 when done */
	uint32_t pad;
	struct kcm_sc_transport t[KCM_SC_MAX_FDS];
};

#endif /* KCM_SIDECAR_H */
