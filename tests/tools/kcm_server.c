// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * kcm_server: accept TCP connections, attach them to one KCM multiplexor and receive
 * with N worker threads, one KCM socket each. Verifies every test message (progs.h):
 * corrupt, duplicate, missing and out-of-order per (worker, connection), and records
 * the errors the stream parser posts on the transports (SO_ERROR).
 */
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/time.h>

#include "kcm.h"
#define PROG "kcm_server"
#include "progs.h"

#define MAX_WORKERS 64
#define MAX_CONNS 1024
#define MAX_CONN_ID (1u << 20)	/* connection ids above this are not test traffic */
#define MAX_SEQ (1u << 28)	/* bitmap bound: 32 MiB per connection id */
/* No message for this long once every transport left: nothing more is coming. */
#define QUIET_NS (2000ull * 1000000)

struct opts {
	const char *listen;
	unsigned int workers;
	struct kcm_framing framing;
	bool framing_is_test;
	const char *prog;
	const char *split;	/* --split: the shipped parser that splits batches */
	uint32_t rx_window;	/* --rx-window: flow-control window per KCM socket */	/* parser object instead of --framing */
	uint32_t max;
	uint32_t batch;
	enum kcm_policy policy;
	unsigned int conns;
	uint64_t expect;
	unsigned int expect_errors;
	uint64_t per_conn;
	bool reply;
	unsigned int rcvtimeo_ms;
	struct kcm_transport_opts topts;	/* --keepalive, --user-timeout */
	unsigned int attach_delay_ms;
	int rcvbuf;
	const char *pin;
	const char *ready_file;
	const char *attached_file;
	unsigned int timeout_s;
	bool json;
	bool verify;
};

/* The sequence numbers seen from one connection id. */
struct seen {
	uint8_t *bits;
	uint32_t cap;		/* bits allocated */
	uint32_t unique;
	uint32_t top;		/* highest seq + 1 */
};

struct verify {
	pthread_mutex_t lock;
	struct seen *ids;
	uint32_t nids;
	uint64_t corrupt, duplicate, anonymous, ooo;
};

struct worker {
	unsigned int id;
	int fd;
	pthread_t thread;
	uint64_t msgs, bytes, reply_errors;
	uint32_t *last;		/* per connection id: last seq + 1 on this worker */
	uint32_t nlast;
	int err;		/* receive failure that stopped the worker */
};

struct transport {
	int fd;			/* our dup, watched for POLLERR */
	char peer[64];
	bool gone;		/* peer shut down */
	bool closed;		/* both directions closed: nothing more to watch */
	bool failed;		/* SO_ERROR seen and unattached, or never attached */
	int so_error;		/* SO_ERROR, or the errno of kcm_attach() */
	bool attach_failed;
	bool settling;		/* FIN seen, strparser still delivering: checked each pass */
	enum kcm_fail_reason reason;
	uint64_t lost_msgs, lost_bytes; /* what libkcm counted as lost with it */
	uint64_t failed_at_ms;	/* CLOCK_REALTIME when the error was seen */
};

static struct opts o = {
	.workers = 2,
	.framing = KCM_FRAMING_THRIFT,
	.framing_is_test = true,
	.policy = KCM_POLICY_MESSAGES,
	.topts = { .sz = sizeof(struct kcm_transport_opts) },
	.conns = 1,
	.timeout_s = 30,
	.verify = true,
};
static struct verify v = { .lock = PTHREAD_MUTEX_INITIALIZER };
static struct worker workers[MAX_WORKERS];
static struct transport xp[MAX_CONNS];
static unsigned int nxp, nfailed;
static atomic_uint_fast64_t total_msgs;
static atomic_uint_fast64_t last_msg_ns;
static int stop_fd = -1, progress_fd = -1;

