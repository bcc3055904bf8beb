// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * flow_check: receive flow control under load (docs/flow-control.md). One process: a mux,
 * N loopback TCP connections whose senders flood test messages (progs.h) in pipelined
 * batches, and M workers with one KCM socket each. Each mode stalls, closes, disables or
 * leaves out KCM sockets, samples what the mux holds, verifies that every message the
 * senders wrote arrived exactly once and intact, and prints one JSON object. The
 * assertions are the caller's (tests/bats/flow.bats).
 *
 * kcm_mux_flow() and kcm_unread() are referenced weakly so that this program runs on a
 * library without them: their figures are then null.
 */
#include <fcntl.h>
#include <getopt.h>
#include <linux/sock_diag.h>
#include <linux/sockios.h>
#include <linux/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "kcm.h"
#define PROG "flow_check"
#include "progs.h"

extern int kcm_mux_flow(struct kcm_mux *mux, struct kcm_flow *out) __attribute__((weak));
extern int64_t kcm_unread(int kcmfd) __attribute__((weak));

#define MAX_WORKERS 16
#define MAX_CONNS 64
#define SEQ_CAP (1u << 24)	/* seqs per connection: a counter byte each, touched lazily */
#define RECV_VLEN 16
#define SAMPLE_MS 20
#define MAX_SAMPLES 4096
#define ACT_WORKER 1		/* the worker that stalls, closes or disables (0-based) */
#define BETWEEN_TIMEOUT_S 20	/* one --between command */
#define RR_WAIT_MS 2000		/* rr: one message to arrive */

#ifndef SO_MEMINFO
#define SO_MEMINFO 55
#endif

enum mode { M_STALL, M_CLOSE, M_DISABLE, M_NOMEMBER, M_DISABLE_BOUND, M_RR };
static const char *const mode_names[] = {
	[M_STALL] = "stall", [M_CLOSE] = "close", [M_DISABLE] = "disable",
	[M_NOMEMBER] = "nomember", [M_DISABLE_BOUND] = "disable-bound", [M_RR] = "rr",
};

struct opts {
	enum mode mode;
	unsigned int workers, conns;
	uint32_t size;
	const char *prog;
	const char *split;	/* --split: the shipped parser that splits batches */
	uint32_t window;
	const char *pin;
	bool json;
	unsigned int timeout_s;
	bool stall_all;
	unsigned int stall_ms, before_ms, after_ms;
	uint32_t count;
	uint32_t close_after;
	unsigned int pause_ms;
	unsigned int wait_ms;
	unsigned int quiet_ms;
	unsigned int act_timeout_ms;
	unsigned int batch;	/* messages per write() */
	uint64_t max_inflight;
	int member_rcvbuf;
	const char *between;
	const char *spare_file;
	const char *hold_file;
	bool trace;
};

static struct opts o = {
	.workers = 4,
	.conns = 4,
	.size = 1024,
	.timeout_s = 60,
	.stall_ms = 2000,
	.before_ms = 1000,
	.after_ms = 1500,
	.close_after = 1000,
	.pause_ms = 200,
	.wait_ms = 1000,
	.quiet_ms = 1500,
	.act_timeout_ms = 5000,
	.batch = 64,
	.max_inflight = 1ull << 30,
};

enum action { ACT_NONE, ACT_CLOSE, ACT_DISABLE };

struct worker {
	unsigned int id;
	int fd;
	pthread_t thread;
	bool running;
	atomic_uint_fast64_t msgs, bytes;
	atomic_bool stalled;		/* stall mode: do not read */
	int err;			/* receive failure that stopped it */
	/* the one worker that closes or disables (ACT_WORKER) */
	enum action act;
	uint64_t act_after;		/* messages read first */
	unsigned int act_pause_ms;	/* then no reads for this long */
	atomic_bool acted;		/* its close/disable call returned */
	atomic_bool acting;		/* inside the call */
	uint64_t act_start_ns, act_ns;
	int act_ret, act_errno;
	struct kcm_requeue_report rep;
	uint64_t read_after;		/* disable: messages read after it, until EAGAIN */
	int64_t unread_before;		/* kcm_unread() before the call, -1: unknown */
	uint32_t rmem_before, rcvbuf;	/* SO_MEMINFO before the call: was its buffer full? */
	uint64_t msgs_at_act;
};

struct sender {
	unsigned int id;
	int fd;				/* client end */
	int sfd;			/* server end (ours; the mux holds its own) */
	pthread_t thread;
	bool running;
	uint32_t limit;			/* messages to send; 0: until told to stop */
	atomic_uint_fast64_t msgs, bytes;
	atomic_bool done;
	int err;
};

struct sample {
	uint64_t t;
	uint64_t wmsgs[MAX_WORKERS];
	uint64_t sbytes;
	bool capped;
	bool stall;
	bool all_zero_wnd;
};

static struct worker workers[MAX_WORKERS];
static struct sender senders[MAX_CONNS];
static _Atomic uint8_t *seen[MAX_CONNS];
static atomic_uint_fast64_t n_unique, n_dup, n_corrupt, last_rx_ns;
static atomic_bool stop_send, stop_recv, traffic;
static atomic_uint capped_now;
static volatile sig_atomic_t got_signal;
static uint64_t deadline_ns, start_ns;
static struct kcm_mux *mux;
static unsigned int nworkers_made;
static struct sample *samples;
static unsigned int nsamples;
static bool timed_out, interrupted, stuck;

