// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * rx_bench: one run of a receive benchmark over loopback TCP, printing one JSON line.
 * Senders (firehose) or a closed-loop client (reqresp) drive C connections; a receive
 * path (receivers.c) hands the messages to W workers, which check every one: length,
 * connection, sequence number (a bitmap finds losses and duplicates) and a tag in its
 * last bytes. scripts/bench.sh runs the matrix and writes docs/benchmarks.md.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"

#define TAG_MAGIC 0x9e3779b97f4a7c15ull
#define SEND_CHUNK (256u << 10)
#define MAX_LAT (4u << 20)	/* latency samples kept */
#define DRAIN_TIMEOUT_NS (60ull * 1000000000)
/*
 * Senders keep at most this many bytes sent but not yet received: a receive path that
 * does not push back (sockmap queues redirects without bound, KERNEL-NOTES) would
 * otherwise buffer the whole run, and the drain would be timed instead of the path.
 */
#define INFLIGHT_BYTES (64ull << 20)
/* A stall run measures what piles up: a window large enough not to hide it. */
#define INFLIGHT_STALL_BYTES (1ull << 30)

struct bench B;

static pthread_t senders[MAX_CONNS], client_th, sampler_th;
static uint64_t *lat;		/* reqresp latencies, ns */
static _Atomic uint64_t nlat;
static uint64_t peak_mem, peak_sys_mem;
static double others_before, others_during; /* stall: others' msgs/s */
static _Atomic int send_err;	/* first errno a sender met */

uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + ts.tv_nsec;
}

static void die(const char *what)
{
	fprintf(stderr, "rx_bench: %s: %s\n", what, strerror(errno));
	exit(1);
}

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: rx_bench --variant kcm|kcm-batch|kcm-frame|kcm-prog|afkcm|demux|direct\n"
		"                --mode firehose|reqresp --size BYTES --conns C --workers W\n"
		"                [--msgs N] [--seconds S] [--outstanding K] [--hot PCT]\n"
		"                [--stall-ms MS] [--json] [--batch N] [--member-rcvbuf BYTES]\n"
		"                [--parser OBJ] [--pin NAME]\n"
		"kcm-batch is kcm with batch %d (messages per redirect) set explicitly.\n"
		"kcm-frame finds messages with the Thrift parser program (--parser, default\n"
		"build/parsers/thrift.bpf.o) and batches with its user-space splitter; kcm-prog\n"
		"uses the same program with one message per redirect. --pin pins a kcm variant's\n"
		"mux as NAME while it runs (kcm-loader stats NAME). afkcm is the kernel's own\n"
		"AF_KCM (CONFIG_AF_KCM; modprobe kcm) with a socket-filter parser, one KCM\n"
		"socket per worker.\n"
		"One run over loopback TCP; prints one JSON line. Sizes include the 4-byte\n"
		"length prefix (at least %d). Exit 0 when every message arrived intact, once.\n",
		TUNED_BATCH, MSG_MIN);
}

static uint64_t tag_of(uint32_t conn, uint32_t seq)
{
	return ((uint64_t)conn << 32 | seq) ^ TAG_MAGIC;
}

void msg_fill(uint8_t *p, uint32_t conn, uint32_t seq)
{
	msg_fill_at(p, conn, seq, now_ns());
}

void msg_fill_at(uint8_t *p, uint32_t conn, uint32_t seq, uint64_t ts)
{
	uint32_t len = htonl(B.cfg.size - 4);
	uint64_t tag = tag_of(conn, seq);

	memcpy(p, &len, 4);
	memcpy(p + 4, &conn, 4);
	memcpy(p + 8, &seq, 4);
	memcpy(p + 12, &ts, 8);
	memcpy(p + B.cfg.size - 8, &tag, 8);
}

int write_full(int fd, const void *buf, size_t len)
{
	const uint8_t *p = buf;

	while (len) {
		ssize_t r = send(fd, p, len, MSG_NOSIGNAL);

		if (r < 0 && (errno == EAGAIN || errno == EINTR)) {
			struct pollfd pf = { .fd = fd, .events = POLLOUT };

			if (atomic_load(&B.stop))
				return -EPIPE;
			poll(&pf, 1, 10);
			continue;
		}
		if (r <= 0)
			return r < 0 ? -errno : -EPIPE;
		p += r;
		len -= r;
	}
	return 0;
}