static void usage(FILE *f)
{
	fprintf(f,
"usage: " PROG " --listen ADDR:PORT [options]\n"
"Accept TCP connections, attach them to a KCM multiplexor, receive on N KCM sockets\n"
"and verify the test messages (u32be+4 framing, see tests/progs.h).\n"
"\n"
"  --listen ADDR:PORT   address to listen on (required)\n"
"  --workers N          KCM sockets, one thread each (default 2, max %d)\n"
"  --framing SPEC       length framing, e.g. u32be+4 (default), u16be+2, thrift\n"
"  --prog OBJ           find messages with this parser object instead (kcm_parser.h)\n"
"  --split NAME         with --prog: batch, split by shipped parser NAME\n"
"  --rx-window BYTES    unread bytes a KCM socket may hold before steering skips it\n"
"  --max BYTES          largest message (mux max_msg_size, default 64 KiB)\n"
"  --batch N            messages per redirect, 1..1024 (default: every complete one)\n"
"  --policy P           round-robin by 'messages' (default) or 'bytes'\n"
"  --conns N            accept exactly N connections (default 1, max %d)\n"
"  --expect N           finish once N messages arrived (0: when all peers are gone)\n"
"  --expect-errors N    also wait for N transport errors (default 0)\n"
"  --per-conn N         each connection id sends seqs 0..N-1 (for the missing count)\n"
"  --reply              send every message back with kcm_send()\n"
"  --rcvtimeo MS        SO_RCVTIMEO on each connection before attach\n"
"  --keepalive I,N,C    keepalive idle, interval (s) and probes on each connection\n"
"  --user-timeout MS    TCP_USER_TIMEOUT on each connection\n"
"  --attach-delay MS    wait MS between accept and attach (data queued before attach)\n"
"  --rcvbuf BYTES       SO_RCVBUF of each transport (mux transport_rcvbuf, -1: keep)\n"
"  --pin NAME           pin the mux under /sys/fs/bpf/kcm/NAME while running\n"
"  --ready-file PATH    create PATH once listening and ready\n"
"  --attached-file PATH create PATH once all --conns connections are attached\n"
"  --timeout SEC        give up after SEC seconds (default 30)\n"
"  --json               print a JSON summary on stdout\n"
"  --no-verify          accept any payload (for other framings)\n"
"  --help               show this help\n"
"\n"
"Exit status: 0 all messages verified, 1 failure, 2 usage error.\n",
		MAX_WORKERS, MAX_CONNS);
}