static void usage(FILE *f)
{
	fprintf(f,
"usage: " PROG " MODE [options]\n"
"Receive flow control under load: N loopback TCP connections flood test messages\n"
"(u32be+4, tests/progs.h) into a mux read by M workers; prints one JSON object.\n"
"\n"
"Modes:\n"
"  stall          traffic --before-ms, then one worker (or all) stops reading for\n"
"                 --stall-ms, then --after-ms more; samples every %d ms\n"
"  close          --count messages per connection; worker 1 reads --close-after, stops\n"
"                 reading for --pause-ms, then kcm_close(); the others read the rest\n"
"  disable        as close, but kcm_recv_disable(), read until EAGAIN, then kcm_close()\n"
"  nomember       --count messages per connection while no KCM socket exists for\n"
"                 --wait-ms, then the workers start\n"
"  disable-bound  senders flood; worker 1 reads nothing for --stall-ms, then\n"
"                 kcm_recv_disable(): how long it blocks\n"
"  rr             one connection, --count messages (default 40) one at a time, each\n"
"                 delivered before the next; --between CMD after every 10th\n"
"\n"
"Options:\n"
"  --workers M          KCM sockets, one thread each (default 4, max %d)\n"
"  --conns N            connections, one sender thread each (default 4, max %d)\n"
"  --size BYTES         body bytes of each message (default 1024, at least 12)\n"
"  --prog OBJ           parser-program mux (kcm_mux_opts.parser) instead of u32be+4\n"
"  --split NAME         with --prog: batch, split by shipped parser NAME (kcm_mux_opts.splitter)\n"
"  --window BYTES       kcm_mux_opts.rx_window (default 0: the library's)\n"
"  --member-rcvbuf B    kcm_mux_opts.member_rcvbuf (default 0: the library's)\n"
"  --pin NAME           pin the mux as NAME while running (kcm-loader stats NAME)\n"
"  --hold-file PATH     when done, create PATH and keep the mux pinned until PATH is\n"
"                       removed (at most --timeout seconds)\n"
"  --batch N            messages per write() (default 64)\n"
"  --max-inflight B     senders pause while more than B bytes are written and not yet\n"
"                       read (default 1 GiB, a safety cap; pauses are reported)\n"
"  --timeout SEC        bound on the whole run (default 60)\n"
"  --quiet-ms MS        draining ends after MS without a message (default 1500)\n"
"  --trace              print every sample to stderr: charged KiB, the mux's unread KiB,\n"
"                       braked transports, saturated and brake counts, unread per worker\n"
"  --json               print JSON (the only output format; accepted for symmetry)\n"
"  --help               show this help\n"
"stall:\n"
"  --stall one|all      stall worker 0, or every worker (default one)\n"
"  --stall-ms MS        how long (default 2000; disable-bound: default 1000)\n"
"  --before-ms MS       traffic before the stall (default 1000)\n"
"  --after-ms MS        traffic after it (default 1500)\n"
"other modes:\n"
"  --count N            messages per connection (close/disable 50000, nomember 5000,\n"
"                       rr 40)\n"
"  --close-after N      close/disable: messages worker 1 reads first (default 1000)\n"
"  --pause-ms MS        close/disable: then no reads for MS (default 200)\n"
"  --wait-ms MS         nomember: how long no KCM socket exists (default 1000)\n"
"  --act-timeout MS     disable-bound: stop waiting for kcm_recv_disable() after MS\n"
"                       (default 5000; the result is then \"stuck\")\n"
"  --between CMD        rr: shell command run after every 10th message (stdout goes\n"
"                       to stderr)\n"
"  --spare-file PATH    rr: hold a spare loopback TCP connection and write the \"PID FD\"\n"
"                       of its server end to PATH (for kcm-loader attach --pid --fd)\n"
"\n"
"Exit status: 0 the run happened (see the JSON; \"result\" is \"timeout\" when --timeout\n"
"cut it short), 1 setup failure or interrupted, 2 usage error.\n",
		SAMPLE_MS, MAX_WORKERS, MAX_CONNS);
}

static void parse_args(int argc, char **argv)
{
	enum { O_WORKERS = 256, O_CONNS, O_SIZE, O_PROG, O_WINDOW, O_MEMBER_RCVBUF, O_PIN,
	       O_HOLD, O_BATCH, O_MAX_INFLIGHT, O_TIMEOUT, O_QUIET, O_JSON, O_HELP, O_STALL,
	       O_STALL_MS, O_BEFORE, O_AFTER, O_COUNT, O_CLOSE_AFTER, O_PAUSE, O_WAIT,
	       O_BETWEEN, O_SPARE, O_ACT_TIMEOUT, O_SPLIT, O_TRACE };
	static const struct option lo[] = {
		{ "workers", required_argument, NULL, O_WORKERS },
		{ "conns", required_argument, NULL, O_CONNS },
		{ "size", required_argument, NULL, O_SIZE },
		{ "prog", required_argument, NULL, O_PROG },
		{ "split", required_argument, NULL, O_SPLIT },
		{ "window", required_argument, NULL, O_WINDOW },
		{ "member-rcvbuf", required_argument, NULL, O_MEMBER_RCVBUF },
		{ "pin", required_argument, NULL, O_PIN },
		{ "hold-file", required_argument, NULL, O_HOLD },
		{ "batch", required_argument, NULL, O_BATCH },
		{ "max-inflight", required_argument, NULL, O_MAX_INFLIGHT },
		{ "timeout", required_argument, NULL, O_TIMEOUT },
		{ "quiet-ms", required_argument, NULL, O_QUIET },
		{ "json", no_argument, NULL, O_JSON },
		{ "trace", no_argument, NULL, O_TRACE },
		{ "help", no_argument, NULL, O_HELP },
		{ "stall", required_argument, NULL, O_STALL },
		{ "stall-ms", required_argument, NULL, O_STALL_MS },
		{ "before-ms", required_argument, NULL, O_BEFORE },
		{ "after-ms", required_argument, NULL, O_AFTER },
		{ "count", required_argument, NULL, O_COUNT },
		{ "close-after", required_argument, NULL, O_CLOSE_AFTER },
		{ "pause-ms", required_argument, NULL, O_PAUSE },
		{ "wait-ms", required_argument, NULL, O_WAIT },
		{ "between", required_argument, NULL, O_BETWEEN },
		{ "spare-file", required_argument, NULL, O_SPARE },
		{ "act-timeout", required_argument, NULL, O_ACT_TIMEOUT },
		{ 0 }
	};
	bool stall_ms_set = false;
	unsigned int m;
	int c;

	/* --help anywhere, even without a mode */
	for (int i = 1; i < argc; i++)
		if (!strcmp(argv[i], "--help")) {
			usage(stdout);
			exit(0);
		}
	if (argc < 2 || argv[1][0] == '-')
		usage_error("a mode is required: stall, close, disable, nomember, disable-bound "
			    "or rr");
	for (m = 0; m <= M_RR; m++)
		if (!strcmp(argv[1], mode_names[m]))
			break;
	if (m > M_RR)
		usage_error("unknown mode '%s': expected stall, close, disable, nomember, "
			    "disable-bound or rr", argv[1]);
	o.mode = m;
	optind = 2;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":", lo, NULL)) != -1) {
		switch (c) {
		case O_WORKERS:
			o.workers = parse_num("--workers", optarg, 1, MAX_WORKERS);
			break;
		case O_CONNS:
			o.conns = parse_num("--conns", optarg, 1, MAX_CONNS);
			break;
		case O_SIZE:
			o.size = parse_num("--size", optarg, PROG_BODY_IDS, 1u << 20);
			break;
		case O_SPLIT:
			o.split = optarg;
			break;
		case O_PROG:
			o.prog = optarg;
			break;
		case O_WINDOW:
			o.window = parse_num("--window", optarg, 0, UINT32_MAX);
			break;
		case O_MEMBER_RCVBUF:
			o.member_rcvbuf = parse_num("--member-rcvbuf", optarg, 4096, INT32_MAX);
			break;
		case O_PIN:
			if (!*optarg || strlen(optarg) >= KCM_NAME_MAX || strchr(optarg, '/'))
				usage_error("invalid --pin '%s': 1..%d characters, no '/'", optarg,
					    KCM_NAME_MAX - 1);
			o.pin = optarg;
			break;
		case O_HOLD:
			o.hold_file = optarg;
			break;
		case O_BATCH:
			o.batch = parse_num("--batch", optarg, 1, 4096);
			break;
		case O_MAX_INFLIGHT:
			o.max_inflight = parse_num("--max-inflight", optarg, 1 << 20, 1ull << 40);
			break;
		case O_TIMEOUT:
			o.timeout_s = parse_num("--timeout", optarg, 1, 3600);
			break;
		case O_QUIET:
			o.quiet_ms = parse_num("--quiet-ms", optarg, 100, 600000);
			break;
		case O_JSON:
			o.json = true;
			break;
		case O_TRACE:
			o.trace = true;
			break;
		case O_STALL:
			if (strcmp(optarg, "one") && strcmp(optarg, "all"))
				usage_error("invalid --stall '%s': expected one or all", optarg);
			o.stall_all = !strcmp(optarg, "all");
			break;
		case O_STALL_MS:
			o.stall_ms = parse_num("--stall-ms", optarg, 1, 600000);
			stall_ms_set = true;
			break;
		case O_BEFORE:
			o.before_ms = parse_num("--before-ms", optarg, 200, 600000);
			break;
		case O_AFTER:
			o.after_ms = parse_num("--after-ms", optarg, 0, 600000);
			break;
		case O_COUNT:
			o.count = parse_num("--count", optarg, 1, SEQ_CAP);
			break;
		case O_CLOSE_AFTER:
			o.close_after = parse_num("--close-after", optarg, 0, UINT32_MAX);
			break;
		case O_PAUSE:
			o.pause_ms = parse_num("--pause-ms", optarg, 0, 600000);
			break;
		case O_WAIT:
			o.wait_ms = parse_num("--wait-ms", optarg, 0, 600000);
			break;
		case O_BETWEEN:
			o.between = optarg;
			break;
		case O_SPARE:
			o.spare_file = optarg;
			break;
		case O_ACT_TIMEOUT:
			o.act_timeout_ms = parse_num("--act-timeout", optarg, 1, 600000);
			break;
		case ':':
			usage_error("option %s needs an argument", argv[optind - 1]);
		default:
			usage_error("unknown option '%s'", argv[optind - 1]);
		}
	}
	if (optind < argc)
		usage_error("unexpected argument '%s'", argv[optind]);
	if ((o.mode == M_CLOSE || o.mode == M_DISABLE || o.mode == M_DISABLE_BOUND) &&
	    o.workers < 2)
		usage_error("mode %s needs --workers 2 or more (worker 1 acts, the others read)",
			    mode_names[o.mode]);
	if (o.mode == M_RR) {
		if (!o.count)
			o.count = 40;
		o.conns = 1;
	}
	if (!o.count)
		o.count = o.mode == M_NOMEMBER ? 5000 : 50000;
	if (o.mode == M_DISABLE_BOUND && !stall_ms_set)
		o.stall_ms = 1000;
	if ((o.between || o.spare_file) && o.mode != M_RR)
		usage_error("--between and --spare-file are for mode rr");
}