void maybe_stall(struct worker *w)
{
	if (w->id || !atomic_exchange(&B.stall_now, false))
		return;
	usleep(B.cfg.stall_ms * 1000u);
}

void deliver(struct worker *w, uint8_t *msg, size_t len,
	     int (*reply)(struct worker *, const uint8_t *, size_t))
{
	uint32_t conn, seq, blen;
	uint64_t tag, bit;

	memcpy(&blen, msg, 4);
	memcpy(&conn, msg + 4, 4);
	memcpy(&seq, msg + 8, 4);
	if (len != B.cfg.size || ntohl(blen) != len - 4 || conn >= B.cfg.conns ||
	    seq >= B.seen_cap) {
		atomic_fetch_add(&B.corrupt, 1);
		return;
	}
	memcpy(&tag, msg + len - 8, 8);
	if (tag != tag_of(conn, seq)) {
		atomic_fetch_add(&B.corrupt, 1);
		return;
	}
	if (B.cfg.mode == M_REQRESP) { /* a request: no bitmap, answer it */
		atomic_fetch_add_explicit(&w->msgs, 1, memory_order_relaxed);
		reply(w, msg, len);
		return;
	}
	bit = 1ull << (seq % 64);
	if (atomic_fetch_or(&B.seen[conn][seq / 64], bit) & bit) {
		atomic_fetch_add(&B.dup, 1);
		return;
	}
	atomic_fetch_add_explicit(&w->msgs, 1, memory_order_relaxed);
}

/*
 * Messages delivered so far: the workers' own counters. A shared counter bumped per
 * message cost every variant alike, and capped the direct ceiling well below what
 * loopback carries at 64 B.
 */
uint64_t total_received(void)
{
	uint64_t s = 0;

	for (unsigned int i = 0; i < B.cfg.workers; i++)
		s += atomic_load_explicit(&B.w[i].msgs, memory_order_relaxed);
	return s;
}

void cut_frames(struct worker *w, uint8_t *buf, size_t *len,
		int (*reply)(struct worker *, const uint8_t *, size_t))
{
	size_t off = 0;

	while (*len - off >= 4) {
		uint32_t l;

		memcpy(&l, buf + off, 4);
		l = ntohl(l) + 4;
		if (l > B.cfg.size || *len - off < l) {
			if (l > B.cfg.size) { /* lost framing: nothing after can be trusted */
				atomic_fetch_add(&B.corrupt, 1);
				off = *len;
			}
			break;
		}
		deliver(w, buf + off, l, reply);
		off += l;
	}
	memmove(buf, buf + off, *len - off);
	*len -= off;
}

/* ---- setup ---- */