static void parse_args(int argc, char **argv)
{
	enum { O_LISTEN = 256, O_WORKERS, O_FRAMING, O_MAX, O_BATCH, O_POLICY, O_CONNS,
	       O_EXPECT, O_EXPECT_ERRORS, O_PER_CONN, O_REPLY, O_RCVTIMEO, O_ATTACH_DELAY,
	       O_RCVBUF, O_PIN, O_READY, O_ATTACHED, O_TIMEOUT, O_JSON, O_NO_VERIFY, O_PROG,
	       O_KEEPALIVE, O_USER_TIMEOUT, O_HELP, O_SPLIT, O_RX_WINDOW };
	static const struct option lo[] = {
		{ "listen", required_argument, NULL, O_LISTEN },
		{ "workers", required_argument, NULL, O_WORKERS },
		{ "framing", required_argument, NULL, O_FRAMING },
		{ "prog", required_argument, NULL, O_PROG },
		{ "split", required_argument, NULL, O_SPLIT },
		{ "rx-window", required_argument, NULL, O_RX_WINDOW },
		{ "keepalive", required_argument, NULL, O_KEEPALIVE },
		{ "user-timeout", required_argument, NULL, O_USER_TIMEOUT },
		{ "max", required_argument, NULL, O_MAX },
		{ "batch", required_argument, NULL, O_BATCH },
		{ "policy", required_argument, NULL, O_POLICY },
		{ "conns", required_argument, NULL, O_CONNS },
		{ "expect", required_argument, NULL, O_EXPECT },
		{ "expect-errors", required_argument, NULL, O_EXPECT_ERRORS },
		{ "per-conn", required_argument, NULL, O_PER_CONN },
		{ "reply", no_argument, NULL, O_REPLY },
		{ "rcvtimeo", required_argument, NULL, O_RCVTIMEO },
		{ "attach-delay", required_argument, NULL, O_ATTACH_DELAY },
		{ "rcvbuf", required_argument, NULL, O_RCVBUF },
		{ "pin", required_argument, NULL, O_PIN },
		{ "ready-file", required_argument, NULL, O_READY },
		{ "attached-file", required_argument, NULL, O_ATTACHED },
		{ "timeout", required_argument, NULL, O_TIMEOUT },
		{ "json", no_argument, NULL, O_JSON },
		{ "no-verify", no_argument, NULL, O_NO_VERIFY },
		{ "help", no_argument, NULL, O_HELP },
		{ 0 }
	};
	int c;

	opterr = 0;
	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (c) {
		case O_LISTEN:
			o.listen = optarg;
			break;
		case O_WORKERS:
			o.workers = parse_num("--workers", optarg, 1, MAX_WORKERS);
			break;
		case O_SPLIT:
			o.split = optarg;
			break;
		case O_RX_WINDOW:
			o.rx_window = parse_num("--rx-window", optarg, 4096, UINT32_MAX);
			break;
		case O_PROG:
			o.prog = optarg;
			break;
		case O_KEEPALIVE:
			if (sscanf(optarg, "%d,%d,%d", &o.topts.keepalive_idle,
				   &o.topts.keepalive_intvl, &o.topts.keepalive_cnt) != 3)
				usage_error("invalid --keepalive '%s': IDLE,INTVL,CNT", optarg);
			break;
		case O_USER_TIMEOUT:
			o.topts.user_timeout_ms = parse_num("--user-timeout", optarg, 1, 3600 * 1000);
			break;
		case O_FRAMING: {
			struct kcm_framing t = KCM_FRAMING_THRIFT;

			if (kcm_framing_parse(optarg, &o.framing))
				usage_error("invalid --framing '%s': expected e.g. u32be+4, u16be+2@0",
					    optarg);
			o.framing_is_test = t.len_offset == o.framing.len_offset &&
					    t.len_size == o.framing.len_size &&
					    t.big_endian == o.framing.big_endian &&
					    t.len_adjust == o.framing.len_adjust;
			break;
		}
		case O_MAX:
			o.max = parse_num("--max", optarg, 1, 256u << 20);
			break;
		case O_BATCH:
			o.batch = parse_num("--batch", optarg, 1, 1024);
			break;
		case O_POLICY:
			if (!strcmp(optarg, "messages"))
				o.policy = KCM_POLICY_MESSAGES;
			else if (!strcmp(optarg, "bytes"))
				o.policy = KCM_POLICY_BYTES;
			else
				usage_error("invalid --policy '%s': expected messages or bytes", optarg);
			break;
		case O_CONNS:
			o.conns = parse_num("--conns", optarg, 1, MAX_CONNS);
			break;
		case O_EXPECT:
			o.expect = parse_num("--expect", optarg, 0, UINT32_MAX * 16ull);
			break;
		case O_EXPECT_ERRORS:
			o.expect_errors = parse_num("--expect-errors", optarg, 0, MAX_CONNS);
			break;
		case O_PER_CONN:
			o.per_conn = parse_num("--per-conn", optarg, 1, MAX_SEQ);
			break;
		case O_REPLY:
			o.reply = true;
			break;
		case O_RCVTIMEO:
			o.rcvtimeo_ms = parse_num("--rcvtimeo", optarg, 1, 3600 * 1000);
			break;
		case O_ATTACH_DELAY:
			o.attach_delay_ms = parse_num("--attach-delay", optarg, 1, 60 * 1000);
			break;
		case O_RCVBUF:
			if (!strcmp(optarg, "-1"))
				o.rcvbuf = -1;
			else
				o.rcvbuf = parse_num("--rcvbuf", optarg, 1, INT32_MAX);
			break;
		case O_PIN:
			o.pin = optarg;
			break;
		case O_READY:
			o.ready_file = optarg;
			break;
		case O_ATTACHED:
			o.attached_file = optarg;
			break;
		case O_TIMEOUT:
			o.timeout_s = parse_num("--timeout", optarg, 1, 86400);
			break;
		case O_JSON:
			o.json = true;
			break;
		case O_NO_VERIFY:
			o.verify = false;
			break;
		case O_HELP:
			usage(stdout);
			exit(0);
		case ':':
			usage_error("option %s needs an argument", argv[optind - 1]);
		default:
			usage_error("unknown option '%s'", argv[optind - 1]);
		}
	}
	if (optind < argc)
		usage_error("unexpected argument '%s'", argv[optind]);
	if (!o.listen)
		usage_error("--listen ADDR:PORT is required");
	if (o.verify && !o.framing_is_test)
		usage_error("test messages use u32be+4 framing: add --no-verify for other framings");
	if (o.max && o.max < o.framing.len_offset + o.framing.len_size)
		usage_error("--max %u is smaller than the length header", o.max);
}