static void on_signal(int sig)
{
	got_signal = sig;
}

/* Out of time or interrupted: every wait in main checks this. */
static bool must_stop(void)
{
	if (got_signal) {
		interrupted = true;
		return true;
	}
	if (now_ns() >= deadline_ns) {
		timed_out = true;
		return true;
	}
	return false;
}

static void sleep_ms(unsigned int ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	nanosleep(&ts, NULL); /* EINTR: the caller looks at must_stop() */
}

/* Threads leave SIGINT and SIGTERM to the main thread. */
static int start_thread(pthread_t *t, void *(*fn)(void *), void *arg)
{
	sigset_t all, old;
	int err;

	sigemptyset(&all);
	sigaddset(&all, SIGINT);
	sigaddset(&all, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	err = pthread_create(t, NULL, fn, arg);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return err;
}

static uint64_t total_sent_bytes(void)
{
	uint64_t s = 0;

	for (unsigned int i = 0; i < o.conns; i++)
		s += atomic_load_explicit(&senders[i].bytes, memory_order_relaxed);
	return s;
}

static uint64_t total_recv(bool bytes);

/* Written and not yet read; a reader can count bytes before their writer does. */
static uint64_t inflight_bytes(void)
{
	int64_t d = (int64_t)(total_sent_bytes() - total_recv(true));

	return d > 0 ? (uint64_t)d : 0;
}

static uint64_t total_recv(bool bytes)
{
	uint64_t s = 0;

	for (unsigned int i = 0; i < MAX_WORKERS; i++)
		s += atomic_load_explicit(bytes ? &workers[i].bytes : &workers[i].msgs,
					  memory_order_relaxed);
	return s;
}

/* ---- receiving and verifying ---- */

static void check_message(const uint8_t *buf, size_t len, bool trunc)
{
	uint32_t conn, seq;

	if (trunc || len != 4 + (size_t)o.size || msg_check(buf, len, &conn, &seq) ||
	    conn >= o.conns || seq >= SEQ_CAP) {
		atomic_fetch_add(&n_corrupt, 1);
		return;
	}
	if (atomic_fetch_add_explicit(&seen[conn][seq], 1, memory_order_relaxed))
		atomic_fetch_add(&n_dup, 1);
	else
		atomic_fetch_add_explicit(&n_unique, 1, memory_order_relaxed);
}

struct rxbuf {
	struct mmsghdr vec[RECV_VLEN];
	struct iovec iov[RECV_VLEN];
	uint8_t *mem;
	size_t cap;
};

static int rxbuf_init(struct rxbuf *rb)
{
	/* room for one byte more than a test message: anything longer shows as corrupt */
	rb->cap = 4 + (size_t)o.size + 64;
	rb->mem = malloc(rb->cap * RECV_VLEN);
	return rb->mem ? 0 : -ENOMEM;
}

/* Read what is queued now (MSG_DONTWAIT): messages read, 0 on EAGAIN, -errno. */
static int read_batch(struct worker *w, struct rxbuf *rb)
{
	int n;

	for (unsigned int i = 0; i < RECV_VLEN; i++) {
		rb->iov[i] = (struct iovec){ rb->mem + i * rb->cap, rb->cap };
		rb->vec[i].msg_hdr = (struct msghdr){ .msg_iov = &rb->iov[i], .msg_iovlen = 1 };
		rb->vec[i].msg_len = 0;
	}
	n = kcm_recvmmsg(w->fd, rb->vec, RECV_VLEN, MSG_DONTWAIT);
	if (n < 0) {
		if (errno == EAGAIN || errno == EINTR)
			return 0;
		if (errno == EBADMSG) { /* bytes that were no message were dropped */
			atomic_fetch_add(&n_corrupt, 1);
			return 0;
		}
		return -errno;
	}
	for (int i = 0; i < n; i++) {
		check_message(rb->mem + i * rb->cap, rb->vec[i].msg_len,
			      rb->vec[i].msg_hdr.msg_flags & MSG_TRUNC);
		atomic_fetch_add_explicit(&w->bytes, rb->vec[i].msg_len, memory_order_relaxed);
	}
	atomic_fetch_add_explicit(&w->msgs, n, memory_order_relaxed);
	if (n)
		atomic_store_explicit(&last_rx_ns, now_ns(), memory_order_relaxed);
	return n;
}

/* Stop reading for @ms (bounded by the run's stop flag). */
static void pause_reading(unsigned int ms)
{
	uint64_t end = now_ns() + (uint64_t)ms * 1000000;

	while (now_ns() < end && !atomic_load(&stop_recv))
		sleep_ms(2);
}

/* Worker 1 in close, disable and disable-bound: the call under test, timed. */
static void worker_act(struct worker *w, struct rxbuf *rb)
{
	uint32_t mi[SK_MEMINFO_VARS];
	socklen_t len = sizeof(mi);
	uint64_t t0;
	int r;

	w->msgs_at_act = atomic_load(&w->msgs);
	w->unread_before = kcm_unread ? kcm_unread(w->fd) : -1;
	if (!getsockopt(w->fd, SOL_SOCKET, SO_MEMINFO, mi, &len)) {
		w->rmem_before = mi[SK_MEMINFO_RMEM_ALLOC];
		w->rcvbuf = mi[SK_MEMINFO_RCVBUF];
	}
	t0 = now_ns();
	w->act_start_ns = t0;
	atomic_store(&w->acting, true);
	if (w->act == ACT_CLOSE) {
		r = kcm_close(w->fd);
		w->act_errno = r ? errno : 0;
		w->act_ns = now_ns() - t0;
		w->act_ret = r;
		w->fd = -1;
	} else {
		r = kcm_recv_disable(w->fd, true, &w->rep);
		w->act_errno = r ? errno : 0;
		w->act_ns = now_ns() - t0;
		w->act_ret = r;
		/* what it kept is still readable here: read it, then leave */
		for (;;) {
			int n = read_batch(w, rb);

			if (n <= 0)
				break;
			w->read_after += n;
		}
		kcm_close(w->fd);
		w->fd = -1;
	}
	atomic_store(&w->acting, false);
	atomic_store(&w->acted, true);
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct rxbuf rb;

	if (rxbuf_init(&rb)) {
		w->err = ENOMEM;
		return NULL;
	}
	while (!atomic_load(&stop_recv)) {
		struct pollfd p = { w->fd, POLLIN, 0 };
		int n;

		if (w->act && !atomic_load(&w->acted) && atomic_load(&traffic) &&
		    atomic_load(&w->msgs) >= w->act_after) {
			pause_reading(w->act_pause_ms);
			if (atomic_load(&stop_recv))
				break;
			worker_act(w, &rb);
			break;
		}
		if (atomic_load_explicit(&w->stalled, memory_order_relaxed)) {
			sleep_ms(2);
			continue;
		}
		if (poll(&p, 1, 20) < 0 && errno != EINTR) {
			w->err = errno;
			break;
		}
		do {
			n = read_batch(w, &rb);
		} while (n > 0 && !atomic_load_explicit(&w->stalled, memory_order_relaxed) &&
			 !(w->act && atomic_load(&w->msgs) >= w->act_after));
		if (n < 0) {
			w->err = -n;
			break;
		}
	}
	free(rb.mem);
	return NULL;
}

/* ---- sending ---- */

static void *sender_main(void *arg)
{
	struct sender *s = arg;
	size_t mlen = 4 + (size_t)o.size;
	uint8_t *buf = malloc(mlen * o.batch);
	uint32_t seq = 0;

	if (!buf) {
		s->err = ENOMEM;
		goto out;
	}
	while (!atomic_load(&stop_send) && (!s->limit || seq < s->limit)) {
		uint32_t n = o.batch;
		size_t fill = 0;
		int err;

		if (s->limit && s->limit - seq < n)
			n = s->limit - seq;
		if (seq + n > SEQ_CAP)
			break;
		/* a safety cap on what flow control failed to stop: reported, never silent */
		if (inflight_bytes() > o.max_inflight) {
			atomic_fetch_add(&capped_now, 1);
			while (!atomic_load(&stop_send) && inflight_bytes() > o.max_inflight)
				sleep_ms(1);
			atomic_fetch_sub(&capped_now, 1);
			continue;
		}
		for (uint32_t i = 0; i < n; i++)
			fill += msg_build(buf + fill, s->id, seq + i, o.size);
		err = write_all_err(s->fd, buf, fill);
		if (err) {
			s->err = -err;
			break;
		}
		seq += n;
		atomic_fetch_add_explicit(&s->msgs, n, memory_order_relaxed);
		atomic_fetch_add_explicit(&s->bytes, fill, memory_order_relaxed);
	}
	free(buf);
out:
	atomic_store(&s->done, true);
	return NULL;
}

/* ---- setup ---- */

static int make_mux(void)
{
	struct kcm_mux_opts mo = { .sz = sizeof(mo) };

	mo.framing = KCM_FRAMING_THRIFT;
	mo.parser = o.prog;
	mo.splitter = o.split;
	mo.max_msg_size = 4 + o.size > 65536 ? 4 + o.size : 0;
	mo.member_rcvbuf = o.member_rcvbuf;
	mo.pin_name = o.pin;
	mo.rx_window = o.window;
	mux = mux_create_verbose(&mo);
	if (!mux)
		return -1;
	return 0;
}

/* N connections to a listener on 127.0.0.1 (in whatever namespace we run). */
static int make_conns(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t al = sizeof(a);
	int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (l < 0 || bind(l, (struct sockaddr *)&a, sizeof(a)) || listen(l, MAX_CONNS) ||
	    getsockname(l, (struct sockaddr *)&a, &al)) {
		fprintf(stderr, PROG ": failed to listen on 127.0.0.1 (is lo up?): %s\n",
			strerror(errno));
		if (l >= 0)
			close(l);
		return -1;
	}
	for (unsigned int i = 0; i < o.conns; i++) {
		struct sender *s = &senders[i];

		s->id = i;
		s->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (s->fd < 0 || connect(s->fd, (struct sockaddr *)&a, sizeof(a))) {
			fprintf(stderr, PROG ": failed to connect connection %u to 127.0.0.1:%u: %s\n",
				i, ntohs(a.sin_port), strerror(errno));
			close(l);
			return -1;
		}
		s->sfd = accept4(l, NULL, NULL, SOCK_CLOEXEC);
		if (s->sfd < 0) {
			fprintf(stderr, PROG ": failed to accept connection %u: %s\n", i,
				strerror(errno));
			close(l);
			return -1;
		}
	}
	close(l);
	return 0;
}

static int attach_conns(void)
{
	for (unsigned int i = 0; i < o.conns; i++) {
		if (kcm_attach(mux, senders[i].sfd)) {
			const char *why = kcm_last_error();

			fprintf(stderr, PROG ": failed to attach connection %u: %s\n", i,
				why && *why ? why : strerror(errno));
			return -1;
		}
	}
	return 0;
}

static int make_workers(void)
{
	for (unsigned int i = 0; i < o.workers; i++) {
		struct worker *w = &workers[i];

		w->id = i;
		w->unread_before = -1;
		w->fd = i ? kcm_clone(workers[0].fd) : kcm_socket(mux);
		if (w->fd < 0) {
			fprintf(stderr, PROG ": failed to create KCM socket %u: %s\n", i,
				strerror(errno));
			return -1;
		}
		nworkers_made++;
	}
	return 0;
}

static int start_workers(void)
{
	for (unsigned int i = 0; i < o.workers; i++) {
		errno = start_thread(&workers[i].thread, worker_main, &workers[i]);
		if (errno) {
			fprintf(stderr, PROG ": failed to start worker %u: %s\n", i, strerror(errno));
			return -1;
		}
		workers[i].running = true;
	}
	return 0;
}

static int start_senders(uint32_t limit)
{
	atomic_store(&traffic, true);
	for (unsigned int i = 0; i < o.conns; i++) {
		senders[i].limit = limit;
		errno = start_thread(&senders[i].thread, sender_main, &senders[i]);
		if (errno) {
			fprintf(stderr, PROG ": failed to start sender %u: %s\n", i, strerror(errno));
			return -1;
		}
		senders[i].running = true;
	}
	return 0;
}

static bool senders_done(void)
{
	for (unsigned int i = 0; i < o.conns; i++)
		if (senders[i].running && !atomic_load(&senders[i].done))
			return false;
	return true;
}

/* Ask the senders to stop; one still blocked in write() after @grace_ms is cut off. */
static void stop_senders(unsigned int grace_ms)
{
	uint64_t end = now_ns() + (uint64_t)grace_ms * 1000000;

	atomic_store(&stop_send, true);
	while (!senders_done() && now_ns() < end && !got_signal)
		sleep_ms(5);
	for (unsigned int i = 0; i < o.conns; i++) {
		if (!senders[i].running)
			continue;
		if (!atomic_load(&senders[i].done))
			shutdown(senders[i].fd, SHUT_WR); /* EPIPE in the blocked write() */
		pthread_join(senders[i].thread, NULL);
		senders[i].running = false;
	}
}

static uint64_t expected_total(void)
{
	uint64_t s = 0;

	for (unsigned int i = 0; i < o.conns; i++)
		s += atomic_load(&senders[i].msgs);
	return s;
}

/* Until every written message arrived, or none came for --quiet-ms, or time is up. */
static void drain(void)
{
	uint64_t quiet = (uint64_t)o.quiet_ms * 1000000;

	atomic_store(&last_rx_ns, now_ns());
	while (!must_stop()) {
		uint64_t last = atomic_load(&last_rx_ns), now = now_ns();

		if (atomic_load(&n_unique) >= expected_total())
			break;
		if (now > last && now - last > quiet)
			break;
		sleep_ms(10);
	}
}

/* Join the workers; false when one is stuck in a library call. */
static bool stop_workers(void)
{
	bool ok = true;

	atomic_store(&stop_recv, true);
	for (unsigned int i = 0; i < o.workers; i++) {
		struct timespec ts;

		if (!workers[i].running)
			continue;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += 3; /* they poll every 20 ms: only a call into the library lasts */
		if (pthread_timedjoin_np(workers[i].thread, NULL, &ts)) {
			fprintf(stderr, PROG ": worker %u is stuck%s\n", i,
				atomic_load(&workers[i].acting) ? " in the call under test" : "");
			ok = false;
			continue;
		}
		workers[i].running = false;
	}
	return ok;
}

/* ---- samples ---- */

struct peaks {
	int64_t unread[MAX_WORKERS];	/* -1: unknown */
	uint64_t charged, charged_transports, inflight;
	int64_t mux_unread, held;	/* -1: unknown */
	int64_t braked;
	uint64_t outq;			/* senders' SIOCOUTQ, summed */
	int64_t min_snd_wnd;		/* during the stall, -1: none */
	uint64_t outq_stall_mid, outq_stall_end;
};

static struct peaks pk;

static uint64_t rmem_alloc(int fd)
{
	uint32_t mi[SK_MEMINFO_VARS];
	socklen_t len = sizeof(mi);

	if (fd < 0 || getsockopt(fd, SOL_SOCKET, SO_MEMINFO, mi, &len))
		return 0;
	return mi[SK_MEMINFO_RMEM_ALLOC];
}

/* --trace: one line per sample, for finding where a bound goes wrong. */
static void trace_sample(bool in_stall, uint64_t charged)
{
	struct kcm_flow f = { .sz = sizeof(f) };

	if (!kcm_mux_flow || kcm_mux_flow(mux, &f))
		return;
	fprintf(stderr, "t=%llu stall=%d charged=%llu unread=%llu braked=%u saturated=%llu "
		"brakes=%llu worker_unread=[", (unsigned long long)(now_ns() / 1000000),
		in_stall, (unsigned long long)charged >> 10,
		(unsigned long long)f.unread_bytes >> 10, (unsigned)f.braked,
		(unsigned long long)f.saturated, (unsigned long long)f.brakes);
	for (unsigned int i = 0; i < o.workers; i++) {
		int fd = workers[i].fd;

		fprintf(stderr, "%s%lld", i ? "," : "",
			(long long)(fd >= 0 && kcm_unread ? kcm_unread(fd) >> 10 : -1));
	}
	fprintf(stderr, "]\n");
}

static void take_sample(bool in_stall)
{
	struct sample *s;
	uint64_t charged = 0, ct = 0, outq = 0, inflight;
	bool all_zero = true;

	for (unsigned int i = 0; i < o.workers; i++) {
		int fd = workers[i].fd;

		charged += rmem_alloc(fd);
		if (kcm_unread && fd >= 0) {
			int64_t u = kcm_unread(fd);

			if (u > pk.unread[i])
				pk.unread[i] = u;
		}
	}
	for (unsigned int i = 0; i < o.conns; i++) {
		struct tcp_info ti;
		socklen_t len = sizeof(ti);
		int q = 0;

		ct += rmem_alloc(senders[i].sfd);
		if (!ioctl(senders[i].fd, SIOCOUTQ, &q))
			outq += q;
		memset(&ti, 0, sizeof(ti));
		if (getsockopt(senders[i].fd, IPPROTO_TCP, TCP_INFO, &ti, &len) ||
		    len < offsetof(struct tcp_info, tcpi_snd_wnd) + sizeof(ti.tcpi_snd_wnd)) {
			all_zero = false;
			continue;
		}
		if (ti.tcpi_snd_wnd)
			all_zero = false;
		if (in_stall && (pk.min_snd_wnd < 0 || ti.tcpi_snd_wnd < pk.min_snd_wnd))
			pk.min_snd_wnd = ti.tcpi_snd_wnd;
	}
	if (charged > pk.charged)
		pk.charged = charged;
	if (ct > pk.charged_transports)
		pk.charged_transports = ct;
	if (outq > pk.outq)
		pk.outq = outq;
	if (kcm_mux_flow) {
		struct kcm_flow f = { .sz = sizeof(f) };

		if (!kcm_mux_flow(mux, &f)) {
			if ((int64_t)f.unread_bytes > pk.mux_unread)
				pk.mux_unread = f.unread_bytes;
			if ((int64_t)f.held_bytes > pk.held)
				pk.held = f.held_bytes;
			if ((int64_t)f.braked > pk.braked)
				pk.braked = f.braked;
		}
	}
	if (o.trace)
		trace_sample(in_stall, charged);
	inflight = total_sent_bytes() - total_recv(true);
	if ((int64_t)inflight > 0 && inflight > pk.inflight)
		pk.inflight = inflight;
	if (nsamples == MAX_SAMPLES)
		return;
	s = &samples[nsamples++];
	s->t = now_ns();
	for (unsigned int i = 0; i < o.workers; i++)
		s->wmsgs[i] = atomic_load_explicit(&workers[i].msgs, memory_order_relaxed);
	s->sbytes = total_sent_bytes();
	s->capped = atomic_load(&capped_now) > 0;
	s->stall = in_stall;
	s->all_zero_wnd = all_zero && o.conns;
	if (in_stall)
		pk.outq_stall_end = outq;
}

/* The first sample at or after @t. */
static unsigned int sample_at(uint64_t t)
{
	unsigned int i = 0;

	while (i + 1 < nsamples && samples[i].t < t)
		i++;
	return i;
}

/* Messages per second of the workers in @mask (bit per worker) between two times. */
static double rate(uint32_t mask, uint64_t from, uint64_t to)
{
	unsigned int a = sample_at(from), b = sample_at(to);
	uint64_t n = 0;

	if (b <= a)
		return 0;
	for (unsigned int w = 0; w < o.workers; w++)
		if (mask & (1u << w))
			n += samples[b].wmsgs[w] - samples[a].wmsgs[w];
	return n / ((samples[b].t - samples[a].t) / 1e9);
}

static double send_rate(uint64_t from, uint64_t to)
{
	unsigned int a = sample_at(from), b = sample_at(to);

	if (b <= a)
		return 0;
	return (samples[b].sbytes - samples[a].sbytes) / ((samples[b].t - samples[a].t) / 1e9);
}

/* ---- JSON ---- */

static void json_num_or_null(const char *key, bool known, double v, bool comma)
{
	if (known)
		printf("\"%s\":%.3f%s", key, v, comma ? "," : "");
	else
		printf("\"%s\":null%s", key, comma ? "," : "");
}

static void json_int_or_null(const char *key, int64_t v, bool comma)
{
	if (v >= 0)
		printf("\"%s\":%lld%s", key, (long long)v, comma ? "," : "");
	else
		printf("\"%s\":null%s", key, comma ? "," : "");
}

static uint64_t count_missing(void)
{
	uint64_t missing = 0;

	for (unsigned int c = 0; c < o.conns; c++) {
		uint64_t n = atomic_load(&senders[c].msgs);

		for (uint64_t s = 0; s < n; s++)
			missing += !atomic_load_explicit(&seen[c][s], memory_order_relaxed);
	}
	return missing;
}

/* What every mode reports. */
static void json_common(void)
{
	struct kcm_flow f = { .sz = sizeof(f) };
	bool have_flow = kcm_mux_flow && mux && !kcm_mux_flow(mux, &f);
	uint64_t sent = expected_total();

	printf("{\"mode\":\"%s\",\"result\":\"%s\",\"prog\":%s%s%s,\"workers\":%u,\"conns\":%u,"
	       "\"size\":%u,", mode_names[o.mode],
	       interrupted ? "interrupted" : timed_out ? "timeout" : stuck ? "stuck" : "done",
	       o.prog ? "\"" : "", o.prog ? o.prog : "null", o.prog ? "\"" : "", o.workers,
	       o.conns, o.size);
	printf("\"flow_api\":%s,\"unread_api\":%s,", kcm_mux_flow ? "true" : "false",
	       kcm_unread ? "true" : "false");
	if (have_flow)
		printf("\"window\":%u,\"flow\":{\"members\":%u,\"unread_bytes\":%llu,"
		       "\"held_bytes\":%llu,\"transports\":%u,\"braked\":%u,\"brakes\":%llu,"
		       "\"releases\":%llu,\"saturated\":%llu,\"controller\":%d},",
		       f.window, f.members, (unsigned long long)f.unread_bytes,
		       (unsigned long long)f.held_bytes, f.transports, f.braked,
		       (unsigned long long)f.brakes, (unsigned long long)f.releases,
		       (unsigned long long)f.saturated, (int)f.controller);
	else
		printf("\"window\":null,\"flow\":null,");
	printf("\"sent\":%llu,\"received\":%llu,\"unique\":%llu,\"duplicates\":%llu,"
	       "\"missing\":%llu,\"corrupt\":%llu,\"per_worker\":[",
	       (unsigned long long)sent, (unsigned long long)total_recv(false),
	       (unsigned long long)atomic_load(&n_unique), (unsigned long long)atomic_load(&n_dup),
	       (unsigned long long)count_missing(), (unsigned long long)atomic_load(&n_corrupt));
	for (unsigned int i = 0; i < o.workers; i++)
		printf("%s%llu", i ? "," : "", (unsigned long long)atomic_load(&workers[i].msgs));
	printf("],\"worker_errors\":[");
	for (unsigned int i = 0; i < o.workers; i++)
		printf("%s%d", i ? "," : "", workers[i].err);
	printf("],\"sender_errors\":[");
	for (unsigned int i = 0; i < o.conns; i++)
		printf("%s%d", i ? "," : "", senders[i].err);
	printf("],\"elapsed_ms\":%llu", (unsigned long long)((now_ns() - start_ns) / 1000000));
}

static void json_act(const struct worker *w)
{
	printf(",\"act_worker\":%u,\"acted\":%s,\"act_ret\":%d,\"act_errno\":%d,"
	       "\"msgs_before_act\":%llu,", w->id, atomic_load(&w->acted) ? "true" : "false",
	       w->act_ret, w->act_errno, (unsigned long long)w->msgs_at_act);
	json_int_or_null("unread_before_act", w->unread_before, true);
	printf("\"rmem_before_act\":%u,\"rcvbuf\":%u,\"member_full\":%s,", w->rmem_before,
	       w->rcvbuf, w->rcvbuf && w->rmem_before >= w->rcvbuf ? "true" : "false");
	if (atomic_load(&w->acted))
		printf("\"act_ms\":%.3f", w->act_ns / 1e6);
	else if (atomic_load(&w->acting)) /* still blocked: how long so far */
		printf("\"act_ms\":%.3f", (now_ns() - w->act_start_ns) / 1e6);
	else
		printf("\"act_ms\":null");
	if (w->act == ACT_DISABLE)
		printf(",\"requeue\":{\"moved\":%u,\"kept\":%u,\"kept_bytes\":%zu,"
		       "\"kept_reason\":%d},\"read_after_disable\":%llu", w->rep.moved, w->rep.kept,
		       w->rep.kept_bytes, w->rep.kept_reason, (unsigned long long)w->read_after);
}

/* ---- modes ---- */

static void run_stall(void)
{
	uint64_t t0, s_at, e_at = 0, f_at, stall_start = 0, stall_end = 0;
	uint32_t stalled_mask = o.stall_all ? (1u << o.workers) - 1 : 1u;
	uint32_t others = ((1u << o.workers) - 1) & ~stalled_mask;
	unsigned int stall_samples = 0, idle = 0, capped = 0, zero_wnd = 0, mid_done = 0;
	double before, sbefore, sduring, odur = 0, obef = 0;
	int64_t recovery_ms = -1;
	bool stalled = false;

	t0 = now_ns();
	s_at = t0 + (uint64_t)o.before_ms * 1000000;
	f_at = s_at + (uint64_t)(o.stall_ms + o.after_ms) * 1000000;
	take_sample(false);
	while (!must_stop()) {
		uint64_t now;

		sleep_ms(SAMPLE_MS);
		now = now_ns();
		if (!stalled && !stall_end && now >= s_at) {
			for (unsigned int i = 0; i < o.workers; i++)
				if (stalled_mask & (1u << i))
					atomic_store(&workers[i].stalled, true);
			stalled = true;
			stall_start = now;
			e_at = now + (uint64_t)o.stall_ms * 1000000;
		} else if (stalled && now >= e_at) {
			for (unsigned int i = 0; i < o.workers; i++)
				atomic_store(&workers[i].stalled, false);
			stalled = false;
			stall_end = now;
			f_at = now + (uint64_t)o.after_ms * 1000000;
		}
		take_sample(stalled);
		if (stalled && !mid_done && now >= stall_start + (uint64_t)o.stall_ms * 500000) {
			pk.outq_stall_mid = pk.outq_stall_end;
			mid_done = 1;
		}
		if (stall_end && now >= f_at)
			break;
	}
	for (unsigned int i = 0; i < o.workers; i++)
		atomic_store(&workers[i].stalled, false);
	stop_senders(5000);
	drain();
	stuck = !stop_workers();

	/* rates: skip the first 300 ms (connection ramp-up) and 200 ms into the stall */
	before = stall_start ? rate((1u << o.workers) - 1, t0 + 300000000ull, stall_start) : 0;
	sbefore = stall_start ? send_rate(t0 + 300000000ull, stall_start) : 0;
	sduring = stall_end ? send_rate(stall_start + 200000000ull, stall_end) : 0;
	if (others && stall_end) {
		obef = rate(others, t0 + 300000000ull, stall_start);
		odur = rate(others, stall_start + 200000000ull, stall_end);
	}
	for (unsigned int i = 1; i < nsamples; i++) {
		capped += samples[i].capped;
		if (!samples[i].stall)
			continue;
		stall_samples++;
		if (samples[i].sbytes == samples[i - 1].sbytes && !samples[i].capped)
			idle++;
		zero_wnd += samples[i].all_zero_wnd;
	}
	/* back to 90%: the first sample interval after the stall at 90% of the rate before */
	for (unsigned int i = stall_end ? sample_at(stall_end) + 1 : nsamples; i < nsamples; i++) {
		uint64_t n = 0;
		double dt = (samples[i].t - samples[i - 1].t) / 1e9;

		for (unsigned int w = 0; w < o.workers; w++)
			n += samples[i].wmsgs[w] - samples[i - 1].wmsgs[w];
		if (before > 0 && n / dt >= 0.9 * before) {
			recovery_ms = (samples[i].t - stall_end) / 1000000;
			break;
		}
	}

	json_common();
	printf(",\"stall\":\"%s\",\"stall_ms\":%u,\"stalled_workers\":[", o.stall_all ? "all" : "one",
	       o.stall_ms);
	for (unsigned int i = 0, k = 0; i < o.workers; i++)
		if (stalled_mask & (1u << i))
			printf("%s%u", k++ ? "," : "", i);
	printf("],\"stall_happened\":%s,\"peak_unread_per_worker\":[",
	       stall_start && stall_end ? "true" : "false");
	for (unsigned int i = 0; i < o.workers; i++) {
		if (pk.unread[i] >= 0)
			printf("%s%lld", i ? "," : "", (long long)pk.unread[i]);
		else
			printf("%snull", i ? "," : "");
	}
	printf("],\"peak_charged\":%llu,\"peak_charged_transports\":%llu,",
	       (unsigned long long)pk.charged, (unsigned long long)pk.charged_transports);
	json_int_or_null("peak_mux_unread", pk.mux_unread, true);
	json_int_or_null("peak_held", pk.held, true);
	json_int_or_null("peak_braked", pk.braked, true);
	printf("\"peak_inflight\":%llu,\"max_inflight\":%llu,\"capped_samples\":%u,",
	       (unsigned long long)pk.inflight, (unsigned long long)o.max_inflight, capped);
	printf("\"rate_before\":%.0f,", before);
	json_num_or_null("others_rate_before", others && stall_end, obef, true);
	json_num_or_null("others_rate_during", others && stall_end, odur, true);
	json_num_or_null("others_ratio", others && stall_end && obef > 0, obef > 0 ? odur / obef : 0,
			 true);
	printf("\"sender_rate_before\":%.0f,\"sender_rate_during\":%.0f,", sbefore, sduring);
	json_num_or_null("sender_ratio", sbefore > 0, sbefore > 0 ? sduring / sbefore : 0, true);
	printf("\"samples\":%u,\"stall_samples\":%u,\"idle_sender_samples\":%u,"
	       "\"zero_wnd_samples\":%u,", nsamples, stall_samples, idle, zero_wnd);
	json_int_or_null("min_snd_wnd", pk.min_snd_wnd, true);
	printf("\"peak_outq\":%llu,\"outq_growth_late_stall\":%lld,",
	       (unsigned long long)pk.outq,
	       (long long)pk.outq_stall_end - (long long)pk.outq_stall_mid);
	json_int_or_null("recovery_ms", recovery_ms, false);
	printf("}\n");
}

/* close, disable, disable-bound: worker ACT_WORKER acts while the others read. */
static void run_act(void)
{
	struct worker *w = &workers[ACT_WORKER];
	bool gave_up = false;

	while (!must_stop()) {
		if (o.mode == M_DISABLE_BOUND ? atomic_load(&w->acted) : senders_done())
			break;
		if (o.mode == M_DISABLE_BOUND && atomic_load(&w->acting) &&
		    now_ns() - w->act_start_ns > (uint64_t)o.act_timeout_ms * 1000000) {
			fprintf(stderr, PROG ": kcm_recv_disable() has not returned after %u ms: "
				"giving up\n", o.act_timeout_ms);
			gave_up = true;
			break;
		}
		sleep_ms(10);
	}
	if (o.mode == M_DISABLE_BOUND && !gave_up)
		sleep_ms(200); /* a little more overload after the call */
	stop_senders(o.mode == M_DISABLE_BOUND ? 2000 : 5000);
	/* the acting worker is done before the others are told to stop */
	while (!gave_up && !atomic_load(&w->acted) && !must_stop())
		sleep_ms(10);
	drain();
	stuck = !stop_workers() || gave_up;
	json_common();
	json_act(w);
	printf("}\n");
}

static void run_nomember(void)
{
	uint64_t end = now_ns() + (uint64_t)o.wait_ms * 1000000;
	uint64_t sent_before;

	while (now_ns() < end && !must_stop())
		sleep_ms(10);
	sent_before = expected_total();
	if (!interrupted && !timed_out) {
		if (make_workers() || start_workers()) {
			stuck = true;
			fprintf(stderr, PROG ": could not start the workers\n");
		}
	}
	while (!senders_done() && !must_stop())
		sleep_ms(10);
	stop_senders(2000);
	drain();
	stuck = !stop_workers() || stuck;
	json_common();
	printf(",\"wait_ms\":%u,\"sent_before_workers\":%llu}\n", o.wait_ms,
	       (unsigned long long)sent_before);
}

/* Run @cmd with sh, its stdout on our stderr (stdout is the JSON), bounded. */
static int run_between(const char *cmd)
{
	uint64_t end = now_ns() + BETWEEN_TIMEOUT_S * 1000000000ull;
	int status;
	pid_t pid;

	fflush(stdout);
	fflush(stderr);
	pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		sigset_t none;

		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		dup2(STDERR_FILENO, STDOUT_FILENO);
		execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
		_exit(127);
	}
	for (;;) {
		pid_t r = waitpid(pid, &status, WNOHANG);

		if (r == pid)
			return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
		if (r < 0 && errno != EINTR)
			return -1;
		if (now_ns() >= end || got_signal) {
			kill(pid, SIGKILL);
			waitpid(pid, &status, 0);
			fprintf(stderr, PROG ": --between command %s\n",
				got_signal ? "interrupted" : "timed out");
			return -1;
		}
		sleep_ms(10);
	}
}