static void connect_all(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t alen = sizeof(a);
	int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;

	if (lfd < 0 || bind(lfd, (struct sockaddr *)&a, alen) || listen(lfd, MAX_CONNS) ||
	    getsockname(lfd, (struct sockaddr *)&a, &alen))
		die("failed to listen on loopback");
	for (unsigned int i = 0; i < B.cfg.conns; i++) {
		B.cli[i] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (B.cli[i] < 0 || connect(B.cli[i], (struct sockaddr *)&a, alen))
			die("failed to connect");
		B.srv[i] = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
		if (B.srv[i] < 0)
			die("failed to accept");
		setsockopt(B.cli[i], IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		setsockopt(B.srv[i], IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		if (B.cfg.variant == V_DEMUX || B.cfg.variant == V_DIRECT)
			fcntl(B.srv[i], F_SETFL, O_NONBLOCK);
		pthread_mutex_init(&B.srv_lock[i], NULL);
	}
	close(lfd);
}

/* ---- firehose senders ---- */

static uint64_t quota_of(unsigned int conn)
{
	uint64_t n = B.cfg.msgs, hot;

	if (!n)
		return UINT64_MAX; /* timed: until stop */
	if (!B.cfg.hot_pct || B.cfg.conns == 1)
		return n / B.cfg.conns + (conn < n % B.cfg.conns);
	hot = n * B.cfg.hot_pct / 100;
	if (conn == 0)
		return hot;
	n -= hot;
	return n / (B.cfg.conns - 1) + (conn - 1 < n % (B.cfg.conns - 1));
}

static void *sender(void *arg)
{
	unsigned int conn = (uintptr_t)arg;
	uint64_t quota = quota_of(conn), seq = 0;
	size_t per = SEND_CHUNK / B.cfg.size ? SEND_CHUNK / B.cfg.size : 1;
	uint64_t window = (B.cfg.stall_ms ? INFLIGHT_STALL_BYTES : INFLIGHT_BYTES) / B.cfg.size;
	uint8_t *buf = malloc(per * B.cfg.size);

	if (quota > B.seen_cap)
		quota = B.seen_cap;
	while (buf && seq < quota && !atomic_load(&B.stop_send)) {
		size_t n = quota - seq < per ? quota - seq : per;

		/*
		 * Back off to 1 ms: 64 senders polling every 50 us took both CPUs from the
		 * receivers and the kernel's psock workers, and a 16 KiB firehose over 64
		 * connections then crawled at under 1,000 msgs/s (and the kernel reported
		 * workqueue lockups).
		 */
		for (useconds_t nap = 50; atomic_load(&B.sent) - total_received() > window &&
		     !atomic_load(&B.stop_send); nap = nap < 1000 ? nap * 2 : 1000)
			usleep(nap);
		uint64_t ts = now_ns(); /* firehose latency is not measured: one clock read */

		for (size_t i = 0; i < n; i++)
			msg_fill_at(buf + i * B.cfg.size, conn, seq + i, ts);
		int err = write_full(B.cli[conn], buf, n * B.cfg.size);

		if (err) {
			int none = 0;

			atomic_compare_exchange_strong(&send_err, &none, -err);
			break;
		}
		seq += n;
		atomic_fetch_add(&B.sent, n);
	}
	free(buf);
	return NULL;
}

/* ---- closed-loop client ---- */

static void *client(void *arg)
{
	size_t cap = (size_t)B.cfg.size * (B.cfg.outstanding + 1) + (1u << 16);
	uint8_t **rb = calloc(B.cfg.conns, sizeof(*rb)), *req = malloc(B.cfg.size);
	size_t *have = calloc(B.cfg.conns, sizeof(*have));
	struct epoll_event ev[MAX_CONNS];
	uint32_t *next_seq = calloc(B.cfg.conns, sizeof(*next_seq));
	int ep = epoll_create1(EPOLL_CLOEXEC);

	(void)arg;
	for (unsigned int i = 0; i < B.cfg.conns; i++) {
		struct epoll_event e = { .events = EPOLLIN, .data.u32 = i };

		rb[i] = malloc(cap);
		fcntl(B.cli[i], F_SETFL, O_NONBLOCK);
		epoll_ctl(ep, EPOLL_CTL_ADD, B.cli[i], &e);
		for (unsigned int k = 0; k < B.cfg.outstanding; k++) {
			msg_fill(req, i, next_seq[i]++);
			write_full(B.cli[i], req, B.cfg.size);
		}
	}
	while (!atomic_load(&B.stop)) {
		int n = epoll_wait(ep, ev, MAX_CONNS, 10);

		for (int e = 0; e < n; e++) {
			unsigned int c = ev[e].data.u32;
			ssize_t r = read(B.cli[c], rb[c] + have[c], cap - have[c]);
			size_t off = 0;

			if (r <= 0)
				continue;
			have[c] += r;
			while (have[c] - off >= B.cfg.size) { /* answers are echoes: fixed size */
				uint32_t conn;
				uint64_t ts, i;

				memcpy(&conn, rb[c] + off + 4, 4);
				memcpy(&ts, rb[c] + off + 12, 8);
				i = atomic_fetch_add(&nlat, 1);
				if (i < MAX_LAT)
					lat[i] = now_ns() - ts;
				off += B.cfg.size;
				if (conn >= B.cfg.conns)
					continue;
				/* the next request goes where the answered one came from */
				msg_fill(req, conn, next_seq[conn]++ % (uint32_t)B.seen_cap);
				write_full(B.cli[conn], req, B.cfg.size);
			}
			memmove(rb[c], rb[c] + off, have[c] - off);
			have[c] -= off;
		}
	}
	for (unsigned int i = 0; i < B.cfg.conns; i++)
		free(rb[i]);
	free(rb);
	free(have);
	free(req);
	free(next_seq);
	close(ep);
	return NULL;
}

/* ---- stall: kernel memory and the other workers' rate, every 20 ms ---- */

static uint64_t others_msgs(void)
{
	uint64_t s = 0;

	for (unsigned int i = 1; i < B.cfg.workers; i++)
		s += atomic_load(&B.w[i].msgs);
	return s;
}

/* MemAvailable in bytes: what the whole machine has left. */
static uint64_t mem_available(void)
{
	unsigned long long kb = 0;
	char line[128];
	FILE *f = fopen("/proc/meminfo", "r");

	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, "MemAvailable: %llu kB", &kb) == 1)
			break;
	if (f)
		fclose(f);
	return kb * 1024;
}