/* Record @seq of connection @id; caller holds v.lock. */
static int seen_add(uint32_t id, uint32_t seq)
{
	struct seen *s;

	if (id >= MAX_CONN_ID || seq >= MAX_SEQ)
		return -ERANGE;
	if (id >= v.nids) {
		uint32_t n = v.nids ? v.nids : 16;
		struct seen *p;

		while (n <= id)
			n *= 2;
		p = realloc(v.ids, n * sizeof(*p));
		if (!p)
			return -ENOMEM;
		memset(p + v.nids, 0, (n - v.nids) * sizeof(*p));
		v.ids = p;
		v.nids = n;
	}
	s = &v.ids[id];
	if (seq >= s->cap) {
		uint32_t n = s->cap ? s->cap : 1024;
		uint8_t *p;

		while (n <= seq)
			n *= 2;
		p = realloc(s->bits, n / 8);
		if (!p)
			return -ENOMEM;
		memset(p + s->cap / 8, 0, (n - s->cap) / 8);
		s->bits = p;
		s->cap = n;
	}
	if (s->bits[seq / 8] & (1u << (seq % 8)))
		return -EEXIST;
	s->bits[seq / 8] |= 1u << (seq % 8);
	s->unique++;
	if (seq + 1 > s->top)
		s->top = seq + 1;
	return 0;
}

/* Out of order on this worker: a seq below one it already had from the same connection. */
static bool worker_order(struct worker *w, uint32_t id, uint32_t seq)
{
	bool ooo;

	if (id >= w->nlast) {
		uint32_t n = w->nlast ? w->nlast : 16;
		uint32_t *p;

		while (n <= id)
			n *= 2;
		p = realloc(w->last, n * sizeof(*p));
		if (!p)
			return false;
		memset(p + w->nlast, 0, (n - w->nlast) * sizeof(*p));
		w->last = p;
		w->nlast = n;
	}
	ooo = seq + 1 < w->last[id];
	if (seq + 1 > w->last[id])
		w->last[id] = seq + 1;
	return ooo;
}

static void check_message(struct worker *w, const uint8_t *buf, size_t len, bool trunc)
{
	uint32_t id, seq;
	int err;

	if (trunc || msg_check(buf, len, &id, &seq)) {
		pthread_mutex_lock(&v.lock);
		v.corrupt++;
		pthread_mutex_unlock(&v.lock);
		return;
	}
	pthread_mutex_lock(&v.lock);
	if (id == UINT32_MAX) {
		v.anonymous++; /* body too short to carry ids */
	} else {
		err = seen_add(id, seq);
		if (err == -EEXIST)
			v.duplicate++;
		else if (err)
			v.corrupt++;
		else if (worker_order(w, id, seq))
			v.ooo++;
	}
	pthread_mutex_unlock(&v.lock);
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	size_t cap = o.max ? o.max : 64 * 1024;
	uint8_t *buf = malloc(cap);

	if (!buf) {
		w->err = ENOMEM;
		return NULL;
	}
	for (;;) {
		struct pollfd p[2] = { { w->fd, POLLIN, 0 }, { stop_fd, POLLIN, 0 } };
		struct iovec iov = { buf, cap };
		struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1 };
		ssize_t n;

		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			w->err = errno;
			break;
		}
		if (p[1].revents)
			break;
		for (;;) {
			n = kcm_recvmsg(w->fd, &m, MSG_DONTWAIT);
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0)
				break;
			w->msgs++;
			w->bytes += n;
			if (o.verify)
				check_message(w, buf, n, m.msg_flags & MSG_TRUNC);
			if (o.reply && kcm_send(w->fd, buf, n, 0) < 0)
				w->reply_errors++;
			atomic_store(&last_msg_ns, now_ns());
			if (atomic_fetch_add(&total_msgs, 1) + 1 == o.expect)
				eventfd_write(progress_fd, 1);
		}
		if (errno == EBADMSG) { /* the library dropped bytes that were no message */
			pthread_mutex_lock(&v.lock);
			v.corrupt++;
			pthread_mutex_unlock(&v.lock);
		} else if (errno != EAGAIN) {
			w->err = errno;
			break;
		}
	}
	free(buf);
	return NULL;
}

