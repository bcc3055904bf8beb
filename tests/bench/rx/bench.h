/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* rx_bench: one receive benchmark run; the state shared by its senders and receivers. */
#ifndef KCM_BENCH_H
#define KCM_BENCH_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MAX_CONNS 64
#define MAX_WORKERS 16
/* conn (4), seq (4), send time (8) after the length; a tag in the last 8 bytes */
#define MSG_MIN 28

/* kcm-frame: the shipped Thrift parser program with its user-space splitter (batches);
 * kcm-prog: the same program without it (one message per redirect);
 * afkcm: the kernel's own AF_KCM (CONFIG_AF_KCM), for comparison */
enum variant { V_KCM, V_KCM_BATCH, V_DEMUX, V_DIRECT, V_KCM_FRAME, V_KCM_PROG, V_AFKCM };
enum mode { M_FIREHOSE, M_REQRESP };

struct cfg {
	enum variant variant;
	enum mode mode;
	uint32_t size;		/* whole message, length prefix included */
	unsigned int conns, workers;
	uint64_t msgs;		/* firehose: total to send (0 with --seconds) */
	double seconds;		/* reqresp, or a timed firehose (stall runs) */
	unsigned int outstanding;
	unsigned int hot_pct;	/* share of connection 0, 0 = even */
	unsigned int stall_ms;	/* worker 0 stops reading this long, mid-run */
	unsigned int batch;	/* kcm: messages per redirect (0 = libkcm's default) */
	const char *parser;	/* kcm-frame, kcm-prog: the parser object (--parser) */
	const char *pin;	/* kcm variants: pin the mux as this (--pin) */
	int member_rcvbuf;	/* kcm: SO_RCVBUF of each KCM socket (0 = libkcm's default) */
};

/* The documented tuning (docs/benchmarks.md): the variant kcm-batch. */
#define TUNED_BATCH 1024

struct worker {
	pthread_t th;
	unsigned int id;
	int fd;				/* kcm, afkcm: KCM socket; demux: its end of the pair */
	_Atomic uint64_t msgs;
	uint64_t pad[7];		/* one cache line per worker's counter */
};

struct bench {
	struct cfg cfg;
	int cli[MAX_CONNS];		/* client ends */
	int srv[MAX_CONNS];		/* accepted ends: the transports */
	pthread_mutex_t srv_lock[MAX_CONNS]; /* demux/direct replies: one writer at a time */
	struct worker w[MAX_WORKERS];
	_Atomic bool stop;		/* receivers and the client end */
	_Atomic bool stop_send;		/* a timed firehose: senders end */
	_Atomic bool stall_now;		/* worker 0: stop reading for cfg.stall_ms */
	_Atomic uint64_t corrupt, dup;
	_Atomic uint64_t sent;		/* firehose messages written by all senders */
	_Atomic uint64_t *seen[MAX_CONNS]; /* bitmap of seqs per connection */
	uint64_t seen_cap;		/* bits per connection */
};

extern struct bench B;

uint64_t now_ns(void);
/* Build message @seq of connection @conn at @p (cfg.size bytes). */
void msg_fill(uint8_t *p, uint32_t conn, uint32_t seq);
/* The same with the send time given (firehose senders read the clock once per write). */
void msg_fill_at(uint8_t *p, uint32_t conn, uint32_t seq, uint64_t ts);
/* Messages delivered so far, summed over the workers. */
uint64_t total_received(void);
/* Check, count and (reqresp) answer one received message; @reply sends it back. */
void deliver(struct worker *w, uint8_t *msg, size_t len, int (*reply)(struct worker *w,
	     const uint8_t *msg, size_t len));
/* Cut whole messages from @buf[0..*len): deliver each, keep the partial tail. */
void cut_frames(struct worker *w, uint8_t *buf, size_t *len,
		int (*reply)(struct worker *, const uint8_t *, size_t));
/* Write all of @buf to non-blocking @fd, waiting in poll() when full. */
int write_full(int fd, const void *buf, size_t len);
/* Worker 0 of a stall run sleeps here once, when asked. */
void maybe_stall(struct worker *w);

/* receivers.c: start the variant's receive path; stop it after B.stop. */
int rx_start(void);
void rx_stop(void);
/* Kernel memory the receive path holds now (SO_MEMINFO of its sockets). */
uint64_t rx_kernel_mem(void);

#endif /* KCM_BENCH_H */