static void *sampler(void *arg)
{
	uint64_t avail0 = mem_available();
	uint64_t t0 = now_ns(), stall_at = t0 + 500000000ull, m0 = 0, m1 = 0, t1 = 0;
	bool stalled = false;

	(void)arg;
	while (!atomic_load(&B.stop)) {
		uint64_t mem = rx_kernel_mem(), t = now_ns();

		uint64_t avail = mem_available();

		if (mem > peak_mem)
			peak_mem = mem;
		if (avail < avail0 && avail0 - avail > peak_sys_mem)
			peak_sys_mem = avail0 - avail;
		if (B.cfg.stall_ms && !stalled && t >= stall_at) {
			m0 = others_msgs();
			others_before = m0 / ((t - t0) / 1e9);
			atomic_store(&B.stall_now, true);
			stalled = true;
			t1 = t;
		}
		if (stalled && t1 && t >= t1 + B.cfg.stall_ms * 1000000ull) {
			m1 = others_msgs();
			others_during = (m1 - m0) / ((t - t1) / 1e9);
			t1 = 0;
		}
		usleep(20000);
	}
	return NULL;
}

/* ---- measure ---- */

static uint64_t cpu_busy_ticks(void)
{
	unsigned long long v[10] = { 0 };
	FILE *f = fopen("/proc/stat", "r");

	if (!f || fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2],
			 &v[3], &v[4], &v[5], &v[6], &v[7]) != 8)
		die("failed to read /proc/stat");
	fclose(f);
	return v[0] + v[1] + v[2] + v[5] + v[6] + v[7]; /* all but idle and iowait */
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static double pct(uint64_t n, double p)
{
	return n ? lat[(size_t)((n - 1) * p)] / 1000.0 : 0;
}

/* build/parsers/thrift.bpf.o, from build/tests/bench/rx_bench */
static const char *default_parser(void)
{
	static char path[4096];
	char exe[4000];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	char *slash;

	if (n <= 0)
		return "thrift.bpf.o";
	exe[n] = '\0';
	slash = strrchr(exe, '/');
	if (slash)
		*slash = '\0';
	snprintf(path, sizeof(path), "%s/../../parsers/thrift.bpf.o", exe);
	return path;
}

static const char *variant_name(enum variant v)
{
	static const char *const names[] = { "kcm", "kcm-batch", "demux", "direct", "kcm-frame",
					     "kcm-prog", "afkcm" };

	return names[v];
}