static void peer_name(int fd, char *buf, size_t len)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	char host[INET6_ADDRSTRLEN], port[8];

	if (getpeername(fd, (struct sockaddr *)&ss, &sl) ||
	    getnameinfo((struct sockaddr *)&ss, sl, host, sizeof(host), port, sizeof(port),
			NI_NUMERICHOST | NI_NUMERICSERV)) {
		snprintf(buf, len, "?");
		return;
	}
	snprintf(buf, len, ss.ss_family == AF_INET6 ? "[%s]:%s" : "%s:%s", host, port);
}

static int signal_file(const char *path)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

	if (fd < 0) {
		fprintf(stderr, PROG ": failed to create %s: %s\n", path, strerror(errno));
		return -errno;
	}
	dprintf(fd, "%d\n", getpid());
	close(fd);
	return 0;
}

static int accept_one(struct kcm_mux *mux, int lfd)
{
	struct transport *t = &xp[nxp];
	int fd, err = 0;

	fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	if (fd < 0)
		return errno == EINTR || errno == EAGAIN || errno == ECONNABORTED ? 0 : -errno;
	peer_name(fd, t->peer, sizeof(t->peer));
	if (o.rcvtimeo_ms) {
		struct timeval tv = { o.rcvtimeo_ms / 1000, (o.rcvtimeo_ms % 1000) * 1000 };

		if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv))) {
			err = -errno;
			fprintf(stderr, PROG ": failed to set SO_RCVTIMEO on connection %u (%s): %s\n",
				nxp, t->peer, strerror(-err));
			goto out;
		}
	}
	if (o.attach_delay_ms) {
		unsigned int ms = o.attach_delay_ms;
		struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

		while (nanosleep(&ts, &ts) && errno == EINTR)
			;
	}
	t->fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
	if (t->fd < 0) {
		err = -errno;
		fprintf(stderr, PROG ": failed to dup connection %u: %s\n", nxp, strerror(-err));
		goto out;
	}
	if (kcm_attach_opts(mux, fd, &o.topts)) {
		/* e.g. EOPNOTSUPP: the peer already closed (a sockmap takes only ESTABLISHED) */
		t->so_error = errno;
		fprintf(stderr, PROG ": failed to attach connection %u (%s): %s\n", nxp, t->peer,
			strerror(errno));
		close(t->fd);
		t->fd = -1;
		t->failed = t->attach_failed = true;
		nfailed++;
	}
	nxp++;
out:
	close(fd); /* the mux keeps its own reference */
	return err;
}

static uint64_t wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * A transport signalled (error, FIN or hangup): libkcm says why, counts what it was
 * carrying as lost, unattaches it and shuts it down. A FIN is the peer leaving; any other
 * reason is a transport error, reported with its errno.
 */