static int write_spare_file(int fd)
{
	char tmp[4096];
	FILE *f;

	if (snprintf(tmp, sizeof(tmp), "%s.tmp", o.spare_file) >= (int)sizeof(tmp))
		return -1;
	f = fopen(tmp, "w");
	if (!f) {
		fprintf(stderr, PROG ": failed to write %s: %s\n", tmp, strerror(errno));
		return -1;
	}
	fprintf(f, "%d %d\n", getpid(), fd);
	fclose(f);
	if (rename(tmp, o.spare_file)) {
		fprintf(stderr, PROG ": failed to create %s: %s\n", o.spare_file, strerror(errno));
		return -1;
	}
	return 0;
}

static void run_rr(void)
{
	uint8_t *buf = malloc(4 + (size_t)o.size);
	int between[64], nbetween = 0, spare_c = -1, spare_s = -1;
	unsigned int lost = 0;

	if (!buf) {
		stuck = true;
		goto out;
	}
	if (o.spare_file) {
		tcp_pair(&spare_c, &spare_s);
		if (write_spare_file(spare_s))
			goto out;
	}
	for (uint32_t i = 0; i < o.count && !must_stop(); i++) {
		size_t len = msg_build(buf, 0, i, o.size);
		uint64_t end;

		if (write_all(senders[0].fd, buf, len)) {
			senders[0].err = errno;
			break;
		}
		atomic_fetch_add(&senders[0].msgs, 1);
		atomic_fetch_add(&senders[0].bytes, len);
		end = now_ns() + RR_WAIT_MS * 1000000ull;
		while (total_recv(false) < i + 1 - lost && now_ns() < end && !must_stop())
			sleep_ms(1);
		if (total_recv(false) < i + 1 - lost)
			lost++; /* reported as missing; the next one is still round-robin's */
		if (o.between && (i + 1) % 10 == 0 && i + 1 < o.count &&
		    nbetween < (int)(sizeof(between) / sizeof(between[0])))
			between[nbetween++] = run_between(o.between);
	}
out:
	free(buf);
	stuck = !stop_workers() || stuck;
	json_common();
	printf(",\"between\":[");
	for (int i = 0; i < nbetween; i++)
		printf("%s%d", i ? "," : "", between[i]);
	printf("]}\n");
	if (spare_c >= 0)
		close(spare_c);
	if (spare_s >= 0)
		close(spare_s);
	if (o.spare_file)
		unlink(o.spare_file);
}