static void parse(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "variant", required_argument, NULL, 'v' }, { "mode", required_argument, NULL, 'm' },
		{ "size", required_argument, NULL, 's' }, { "conns", required_argument, NULL, 'c' },
		{ "workers", required_argument, NULL, 'w' }, { "msgs", required_argument, NULL, 'n' },
		{ "seconds", required_argument, NULL, 't' },
		{ "outstanding", required_argument, NULL, 'o' },
		{ "hot", required_argument, NULL, 'H' }, { "stall-ms", required_argument, NULL, 'S' },
		{ "batch", required_argument, NULL, 'b' },
		{ "member-rcvbuf", required_argument, NULL, 'r' },
		{ "parser", required_argument, NULL, 'p' }, { "pin", required_argument, NULL, 'P' },
		{ "json", no_argument, NULL, 'j' }, { "help", no_argument, NULL, 'h' }, {},
	};
	struct cfg *c = &B.cfg;
	int o;

	*c = (struct cfg){ .size = 64, .conns = 4, .workers = 2, .outstanding = 1,
			   .batch = -1u, .member_rcvbuf = -1 };
	while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (o) {
		case 'v':
			c->variant = (enum variant)-1;
			for (enum variant v = V_KCM; v <= V_AFKCM; v++)
				if (!strcmp(optarg, variant_name(v)))
					c->variant = v;
			break;
		case 'm':
			c->mode = !strcmp(optarg, "firehose") ? M_FIREHOSE :
				  !strcmp(optarg, "reqresp") ? M_REQRESP : (enum mode)-1;
			break;
		case 's': c->size = strtoul(optarg, NULL, 0); break;
		case 'c': c->conns = strtoul(optarg, NULL, 0); break;
		case 'w': c->workers = strtoul(optarg, NULL, 0); break;
		case 'n': c->msgs = strtoull(optarg, NULL, 0); break;
		case 't': c->seconds = strtod(optarg, NULL); break;
		case 'o': c->outstanding = strtoul(optarg, NULL, 0); break;
		case 'H': c->hot_pct = strtoul(optarg, NULL, 0); break;
		case 'S': c->stall_ms = strtoul(optarg, NULL, 0); break;
		case 'b': c->batch = strtoul(optarg, NULL, 0); break;
		case 'r': c->member_rcvbuf = strtol(optarg, NULL, 0); break;
		case 'p': c->parser = optarg; break;
		case 'P': c->pin = optarg; break;
		case 'j': break; /* the report is always JSON */
		case 'h': usage(stdout); exit(0);
		default: usage(stderr); exit(2);
		}
	}
	if (c->batch == -1u)
		c->batch = c->variant == V_KCM_BATCH ? TUNED_BATCH : 0;
	if (!c->parser && (c->variant == V_KCM_FRAME || c->variant == V_KCM_PROG))
		c->parser = default_parser();
	if (c->member_rcvbuf < 0)
		c->member_rcvbuf = 0;
	if ((int)c->variant < 0 || (int)c->mode < 0 || c->size < MSG_MIN ||
	    c->size > (16u << 20) || !c->conns || c->conns > MAX_CONNS || !c->workers ||
	    c->workers > MAX_WORKERS || c->hot_pct > 100 || !c->outstanding ||
	    c->outstanding > 1024 || optind != argc ||
	    (c->mode == M_FIREHOSE && !c->msgs && c->seconds <= 0) ||
	    (c->mode == M_REQRESP && c->seconds <= 0)) {
		usage(stderr);
		exit(2);
	}
}