static void transport_event(struct kcm_mux *mux, unsigned int i)
{
	struct transport *t = &xp[i];
	struct kcm_transport_event ev;
	int r = kcm_transport_check(mux, t->fd, &ev, KCM_AUTO_UNATTACH);

	if (r == 0) {
		t->settling = true; /* still passing on what came before a FIN: look again */
		return;
	}
	if (r < 0) { /* not attached any more */
		t->gone = t->closed = true;
		return;
	}
	t->lost_msgs = ev.lost_msgs;
	t->lost_bytes = ev.lost_bytes;
	t->reason = ev.reason;
	if (ev.reason == KCM_FAIL_PEER_CLOSED) {
		t->gone = t->closed = true;
	} else {
		t->so_error = ev.err;
		t->failed = true;
		t->failed_at_ms = wall_ms();
		nfailed++;
	}
	close(t->fd);
	t->fd = -1;
}

enum outcome { DONE, TIMED_OUT, INTERRUPTED, ALL_GONE, BROKEN };

static enum outcome serve(struct kcm_mux *mux, int lfd, int sig_fd)
{
	uint64_t deadline = now_ns() + o.timeout_s * 1000000000ull;
	struct pollfd p[3 + MAX_CONNS];
	unsigned int idx[MAX_CONNS];

	for (;;) {
		uint64_t now = now_ns(), total = atomic_load(&total_msgs), last;
		unsigned int n = 0, base, live = 0;
		int r;

		if (nxp == o.conns && nfailed >= o.expect_errors) {
			if (o.expect && total >= o.expect)
				return DONE;
		}
		for (unsigned int i = 0; i < nxp; i++)
			live += !xp[i].failed && !xp[i].gone;
		/* a worker may have stored a time after @now: never let it wrap */
		last = atomic_load(&last_msg_ns);
		if (nxp == o.conns && !live && now > last && now - last > QUIET_NS)
			return o.expect || nfailed < o.expect_errors ? ALL_GONE : DONE;
		if (now >= deadline)
			return TIMED_OUT;
		p[n++] = (struct pollfd){ sig_fd, POLLIN, 0 };
		p[n++] = (struct pollfd){ progress_fd, POLLIN, 0 };
		if (nxp < o.conns)
			p[n++] = (struct pollfd){ lfd, POLLIN, 0 };
		base = n;
		for (unsigned int i = 0; i < nxp; i++) {
			if (xp[i].failed || xp[i].closed)
				continue;
			idx[n - base] = i;
			p[n++] = (struct pollfd){ xp[i].fd, xp[i].settling ? 0 : POLLRDHUP, 0 };
		}
		r = poll(p, n, 100);
		if (r < 0 && errno != EINTR) {
			fprintf(stderr, PROG ": failed to poll: %s\n", strerror(errno));
			return BROKEN;
		}
		if (r < 0)
			continue;
		if (p[0].revents)
			return INTERRUPTED;
		if (p[1].revents) {
			eventfd_t val;

			eventfd_read(progress_fd, &val);
		}
		for (unsigned int k = base; k < n; k++) {
			unsigned int i = idx[k - base];

			if (p[k].revents || xp[i].settling)
				transport_event(mux, i);
		}
		if (base == 3 && (p[2].revents & POLLIN)) {
			if (accept_one(mux, lfd))
				return BROKEN;
			if (nxp == o.conns && o.attached_file && signal_file(o.attached_file))
				return BROKEN;
		}
	}
}

static void json_str(const char *s)
{
	putchar('"');
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			printf("\\%c", *s);
		else if ((unsigned char)*s < 0x20)
			printf("\\u%04x", *s);
		else
			putchar(*s);
	}
	putchar('"');
}