/* --hold-file: the mux stays pinned (for kcm-loader stats) until the caller removes it. */
static void hold(void)
{
	uint64_t end = now_ns() + o.timeout_s * 1000000000ull;
	int fd;

	fflush(stdout);
	fd = open(o.hold_file, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) {
		fprintf(stderr, PROG ": failed to create %s: %s\n", o.hold_file, strerror(errno));
		return;
	}
	dprintf(fd, "%d\n", getpid());
	close(fd);
	while (!access(o.hold_file, F_OK) && now_ns() < end && !got_signal)
		sleep_ms(20);
	unlink(o.hold_file);
}

int main(int argc, char **argv)
{
	struct sigaction sa = { .sa_handler = on_signal };
	int ret = 1;

	parse_args(argc, argv);
	start_ns = now_ns();
	deadline_ns = start_ns + o.timeout_s * 1000000000ull;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	if (o.hold_file)
		unlink(o.hold_file);
	memset(&pk, 0, sizeof(pk));
	for (unsigned int i = 0; i < MAX_WORKERS; i++) {
		pk.unread[i] = -1;
		workers[i].fd = -1;
	}
	pk.mux_unread = pk.held = pk.braked = pk.min_snd_wnd = -1;
	for (unsigned int i = 0; i < MAX_CONNS; i++)
		senders[i].fd = senders[i].sfd = -1;
	for (unsigned int i = 0; i < o.conns; i++) {
		seen[i] = calloc(SEQ_CAP, 1);
		if (!seen[i])
			die(PROG ": out of memory");
	}
	samples = calloc(MAX_SAMPLES, sizeof(*samples));
	if (!samples)
		die(PROG ": out of memory");
	if (!kcm_mux_flow || !kcm_unread)
		fprintf(stderr, PROG ": the library has no %s%s%s: reported as null\n",
			kcm_mux_flow ? "" : "kcm_mux_flow()",
			!kcm_mux_flow && !kcm_unread ? " and no " : "",
			kcm_unread ? "" : "kcm_unread()");

	if (make_mux() || make_conns())
		goto out;
	if (o.mode == M_NOMEMBER) {
		if (attach_conns() || start_senders(o.count))
			goto out;
		run_nomember();
	} else {
		if (make_workers())
			goto out;
		if (o.mode == M_CLOSE || o.mode == M_DISABLE || o.mode == M_DISABLE_BOUND) {
			struct worker *w = &workers[ACT_WORKER];

			w->act = o.mode == M_CLOSE ? ACT_CLOSE : ACT_DISABLE;
			w->act_after = o.mode == M_DISABLE_BOUND ? 0 : o.close_after;
			w->act_pause_ms = o.mode == M_DISABLE_BOUND ? o.stall_ms : o.pause_ms;
		}
		if (attach_conns() || start_workers())
			goto out;
		if (o.mode == M_RR) {
			atomic_store(&traffic, true);
			run_rr();
		} else {
			if (start_senders(o.mode == M_STALL || o.mode == M_DISABLE_BOUND ? 0 : o.count))
				goto out;
			if (o.mode == M_STALL)
				run_stall();
			else
				run_act();
		}
	}
	fflush(stdout);
	ret = interrupted ? 1 : 0;
	if (interrupted)
		fprintf(stderr, PROG ": interrupted, cleaning up\n");
	else if (timed_out)
		fprintf(stderr, PROG ": timed out after %u s\n", o.timeout_s);
	if (o.hold_file && !interrupted)
		hold();
out:
	if (ret && !interrupted) { /* a setup failure: stop whatever started */
		stop_senders(0);
		stuck = !stop_workers();
	}
	if (stuck) {
		/* a thread is inside the library: leave nothing pinned, let exit() free the rest */
		if (o.pin)
			kcm_mux_unpin(o.pin);
		fflush(stdout);
		_exit(ret);
	}
	if (mux)
		kcm_mux_destroy(mux); /* closes the KCM sockets and its transport references */
	for (unsigned int i = 0; i < o.conns; i++) {
		if (senders[i].fd >= 0)
			close(senders[i].fd);
		if (senders[i].sfd >= 0)
			close(senders[i].sfd);
	}
	return ret;
}