int main(int argc, char **argv)
{
	uint64_t t0, t_end, c0, c1, expect = 0, lost = 0, wmax = 0, wmin = UINT64_MAX, got;
	bool firehose, timed, ok;
	double secs, cpu_s;
	char err[128] = "";

	signal(SIGPIPE, SIG_IGN);
	parse(argc, argv);
	firehose = B.cfg.mode == M_FIREHOSE;
	timed = !firehose || !B.cfg.msgs;
	/* a timed run has no count: 32 MiB of bitmaps in all */
	B.seen_cap = firehose && !timed ? (quota_of(0) > quota_of(B.cfg.conns - 1) ?
					   quota_of(0) : quota_of(B.cfg.conns - 1)) :
		     (1ull << 28) / B.cfg.conns;
	B.seen_cap = (B.seen_cap + 63) / 64 * 64;
	for (unsigned int i = 0; firehose && i < B.cfg.conns; i++) {
		B.seen[i] = calloc(B.seen_cap / 64, sizeof(uint64_t));
		if (!B.seen[i])
			die("failed to allocate the sequence bitmaps");
	}
	lat = firehose ? NULL : malloc(MAX_LAT * sizeof(*lat));
	connect_all();
	if (rx_start())
		die("failed to start the receive path");
	pthread_create(&sampler_th, NULL, sampler, NULL);
	c0 = cpu_busy_ticks();
	t0 = now_ns();
	if (firehose)
		for (unsigned int i = 0; i < B.cfg.conns; i++)
			pthread_create(&senders[i], NULL, sender, (void *)(uintptr_t)i);
	else
		pthread_create(&client_th, NULL, client, NULL);
	if (timed) {
		usleep((useconds_t)(B.cfg.seconds * 1e6));
		if (!firehose)
			atomic_store(&B.stop, true); /* the client ends; answers in flight don't count */
	}
	if (firehose) {
		atomic_store(&B.stop_send, timed); /* a timed firehose ends now */
		for (unsigned int i = 0; i < B.cfg.conns; i++)
			pthread_join(senders[i], NULL);
		expect = atomic_load(&B.sent);
		while (total_received() + atomic_load(&B.corrupt) < expect &&
		       now_ns() - t0 < DRAIN_TIMEOUT_NS + (uint64_t)(B.cfg.seconds * 1e9))
			usleep(200);
	}
	t_end = now_ns();
	c1 = cpu_busy_ticks();
	got = total_received();
	if (atomic_load(&send_err)) {
		int so = 0;
		socklen_t sl = sizeof(so);

		for (unsigned int i = 0; i < B.cfg.conns && !so; i++)
			getsockopt(B.srv[i], SOL_SOCKET, SO_ERROR, &so, &sl);
		snprintf(err, sizeof(err), "a sender failed: %s (transport SO_ERROR %d)",
			 strerror(atomic_load(&send_err)), so);
	} else if (firehose && expect < (timed ? 1 : B.cfg.msgs)) {
		snprintf(err, sizeof(err), "only %llu of %llu messages were sent",
			 (unsigned long long)expect, (unsigned long long)B.cfg.msgs);
	} else if (firehose && got < expect) {
		lost = expect - got;
		snprintf(err, sizeof(err), "timed out: %llu of %llu messages arrived",
			 (unsigned long long)got, (unsigned long long)expect);
	}
	atomic_store(&B.stop, true);
	if (!firehose)
		pthread_join(client_th, NULL);
	pthread_join(sampler_th, NULL);
	rx_stop();
	for (unsigned int i = 0; i < B.cfg.conns; i++) { /* libkcm closed its own copies */
		close(B.cli[i]);
		close(B.srv[i]);
	}
	for (unsigned int i = 0; i < B.cfg.workers; i++) {
		uint64_t m = atomic_load(&B.w[i].msgs);

		wmax = m > wmax ? m : wmax;
		wmin = m < wmin ? m : wmin;
	}
	secs = (t_end - t0) / 1e9;
	cpu_s = (double)(c1 - c0) / sysconf(_SC_CLK_TCK);
	ok = !lost && !B.corrupt && !B.dup && !err[0] && got > 0;
	if (!got && !err[0])
		snprintf(err, sizeof(err), "no message arrived");
	if (!firehose) {
		uint64_t n = atomic_load(&nlat) < MAX_LAT ? atomic_load(&nlat) : MAX_LAT;

		qsort(lat, n, sizeof(*lat), cmp_u64);
		nlat = n;
	}
	printf("{\"variant\":\"%s\",\"mode\":\"%s\",\"size\":%u,\"conns\":%u,\"workers\":%u,"
	       "\"outstanding\":%u,\"hot_pct\":%u,\"stall_ms\":%u,\"msgs\":%llu,\"bytes\":%llu,"
	       "\"secs\":%.4f,\"msgs_per_s\":%.1f,\"bytes_per_s\":%.1f,\"cpu_s\":%.3f,"
	       "\"cpu_s_per_m\":%.4f,\"worker_msgs\":[",
	       variant_name(B.cfg.variant), firehose ? "firehose" : "reqresp", B.cfg.size,
	       B.cfg.conns, B.cfg.workers, firehose ? 0 : B.cfg.outstanding, B.cfg.hot_pct,
	       B.cfg.stall_ms, (unsigned long long)got, (unsigned long long)got * B.cfg.size,
	       secs, got / secs, got * (double)B.cfg.size / secs, cpu_s,
	       got ? cpu_s / got * 1e6 : 0.0);
	for (unsigned int i = 0; i < B.cfg.workers; i++)
		printf("%s%llu", i ? "," : "", (unsigned long long)atomic_load(&B.w[i].msgs));
	printf("],\"imbalance\":%.4f,\"lost\":%llu,\"dup\":%llu,\"corrupt\":%llu,\"ok\":%s,",
	       wmax ? (double)(wmax - wmin) / wmax : 0.0, (unsigned long long)lost,
	       (unsigned long long)B.dup, (unsigned long long)B.corrupt, ok ? "true" : "false");
	if (firehose)
		printf("\"lat_p50_us\":null,\"lat_p99_us\":null,\"lat_p999_us\":null,");
	else
		printf("\"lat_p50_us\":%.1f,\"lat_p99_us\":%.1f,\"lat_p999_us\":%.1f,",
		       pct(nlat, 0.5), pct(nlat, 0.99), pct(nlat, 0.999));
	printf("\"batch\":%u,\"member_rcvbuf\":%d,", B.cfg.batch, B.cfg.member_rcvbuf);
	printf("\"peak_mem_bytes\":%llu,\"peak_sys_mem_bytes\":%llu,\"others_ratio\":",
	       (unsigned long long)peak_mem, (unsigned long long)peak_sys_mem);
	if (B.cfg.stall_ms && others_before > 0)
		printf("%.4f,", others_during / others_before);
	else
		printf("null,");
	printf("\"error\":\"%s\"}\n", err);
	return ok ? 0 : 1;
}