static int report(enum outcome out)
{
	static const char *const why[] = {
		[TIMED_OUT] = "timed out", [INTERRUPTED] = "interrupted",
		[ALL_GONE] = "all transports closed", [BROKEN] = "server error",
	};
	uint64_t msgs = 0, bytes = 0, missing = 0, unique = v.anonymous, reply_errors = 0;
	bool ok, worker_failed = false;

	for (unsigned int i = 0; i < o.workers; i++) {
		msgs += workers[i].msgs;
		bytes += workers[i].bytes;
		reply_errors += workers[i].reply_errors;
		worker_failed |= workers[i].err != 0;
	}
	/* Bodies under PROG_BODY_IDS bytes carry no seq: they fill gaps they may have made. */
	for (uint32_t id = 0; id < v.nids; id++) {
		const struct seen *s = &v.ids[id];

		unique += s->unique;
		if (o.per_conn && s->unique)
			missing += o.per_conn > s->unique ? o.per_conn - s->unique : 0;
		else
			missing += s->top - s->unique;
	}
	missing = missing > v.anonymous ? missing - v.anonymous : 0;
	if (o.expect && o.expect > unique && o.expect - unique > missing)
		missing = o.expect - unique;
	if (!o.verify)
		missing = 0;
	ok = out == DONE && !worker_failed && !reply_errors && v.corrupt == 0 &&
	     v.duplicate == 0 && missing == 0 && v.ooo == 0 && nfailed == o.expect_errors &&
	     (!o.expect || msgs == o.expect);
	if (o.json) {
		printf("{\"messages\":%llu,\"bytes\":%llu,\"expected\":%llu,\"corrupt\":%llu,"
		       "\"duplicate\":%llu,\"missing\":%llu,\"out_of_order\":%llu,"
		       "\"reply_errors\":%llu,\"conns\":%u,\"workers\":[",
		       (unsigned long long)msgs, (unsigned long long)bytes,
		       (unsigned long long)o.expect, (unsigned long long)v.corrupt,
		       (unsigned long long)v.duplicate, (unsigned long long)missing,
		       (unsigned long long)v.ooo, (unsigned long long)reply_errors, nxp);
		for (unsigned int i = 0; i < o.workers; i++)
			printf("%s{\"id\":%u,\"messages\":%llu,\"bytes\":%llu}", i ? "," : "", i,
			       (unsigned long long)workers[i].msgs,
			       (unsigned long long)workers[i].bytes);
		printf("],\"transport_errors\":[");
		for (unsigned int i = 0, k = 0; i < nxp; i++) {
			if (!xp[i].failed)
				continue;
			printf("%s{\"conn\":%u,\"peer\":", k++ ? "," : "", i);
			json_str(xp[i].peer);
			printf(",\"stage\":\"%s\"", xp[i].attach_failed ? "attach" : "receive");
			printf(",\"failed_at_ms\":%llu", (unsigned long long)xp[i].failed_at_ms);
			printf(",\"so_error\":%d,\"error\":", xp[i].so_error);
			json_str(strerror(xp[i].so_error));
			printf(",\"reason\":\"%s\",\"lost_msgs\":%llu,\"lost_bytes\":%llu}",
			       kcm_fail_reason_name(xp[i].reason),
			       (unsigned long long)xp[i].lost_msgs,
			       (unsigned long long)xp[i].lost_bytes);
		}
		printf("],\"peers_closed\":[");
		for (unsigned int i = 0, k = 0; i < nxp; i++) {
			if (xp[i].failed || xp[i].reason != KCM_FAIL_PEER_CLOSED)
				continue;
			printf("%s{\"conn\":%u,\"lost_msgs\":%llu,\"lost_bytes\":%llu}",
			       k++ ? "," : "", i, (unsigned long long)xp[i].lost_msgs,
			       (unsigned long long)xp[i].lost_bytes);
		}
		printf("],\"result\":");
		json_str(out == DONE ? "done" : why[out]);
		printf(",\"verified\":%s}\n", ok ? "true" : "false");
	} else {
		for (unsigned int i = 0; i < o.workers; i++)
			printf("worker %u: %llu messages, %llu bytes\n", i,
			       (unsigned long long)workers[i].msgs,
			       (unsigned long long)workers[i].bytes);
		for (unsigned int i = 0; i < nxp; i++)
			if (xp[i].failed)
				printf("transport %u (%s): error %d (%s), %s\n", i, xp[i].peer,
				       xp[i].so_error, strerror(xp[i].so_error),
				       xp[i].attach_failed ? "not attached" : "unattached");
		if (ok)
			printf("verified: %llu messages, 0 corrupt, 0 duplicate, 0 missing\n",
			       (unsigned long long)msgs);
		else
			printf("FAILED: %llu messages of %llu expected, %llu corrupt, %llu duplicate, "
			       "%llu missing, %llu out of order, %u transport errors of %u expected, "
			       "%llu reply errors%s%s\n",
			       (unsigned long long)msgs, (unsigned long long)o.expect,
			       (unsigned long long)v.corrupt, (unsigned long long)v.duplicate,
			       (unsigned long long)missing, (unsigned long long)v.ooo, nfailed,
			       o.expect_errors, (unsigned long long)reply_errors,
			       out == DONE ? "" : ", ", out == DONE ? "" : why[out]);
	}
	for (unsigned int i = 0; i < o.workers; i++)
		if (workers[i].err)
			fprintf(stderr, PROG ": worker %u stopped receiving: %s\n", i,
				strerror(workers[i].err));
	fflush(stdout);
	return ok ? 0 : 1;
}

