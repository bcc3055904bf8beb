/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The connect pool behind `kcm-loader connect`: N slots, each IDLE (waiting for its next
 * attempt), CONNECTING (a non-blocking connect, bounded by a timeout) or UP (its
 * connection attached to the mux). pool_state.c holds the transitions and the backoff
 * (no I/O: tests/unit/pool_state.c), pool.c the engine that connects, attaches and
 * watches; what happens is handed to p->report, which the command formats.
 */
#ifndef KCM_POOL_H
#define KCM_POOL_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "kcm.h"

#define POOL_MAX_COUNT 1024
#define POOL_MAX_ADDRS 16
/* A transport that lived this long was healthy: replace it at once, without backoff. */
#define POOL_STABLE_MS 1000

enum slot_state { IDLE, CONNECTING, UP };

struct slot {
	enum slot_state state;
	int fd;			/* connecting socket, or this process's fd of the transport */
	uint64_t due_ms;	/* IDLE: next attempt; CONNECTING: connect timeout */
	uint64_t up_ms;		/* when it came up */
	unsigned int failures;	/* consecutive failed attempts (the backoff exponent) */
	unsigned int attempts;	/* connects started, for the events */
	unsigned int addr;	/* index of the address it tries */
	bool draining;		/* the peer sent FIN; the transport still delivers */
	uint64_t cookie;
	char local[64], remote[64];
};

/* What the engine tells the command: "connected", "connect_failed", "failed", "ready". */
struct pool_event {
	const char *event;
	unsigned int slot;
	const char *remote;	/* the address tried, or the transport's peer */
	const char *stage;	/* connect_failed: "socket", "connect" or "attach" */
	int err;
	unsigned int retry_ms;
	uint64_t uptime_ms;	/* failed */
	const struct kcm_transport_event *ev; /* failed: the library's event, or NULL */
};

struct pool;
typedef void (*pool_report_fn)(struct pool *p, const struct pool_event *e);

struct pool {
	const char *name;
	struct kcm_mux *mux;
	struct kcm_transport_opts topts;
	struct sockaddr_storage addr[POOL_MAX_ADDRS];
	socklen_t addrlen[POOL_MAX_ADDRS];
	char addrname[POOL_MAX_ADDRS][64];
	unsigned int naddr;
	unsigned int count, up;
	unsigned int connect_timeout_ms, backoff_min_ms, backoff_max_ms;
	const char *ready_file;
	bool ready;
	struct slot *slots;
	unsigned int seed;
	pool_report_fn report;
};

/* pool_state.c: transitions, no I/O */
/* backoff_min doubling per consecutive failure up to backoff_max, +-25% jitter, never
 * above backoff_max. */
unsigned int pool_backoff_ms(struct pool *p, unsigned int failures);
/* Slot @idx's attempt failed at @now: IDLE, one failure more, its next attempt after the
 * backoff, on the name's next address. Returns the delay. */
unsigned int pool_slot_failed(struct pool *p, unsigned int idx, uint64_t now);
/* Slot @idx's connection is attached at @now. True when that made every slot UP. */
bool pool_slot_up(struct pool *p, unsigned int idx, uint64_t now);
/* Slot @idx lost its transport at @now: IDLE; replaced at once after POOL_STABLE_MS up,
 * else counted as a failed attempt (a peer that accepts and closes at once must not make
 * the pool reconnect in a loop). Returns the delay. */
unsigned int pool_slot_lost(struct pool *p, unsigned int idx, uint64_t now);

/* pool.c: the engine */
uint64_t pool_mono_ms(void);
uint64_t pool_wall_ms(void);
/* "HOST:PORT" or "[V6]:PORT" into p->addr: 0, -EINVAL (malformed) or -ENOENT (said why). */
int pool_resolve(struct pool *p, const char *spec);
/* Until a signal on @sig_fd (EXIT_OK) or a fatal error (its exit code, said why). */
int pool_run(struct pool *p, int sig_fd);
/* Unattach and close every slot; returns how many were attached. */
unsigned int pool_stop(struct pool *p);

#endif /* KCM_POOL_H */