int main(int argc, char **argv)
{
	struct kcm_mux_opts mo = { .sz = sizeof(mo) };
	enum outcome out = BROKEN;
	struct kcm_mux *mux;
	unsigned int started = 0;
	int lfd, sig_fd, ret = 1;
	sigset_t mask;

	parse_args(argc, argv);
	if (o.ready_file)
		unlink(o.ready_file);
	if (o.attached_file)
		unlink(o.attached_file);
	/* Signals arrive on a signalfd in the main loop, so cleanup runs in one place. */
	sigemptyset(&mask);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &mask, NULL);
	signal(SIGPIPE, SIG_IGN);
	sig_fd = signalfd(-1, &mask, SFD_CLOEXEC);
	stop_fd = eventfd(0, EFD_CLOEXEC);
	progress_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (sig_fd < 0 || stop_fd < 0 || progress_fd < 0)
		die(PROG ": failed to create event descriptors: %s", strerror(errno));
	lfd = tcp_listen(o.listen, MAX_CONNS);

	mo.framing = o.framing;
	mo.parser = o.prog;
	mo.splitter = o.split;
	mo.rx_window = o.rx_window;
	mo.max_msg_size = o.max;
	mo.batch = o.batch;
	mo.policy = o.policy;
	mo.transport_rcvbuf = o.rcvbuf;
	mo.pin_name = o.pin;
	mux = mux_create_verbose(&mo);
	if (!mux)
		return 1;
	for (; started < o.workers; started++) {
		struct worker *w = &workers[started];

		w->id = started;
		w->fd = started ? kcm_clone(workers[0].fd) : kcm_socket(mux);
		if (w->fd < 0) {
			fprintf(stderr, PROG ": failed to create KCM socket %u: %s\n", started,
				strerror(errno));
			goto stop;
		}
		errno = pthread_create(&w->thread, NULL, worker_main, w);
		if (errno) {
			fprintf(stderr, PROG ": failed to start worker %u: %s\n", started,
				strerror(errno));
			kcm_close(w->fd);
			goto stop;
		}
	}
	atomic_store(&last_msg_ns, now_ns());
	if (o.ready_file && signal_file(o.ready_file))
		goto stop;
	out = serve(mux, lfd, sig_fd);
	if (out == INTERRUPTED)
		fprintf(stderr, PROG ": interrupted, cleaning up\n");
	else if (out == TIMED_OUT)
		fprintf(stderr, PROG ": timed out after %u s\n", o.timeout_s);
stop:
	eventfd_write(stop_fd, 1);
	for (unsigned int i = 0; i < started; i++)
		pthread_join(workers[i].thread, NULL);
	kcm_mux_destroy(mux); /* closes the KCM sockets and transports, removes the pins */
	for (unsigned int i = 0; i < nxp; i++)
		if (xp[i].fd >= 0)
			close(xp[i].fd);
	close(lfd);
	if (started == o.workers)
		ret = report(out);
	if (o.ready_file)
		unlink(o.ready_file);
	if (o.attached_file)
		unlink(o.attached_file);
	return ret;
}
