// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * tx_bench: transmit designs side by side, speed and atomicity in one run. N sender
 * threads send fixed-size length-prefixed messages through T transports (loopback TCP
 * pairs); a reader per transport re-splits the stream and checks every frame.
 *
 *   kcm    libkcm: kcm_send() on a KCM socket per thread, transports attached to a mux
 *   skmsg  plain sk_msg egress redirect: each sender's own TCP socket is in a sockmap
 *          whose sk_msg program redirects every sendmsg to transport (i % T)
 *   mutex  naive: sender i write()s to transport (i % T) under that transport's mutex
 *
 * For every body size and transport SO_SNDBUF (a cell), each variant runs --runs times,
 * interleaved (kcm skmsg mutex kcm skmsg mutex ...), with a fixed message count. A
 * reader stops checking a stream at its first corrupt frame (then only drains it), so
 * every message after it counts as missing.
 *
 *   tx_bench [--senders N] [--transports N] [--runs N] [--sizes B,B,..] [--sndbufs B,..]
 *            [--count N] [--variants kcm,skmsg,mutex] [--full-check] [--stall-s S]
 *            [--quick] [--json]
 *
 * Exit status: 0 every kcm run intact, 1 a kcm run lost or corrupted a message or an
 * error stopped the harness, 2 usage.
 */
#include <getopt.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "kcm.h"
#define PROG "tx_bench"
#include "progs.h"
#include "bench_skmsg.skel.h"

#define MAX_SENDERS 32
#define MAX_TRANSPORTS 32
#define MAX_LIST 8
#define MAX_RUNS 21
#define READ_CHUNK (1 << 20)

enum variant { V_KCM, V_SKMSG, V_MUTEX, V_COUNT };
static const char *const vname[V_COUNT] = { "kcm", "skmsg", "mutex" };

static struct {
	unsigned int senders, transports, runs, stall_s;
	uint32_t sizes[MAX_LIST];
	int sndbufs[MAX_LIST];
	unsigned int nsizes, nsndbufs;
	uint64_t count;		/* 0 = scaled by body size */
	bool variant[V_COUNT];
	bool quick, json, full_check;
} opt = {
	.senders = 4, .transports = 2, .runs = 5, .stall_s = 20,
	.sizes = { 64, 1024, 16384 }, .nsizes = 3,
	.sndbufs = { 0, 4096 }, .nsndbufs = 2,
	.variant = { true, true, true },
};

/* What one run measured and what its readers found. */
struct result {
	double elapsed_s, cpu_s;
	uint64_t sent, sent_bytes, received, recv_bytes;
	uint64_t corrupt, interleaved, desync, partial, missing, duplicates, reordered;
	bool stalled;
	int send_err, recv_err;
};

struct sender {
	pthread_t th;
	uint32_t id;
	int fd;			/* kcm: KCM socket; skmsg: own TCP socket; mutex: unused */
	unsigned int tx;	/* skmsg, mutex: transport index */
	atomic_ullong sent, bytes;
	int err;
};

struct reader {
	pthread_t th;
	int fd;
	atomic_ullong bytes;
	uint64_t msgs, corrupt, interleaved, desync, partial, reordered;
	uint32_t last_seq[MAX_SENDERS];
	int err;
};

/* State of the run in progress (one at a time). */
static struct {
	enum variant v;
	uint32_t body;
	size_t frame;
	uint64_t per;			/* messages per sender */
	int tx_w[MAX_TRANSPORTS];	/* transport end written to */
	int tx_r[MAX_TRANSPORTS];	/* its peer, read by a reader */
	int peer[MAX_SENDERS];		/* skmsg: far end of each sender socket */
	pthread_mutex_t tx_mu[MAX_TRANSPORTS];
	struct sender s[MAX_SENDERS];
	struct reader r[MAX_TRANSPORTS];
	_Atomic uint8_t *seen;		/* copies received per global id */
	pthread_barrier_t go;
} run;

/*
 * Body bytes after the ids depend on conn and seq only through c = (conn * 31 + seq * 7)
 * mod 256 (see pattern_byte()), so 256 frames built by msg_build() are every body there
 * can be; senders copy one and readers memcmp() against one. --full-check uses msg_check().
 */
static uint8_t *tmpl[256];
static struct bench_skmsg_bpf *skel;

static unsigned int tmpl_index(uint32_t conn, uint32_t seq)
{
	return (conn * 31u + seq * 7u) & 255;
}

static void tmpl_build(uint32_t body)
{
	for (unsigned int c = 0; c < 256; c++) {
		free(tmpl[c]);
		tmpl[c] = malloc(4 + (size_t)body);
		if (!tmpl[c])
			die("failed to allocate message templates: %s", strerror(ENOMEM));
		/* 183 = 7^-1 mod 256: seq (c * 183) of conn 0 has index c */
		msg_build(tmpl[c], 0, (c * 183u) & 255, body);
	}
}

static void frame_fill(uint8_t *buf, uint32_t conn, uint32_t seq, uint32_t body)
{
	uint32_t ids[3] = { htonl(conn), htonl(seq), htonl(body) };

	memcpy(buf, tmpl[tmpl_index(conn, seq)], 4 + (size_t)body);
	memcpy(buf + 4, ids, sizeof(ids));
}

/* The templates make exactly the frames msg_build() makes, and the checker agrees. */
static void tmpl_selftest(uint32_t body)
{
	uint8_t *a = malloc(4 + (size_t)body), *b = malloc(4 + (size_t)body);
	uint32_t conn, seq;

	if (!a || !b)
		die("failed to allocate self-test frames: %s", strerror(ENOMEM));
	for (uint32_t i = 0; i < 600; i++) {
		msg_build(a, i % MAX_SENDERS, i * 977u, body);
		frame_fill(b, i % MAX_SENDERS, i * 977u, body);
		if (memcmp(a, b, 4 + (size_t)body) || msg_check(b, 4 + (size_t)body, &conn, &seq))
			die("self-test failed: template frame differs from msg_build() (body %u)",
			    body);
	}
	free(a);
	free(b);
}

static uint64_t busy_ticks(void)
{
	unsigned long long v[8] = { 0 };
	FILE *f = fopen("/proc/stat", "r");
	int n;

	if (!f)
		die("failed to open /proc/stat: %s", strerror(errno));
	/* user nice system idle iowait irq softirq steal */
	n = fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3],
		   &v[4], &v[5], &v[6], &v[7]);
	fclose(f);
	if (n < 7)
		die("failed to parse /proc/stat");
	return v[0] + v[1] + v[2] + v[5] + v[6] + v[7];
}

static int send_all(int fd, const uint8_t *buf, size_t len)
{
	size_t done = 0;

	while (done < len) {
		ssize_t r = send(fd, buf + done, len - done, MSG_NOSIGNAL);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return r < 0 ? errno : EIO;
		done += r;
	}
	return 0;
}

static void *send_main(void *arg)
{
	struct sender *s = arg;
	uint8_t *buf = malloc(run.frame);

	pthread_barrier_wait(&run.go);
	if (!buf) {
		s->err = ENOMEM;
		return NULL;
	}
	for (uint64_t seq = 0; seq < run.per; seq++) {
		frame_fill(buf, s->id, (uint32_t)seq, run.body);
		switch (run.v) {
		case V_KCM: {
			ssize_t r = kcm_send(s->fd, buf, run.frame, 0);

			if (r != (ssize_t)run.frame)
				s->err = r < 0 ? errno : EIO; /* a short count breaks the API */
			break;
		}
		case V_SKMSG:
			s->err = send_all(s->fd, buf, run.frame);
			break;
		default:
			pthread_mutex_lock(&run.tx_mu[s->tx]);
			s->err = send_all(run.tx_w[s->tx], buf, run.frame);
			pthread_mutex_unlock(&run.tx_mu[s->tx]);
			break;
		}
		if (s->err)
			break;
		atomic_fetch_add_explicit(&s->bytes, run.frame, memory_order_relaxed);
		atomic_fetch_add_explicit(&s->sent, 1, memory_order_relaxed);
	}
	free(buf);
	return NULL;
}

/* Check one whole frame; false when it is corrupt (the stream is then given up). */
static bool frame_ok(struct reader *rd, const uint8_t *f)
{
	uint32_t ids[3], conn, seq;
	bool ok;

	memcpy(ids, f + 4, sizeof(ids));
	conn = ntohl(ids[0]);
	seq = ntohl(ids[1]);
	if (opt.full_check)
		ok = msg_check(f, run.frame, &conn, &seq) == 0;
	else
		ok = ntohl(ids[2]) == run.body && conn < MAX_SENDERS &&
		     !memcmp(f + 4 + PROG_BODY_IDS, tmpl[tmpl_index(conn, seq)] + 4 + PROG_BODY_IDS,
			     run.body - PROG_BODY_IDS);
	ok = ok && conn < opt.senders && seq < run.per;
	if (!ok) {
		rd->corrupt++;
		/* A sound header and ids with foreign bytes inside: two messages interleaved. */
		if (ntohl(ids[2]) == run.body && ntohl(ids[0]) < opt.senders)
			rd->interleaved++;
		return false;
	}
	if (rd->last_seq[conn] != UINT32_MAX && seq <= rd->last_seq[conn])
		rd->reordered++;
	rd->last_seq[conn] = seq;
	atomic_fetch_add_explicit(&run.seen[conn * run.per + seq], 1, memory_order_relaxed);
	rd->msgs++;
	return true;
}

static void *read_main(void *arg)
{
	struct reader *rd = arg;
	size_t cap = READ_CHUNK + run.frame, have = 0, off;
	uint8_t *buf = malloc(cap);
	bool synced = true;

	for (unsigned int i = 0; i < MAX_SENDERS; i++)
		rd->last_seq[i] = UINT32_MAX;
	if (!buf) {
		rd->err = ENOMEM;
		return NULL;
	}
	for (;;) {
		ssize_t r = read(rd->fd, buf + (synced ? have : 0), synced ? cap - have : cap);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			if (r < 0)
				rd->err = errno;
			break;
		}
		atomic_fetch_add_explicit(&rd->bytes, r, memory_order_relaxed);
		if (!synced)
			continue; /* given up at the first corrupt frame: drain */
		have += r;
		for (off = 0; have - off >= 4; off += run.frame) {
			uint32_t len;

			memcpy(&len, buf + off, 4);
			if (ntohl(len) != run.body) {
				/* every frame has this body: the stream lost its alignment */
				rd->corrupt++;
				rd->desync++;
				synced = false;
				break;
			}
			if (have - off < run.frame)
				break;
			if (!frame_ok(rd, buf + off)) {
				synced = false;
				break;
			}
		}
		if (synced) {
			memmove(buf, buf + off, have - off);
			have -= off;
		}
	}
	if (synced && have) { /* EOF inside a frame: half a message went out */
		rd->corrupt++;
		rd->partial++;
	}
	free(buf);
	return NULL;
}

static void set_sndbuf(int fd, int bytes, unsigned int i)
{
	if (bytes && setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &bytes, sizeof(bytes)))
		die("failed to set SO_SNDBUF %d on transport %u: %s", bytes, i, strerror(errno));
}

static uint16_t local_port(int fd)
{
	struct sockaddr_in a;
	socklen_t al = sizeof(a);

	if (getsockname(fd, (struct sockaddr *)&a, &al))
		die("failed to read the local port of a sender socket: %s", strerror(errno));
	return ntohs(a.sin_port);
}

static int skel_fd(const struct bpf_map *m)
{
	return bpf_map__fd(m);
}

/* Transports, senders' sockets, and the variant's plumbing for one run. */
static struct kcm_mux *run_setup(int sndbuf, int *eff)
{
	struct kcm_mux *mux = NULL;
	socklen_t sl = sizeof(*eff);

	for (unsigned int i = 0; i < opt.transports; i++) {
		tcp_pair(&run.tx_r[i], &run.tx_w[i]);
		set_sndbuf(run.tx_w[i], sndbuf, i);
		pthread_mutex_init(&run.tx_mu[i], NULL);
	}
	for (unsigned int i = 0; i < opt.senders; i++) {
		struct sender *s = &run.s[i];

		atomic_store(&s->sent, 0);
		atomic_store(&s->bytes, 0);
		s->err = 0;
		s->id = i;
		s->tx = i % opt.transports;
		s->fd = -1;
		run.peer[i] = -1;
	}
	if (run.v == V_KCM) {
		struct kcm_mux_opts mo = { .sz = sizeof(mo), .framing = KCM_FRAMING_THRIFT };

		mo.max_msg_size = run.frame > 65536 ? run.frame : 65536;
		mux = kcm_mux_create(&mo);
		if (!mux)
			die("failed to create the mux: %s", kcm_last_error());
		for (unsigned int i = 0; i < opt.transports; i++)
			if (kcm_attach(mux, run.tx_w[i]))
				die("failed to attach transport %u: %s", i, kcm_last_error());
		for (unsigned int i = 0; i < opt.senders; i++) {
			run.s[i].fd = i ? kcm_clone(run.s[0].fd) : kcm_socket(mux);
			if (run.s[i].fd < 0)
				die("failed to make KCM socket %u: %s", i, kcm_last_error());
		}
	} else if (run.v == V_SKMSG) {
		for (unsigned int i = 0; i < opt.transports; i++) {
			__u32 k = i;
			__u64 fd = run.tx_w[i];

			if (bpf_map_update_elem(skel_fd(skel->maps.transports), &k, &fd, BPF_ANY))
				die("failed to add transport %u to the sockmap: %s", i,
				    strerror(errno));
		}
		for (unsigned int i = 0; i < opt.senders; i++) {
			__u32 k = i, port, tx = run.s[i].tx;
			__u64 fd;

			tcp_pair(&run.s[i].fd, &run.peer[i]);
			port = local_port(run.s[i].fd);
			fd = run.s[i].fd;
			if (bpf_map_update_elem(skel_fd(skel->maps.route), &port, &tx, BPF_ANY) ||
			    bpf_map_update_elem(skel_fd(skel->maps.senders), &k, &fd, BPF_ANY))
				die("failed to add sender %u to the sockmap: %s", i, strerror(errno));
		}
	}
	getsockopt(run.tx_w[0], SOL_SOCKET, SO_SNDBUF, eff, &sl);
	return mux;
}

static void run_teardown(struct kcm_mux *mux)
{
	if (run.v == V_KCM) {
		for (unsigned int i = 0; i < opt.senders; i++)
			kcm_close(run.s[i].fd);
		kcm_mux_destroy(mux);
	} else if (run.v == V_SKMSG) {
		for (unsigned int i = 0; i < opt.senders; i++) {
			__u32 k = i, port = local_port(run.s[i].fd);

			bpf_map_delete_elem(skel_fd(skel->maps.senders), &k);
			bpf_map_delete_elem(skel_fd(skel->maps.route), &port);
			close(run.s[i].fd);
			close(run.peer[i]);
		}
		for (unsigned int i = 0; i < opt.transports; i++) {
			__u32 k = i;

			bpf_map_delete_elem(skel_fd(skel->maps.transports), &k);
		}
	}
	for (unsigned int i = 0; i < opt.transports; i++) {
		close(run.tx_w[i]);
		close(run.tx_r[i]);
		pthread_mutex_destroy(&run.tx_mu[i]);
	}
}

/* Unblock every thread of a hung run: writers get EPIPE, readers EOF. */
static void run_abort(void)
{
	for (unsigned int i = 0; i < opt.transports; i++) {
		shutdown(run.tx_w[i], SHUT_RDWR);
		shutdown(run.tx_r[i], SHUT_RDWR);
	}
	for (unsigned int i = 0; i < opt.senders; i++)
		if (run.v == V_SKMSG)
			shutdown(run.s[i].fd, SHUT_RDWR);
}

static void run_once(enum variant v, uint32_t body, int sndbuf, uint64_t count,
		     struct result *res, int *eff)
{
	uint64_t t0, c0, last_progress = 0, last_change, unique = 0;
	struct kcm_mux *mux;

	memset(res, 0, sizeof(*res));
	run.v = v;
	run.body = body;
	run.frame = 4 + (size_t)body;
	run.per = count / opt.senders;
	memset(run.r, 0, sizeof(run.r));
	run.seen = calloc(run.per * opt.senders, 1);
	if (!run.seen)
		die("failed to allocate %llu counters", (unsigned long long)count);
	mux = run_setup(sndbuf, eff);
	pthread_barrier_init(&run.go, NULL, opt.senders + 1);
	for (unsigned int i = 0; i < opt.transports; i++) {
		run.r[i].fd = run.tx_r[i];
		pthread_create(&run.r[i].th, NULL, read_main, &run.r[i]);
	}
	for (unsigned int i = 0; i < opt.senders; i++)
		pthread_create(&run.s[i].th, NULL, send_main, &run.s[i]);
	c0 = busy_ticks();
	t0 = now_ns();
	pthread_barrier_wait(&run.go);

	/* Wait for the senders, watching for a hang. */
	last_change = now_ns();
	for (;;) {
		uint64_t progress = 0;
		unsigned int done = 0;

		for (unsigned int i = 0; i < opt.senders; i++) {
			progress += atomic_load(&run.s[i].sent);
			done += atomic_load(&run.s[i].sent) == run.per || run.s[i].err;
		}
		for (unsigned int i = 0; i < opt.transports; i++)
			progress += atomic_load(&run.r[i].bytes);
		if (done == opt.senders)
			break;
		if (progress != last_progress) {
			last_progress = progress;
			last_change = now_ns();
		} else if (now_ns() - last_change > opt.stall_s * 1000000000ull) {
			res->stalled = true;
			run_abort();
			break;
		}
		usleep(2000);
	}
	for (unsigned int i = 0; i < opt.senders; i++)
		pthread_join(run.s[i].th, NULL);
	/* Every message is written: the readers see EOF after the last byte. */
	for (unsigned int i = 0; i < opt.transports; i++)
		shutdown(run.tx_w[i], SHUT_WR);
	for (unsigned int i = 0; i < opt.transports; i++)
		pthread_join(run.r[i].th, NULL);
	res->elapsed_s = (now_ns() - t0) / 1e9;
	res->cpu_s = (double)(busy_ticks() - c0) / sysconf(_SC_CLK_TCK);
	pthread_barrier_destroy(&run.go);

	for (unsigned int i = 0; i < opt.senders; i++) {
		res->sent += atomic_load(&run.s[i].sent);
		res->sent_bytes += atomic_load(&run.s[i].bytes);
		if (run.s[i].err && !res->send_err)
			res->send_err = run.s[i].err;
	}
	for (unsigned int i = 0; i < opt.transports; i++) {
		struct reader *rd = &run.r[i];

		res->received += rd->msgs;
		res->recv_bytes += atomic_load(&rd->bytes);
		res->corrupt += rd->corrupt;
		res->interleaved += rd->interleaved;
		res->desync += rd->desync;
		res->partial += rd->partial;
		res->reordered += rd->reordered;
		if (rd->err && !res->recv_err)
			res->recv_err = rd->err;
	}
	for (uint64_t id = 0; id < run.per * opt.senders; id++) {
		uint8_t n = atomic_load(&run.seen[id]);

		unique += n > 0;
		res->duplicates += n > 1 ? n - 1 : 0;
	}
	res->missing = res->sent > unique ? res->sent - unique : 0;
	/* messages never sent (a sender stopped on an error) are missing too */
	res->missing += run.per * opt.senders - res->sent;
	free(run.seen);
	run_teardown(mux);
}

static bool intact(const struct result *r)
{
	return !r->corrupt && !r->missing && !r->duplicates && !r->reordered && !r->stalled &&
	       !r->send_err && !r->recv_err;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

struct stat3 {
	double median, min, max;
};

static struct stat3 stat_of(const double *v, unsigned int n)
{
	double s[MAX_RUNS];
	struct stat3 st;

	memcpy(s, v, n * sizeof(*s));
	qsort(s, n, sizeof(*s), cmp_double);
	st.min = s[0];
	st.max = s[n - 1];
	st.median = n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
	return st;
}

struct vsum {
	struct result runs[MAX_RUNS];
	struct stat3 rate, mbs, cpu, cpu_us;
	uint64_t corrupt, interleaved, desync, partial, missing, duplicates, reordered;
	unsigned int bad_runs, stalled;
};

static void summarize(struct vsum *vs, unsigned int n)
{
	double rate[MAX_RUNS], mbs[MAX_RUNS], cpu[MAX_RUNS], cpu_us[MAX_RUNS];

	for (unsigned int i = 0; i < n; i++) {
		const struct result *r = &vs->runs[i];

		rate[i] = r->elapsed_s > 0 ? r->sent / r->elapsed_s : 0;
		mbs[i] = r->elapsed_s > 0 ? r->recv_bytes / r->elapsed_s / 1e6 : 0;
		cpu[i] = r->cpu_s;
		cpu_us[i] = r->sent ? r->cpu_s * 1e6 / r->sent : 0;
		vs->corrupt += r->corrupt;
		vs->interleaved += r->interleaved;
		vs->desync += r->desync;
		vs->partial += r->partial;
		vs->missing += r->missing;
		vs->duplicates += r->duplicates;
		vs->reordered += r->reordered;
		vs->bad_runs += !intact(r);
		vs->stalled += r->stalled;
	}
	vs->rate = stat_of(rate, n);
	vs->mbs = stat_of(mbs, n);
	vs->cpu = stat_of(cpu, n);
	vs->cpu_us = stat_of(cpu_us, n);
}

static uint64_t cell_count(uint32_t body)
{
	uint64_t n;

	if (opt.count)
		n = opt.count;
	else if (body <= 256)
		n = 400000;
	else if (body <= 4096)
		n = 200000;
	else
		n = 40000;
	if (opt.quick && !opt.count)
		n /= 20;
	n -= n % opt.senders;
	return n ? n : opt.senders;
}

static void print_stat(const char *name, struct stat3 s, int prec, bool comma)
{
	printf("\"%s\":{\"median\":%.*f,\"min\":%.*f,\"max\":%.*f}%s", name, prec, s.median, prec,
	       s.min, prec, s.max, comma ? "," : "");
}

static const char *err_str(int e)
{
	return e ? strerror(e) : "";
}

static void json_variant(enum variant v, const struct vsum *vs, unsigned int n)
{
	printf("{\"name\":\"%s\",\"runs\":[", vname[v]);
	for (unsigned int i = 0; i < n; i++) {
		const struct result *r = &vs->runs[i];

		printf("%s{\"elapsed_s\":%.4f,\"msgs_per_s\":%.0f,\"mb_per_s\":%.1f,\"cpu_s\":%.2f,"
		       "\"sent\":%llu,\"received\":%llu,\"sent_bytes\":%llu,\"recv_bytes\":%llu,"
		       "\"corrupt\":%llu,\"interleaved\":%llu,\"desync\":%llu,\"partial\":%llu,"
		       "\"missing\":%llu,\"duplicates\":%llu,\"reordered\":%llu,\"stalled\":%s,"
		       "\"send_error\":\"%s\",\"recv_error\":\"%s\",\"intact\":%s}",
		       i ? "," : "", r->elapsed_s, r->elapsed_s > 0 ? r->sent / r->elapsed_s : 0,
		       r->elapsed_s > 0 ? r->recv_bytes / r->elapsed_s / 1e6 : 0, r->cpu_s,
		       (unsigned long long)r->sent, (unsigned long long)r->received,
		       (unsigned long long)r->sent_bytes, (unsigned long long)r->recv_bytes,
		       (unsigned long long)r->corrupt, (unsigned long long)r->interleaved,
		       (unsigned long long)r->desync, (unsigned long long)r->partial,
		       (unsigned long long)r->missing, (unsigned long long)r->duplicates,
		       (unsigned long long)r->reordered, r->stalled ? "true" : "false",
		       err_str(r->send_err), err_str(r->recv_err), intact(r) ? "true" : "false");
	}
	printf("],");
	print_stat("msgs_per_s", vs->rate, 0, true);
	print_stat("mb_per_s", vs->mbs, 1, true);
	print_stat("cpu_s", vs->cpu, 2, true);
	print_stat("cpu_us_per_msg", vs->cpu_us, 2, true);
	printf("\"corrupt\":%llu,\"interleaved\":%llu,\"desync\":%llu,\"partial\":%llu,"
	       "\"missing\":%llu,\"duplicates\":%llu,\"reordered\":%llu,\"stalled_runs\":%u,"
	       "\"bad_runs\":%u,\"intact\":%s}",
	       (unsigned long long)vs->corrupt, (unsigned long long)vs->interleaved,
	       (unsigned long long)vs->desync, (unsigned long long)vs->partial,
	       (unsigned long long)vs->missing, (unsigned long long)vs->duplicates,
	       (unsigned long long)vs->reordered, vs->stalled, vs->bad_runs,
	       vs->bad_runs ? "false" : "true");
}

static double ratio(const struct vsum *vs, enum variant a, enum variant b)
{
	return opt.variant[a] && opt.variant[b] && vs[b].rate.median > 0 ?
		       vs[a].rate.median / vs[b].rate.median : 0;
}

static void print_ratio(double r, const char *none)
{
	if (r > 0)
		printf("%.3f", r);
	else
		printf("%s", none);
}

static void report_cell(uint32_t body, int sndbuf, int eff, uint64_t count,
			const struct vsum *vs, bool first)
{
	if (opt.json) {
		bool comma = false;

		printf("%s{\"body\":%u,\"frame\":%u,\"sndbuf\":%d,\"sndbuf_effective\":%d,"
		       "\"count\":%llu,\"variants\":[", first ? "" : ",", body, body + 4, sndbuf,
		       eff, (unsigned long long)count);
		for (int v = 0; v < V_COUNT; v++) {
			if (!opt.variant[v])
				continue;
			printf("%s", comma ? "," : "");
			json_variant(v, &vs[v], opt.runs);
			comma = true;
		}
		printf("],\"ratio_kcm_skmsg\":");
		print_ratio(ratio(vs, V_KCM, V_SKMSG), "null");
		printf(",\"ratio_kcm_mutex\":");
		print_ratio(ratio(vs, V_KCM, V_MUTEX), "null");
		printf("}");
		return;
	}
	for (int v = 0; v < V_COUNT; v++) {
		const struct vsum *s = &vs[v];

		if (!opt.variant[v])
			continue;
		printf("| %5u | %7s | %-5s | %9.0f (%.0f-%.0f) | %7.1f | %5.2f (%.2f-%.2f) | %6.2f |"
		       " %llu | %llu | %llu | %u/%u |\n",
		       body, sndbuf ? "4096" : "default", vname[v], s->rate.median, s->rate.min,
		       s->rate.max, s->mbs.median, s->cpu.median, s->cpu.min, s->cpu.max,
		       s->cpu_us.median, (unsigned long long)s->corrupt,
		       (unsigned long long)s->interleaved, (unsigned long long)s->missing,
		       s->bad_runs, opt.runs);
	}
	printf("| %5u | %7s | ratio | kcm/skmsg ", body, sndbuf ? "4096" : "default");
	print_ratio(ratio(vs, V_KCM, V_SKMSG), "n/a");
	printf(", kcm/mutex ");
	print_ratio(ratio(vs, V_KCM, V_MUTEX), "n/a");
	printf(" (msgs/s medians) | | | | | | | |\n");
	(void)count;
	(void)eff;
}

static void usage(const char *prog, int status)
{
	fprintf(status ? stderr : stdout,
		"usage: %s [--senders N] [--transports N] [--runs N] [--sizes B,B,..]\n"
		"          [--sndbufs B,B,..] [--count N] [--variants kcm,skmsg,mutex]\n"
		"          [--full-check] [--stall-s S] [--quick] [--json]\n"
		"  --sndbufs: transport SO_SNDBUF per cell, 0 = kernel default (default 0,4096)\n"
		"  --count: messages per run in every cell (default 400000 for bodies up to 256 B,\n"
		"           200000 up to 4 KiB, 40000 above; --quick divides by 20 and runs once)\n",
		prog);
	exit(status);
}

/* "a,b,c" of numbers in [lo, hi]; returns how many. */
static unsigned int parse_list(char *s, const char *what, uint64_t lo, uint64_t hi,
			       uint64_t *out)
{
	unsigned int n = 0;

	for (char *tok = strtok(s, ","); tok; tok = strtok(NULL, ",")) {
		if (n == MAX_LIST) {
			fprintf(stderr, "invalid %s: at most %d values\n", what, MAX_LIST);
			exit(2);
		}
		out[n++] = parse_num(what, tok, lo, hi);
	}
	if (!n) {
		fprintf(stderr, "invalid %s: empty list\n", what);
		exit(2);
	}
	return n;
}

static void parse_variants(char *s)
{
	memset(opt.variant, 0, sizeof(opt.variant));
	for (char *tok = strtok(s, ","); tok; tok = strtok(NULL, ",")) {
		int v = 0;

		while (v < V_COUNT && strcmp(tok, vname[v]))
			v++;
		if (v == V_COUNT) {
			fprintf(stderr, "invalid --variants '%s': expected kcm, skmsg or mutex\n",
				tok);
			exit(2);
		}
		opt.variant[v] = true;
	}
}

static void parse_args(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "senders", required_argument, NULL, 's' },
		{ "transports", required_argument, NULL, 't' },
		{ "runs", required_argument, NULL, 'r' },
		{ "sizes", required_argument, NULL, 'z' },
		{ "sndbufs", required_argument, NULL, 'b' },
		{ "count", required_argument, NULL, 'c' },
		{ "variants", required_argument, NULL, 'V' },
		{ "full-check", no_argument, NULL, 'f' },
		{ "stall-s", required_argument, NULL, 'S' },
		{ "quick", no_argument, NULL, 'q' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{},
	};
	uint64_t l[MAX_LIST];
	bool runs_set = false;
	int c;

	while ((c = getopt_long(argc, argv, "s:t:r:z:b:c:V:fS:qjh", lo, NULL)) != -1) {
		switch (c) {
		case 's':
			opt.senders = parse_num("--senders", optarg, 1, MAX_SENDERS);
			break;
		case 't':
			opt.transports = parse_num("--transports", optarg, 1, MAX_TRANSPORTS);
			break;
		case 'r':
			opt.runs = parse_num("--runs", optarg, 1, MAX_RUNS);
			runs_set = true;
			break;
		case 'z':
			opt.nsizes = parse_list(optarg, "--sizes", PROG_BODY_IDS, 1 << 20, l);
			for (unsigned int i = 0; i < opt.nsizes; i++)
				opt.sizes[i] = l[i];
			break;
		case 'b':
			opt.nsndbufs = parse_list(optarg, "--sndbufs", 0, 64 << 20, l);
			for (unsigned int i = 0; i < opt.nsndbufs; i++)
				opt.sndbufs[i] = l[i];
			break;
		case 'c':
			opt.count = parse_num("--count", optarg, 1, 100000000);
			break;
		case 'V':
			parse_variants(optarg);
			break;
		case 'f':
			opt.full_check = true;
			break;
		case 'S':
			opt.stall_s = parse_num("--stall-s", optarg, 1, 3600);
			break;
		case 'q':
			opt.quick = true;
			break;
		case 'j':
			opt.json = true;
			break;
		case 'h':
			usage(argv[0], 0);
			break;
		default:
			usage(argv[0], 2);
		}
	}
	if (optind != argc)
		usage(argv[0], 2);
	if (opt.quick && !runs_set)
		opt.runs = 1;
	if (opt.count && opt.count < opt.senders) {
		fprintf(stderr, "invalid --count %llu: expected at least one message per sender\n",
			(unsigned long long)opt.count);
		exit(2);
	}
}

static int libbpf_quiet(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	return level == LIBBPF_DEBUG ? 0 : vfprintf(stderr, fmt, ap);
}

static void skmsg_load(void)
{
	int err;

	skel = bench_skmsg_bpf__open_and_load();
	if (!skel)
		die("failed to load the sk_msg baseline (bench_skmsg.bpf.o): %s", strerror(errno));
	/* the skeleton's attach does not do sockmap programs (libbpf 1.1) */
	err = bpf_prog_attach(bpf_program__fd(skel->progs.bench_redirect),
			      skel_fd(skel->maps.senders), BPF_SK_MSG_VERDICT, 0);
	if (err)
		die("failed to attach the sk_msg program to the senders sockmap: %s",
		    strerror(errno));
}

static void skmsg_unload(void)
{
	if (!skel)
		return;
	bpf_prog_detach2(bpf_program__fd(skel->progs.bench_redirect),
			 skel_fd(skel->maps.senders), BPF_SK_MSG_VERDICT);
	bench_skmsg_bpf__destroy(skel);
	skel = NULL;
}

int main(int argc, char **argv)
{
	static struct vsum vs[V_COUNT];
	unsigned int ncells, cell = 0, step = 0, nvar = 0;
	bool kcm_ok = true;

	parse_args(argc, argv);
	setvbuf(stdout, NULL, _IOLBF, 0);
	signal(SIGPIPE, SIG_IGN);
	libbpf_set_print(libbpf_quiet);
	for (int v = 0; v < V_COUNT; v++)
		nvar += opt.variant[v];
	if (opt.variant[V_SKMSG])
		skmsg_load();
	ncells = opt.nsizes * opt.nsndbufs;

	if (opt.json)
		printf("{\"tool\":\"tx_bench\",\"senders\":%u,\"transports\":%u,\"runs\":%u,"
		       "\"quick\":%s,\"check\":\"%s\",\"stall_s\":%u,\"cells\":[",
		       opt.senders, opt.transports, opt.runs, opt.quick ? "true" : "false",
		       opt.full_check ? "msg_check" : "template", opt.stall_s);
	else
		printf("tx_bench: %u senders, %u transports, %u runs per variant and cell\n\n"
		       "| body B | SO_SNDBUF | variant | msgs/s median (min-max) | MB/s | "
		       "CPU s median (min-max) | CPU us/msg | corrupt | interleaved | missing | "
		       "bad runs |\n|---|---|---|---|---|---|---|---|---|---|---|\n",
		       opt.senders, opt.transports, opt.runs);

	for (unsigned int zi = 0; zi < opt.nsizes; zi++) {
		uint32_t body = opt.sizes[zi];

		tmpl_build(body);
		tmpl_selftest(body);
		for (unsigned int bi = 0; bi < opt.nsndbufs; bi++) {
			int sndbuf = opt.sndbufs[bi], eff = 0;
			uint64_t count = cell_count(body);

			memset(vs, 0, sizeof(vs));
			for (unsigned int rep = 0; rep < opt.runs; rep++) {
				for (int v = 0; v < V_COUNT; v++) {
					struct result *r = &vs[v].runs[rep];

					if (!opt.variant[v])
						continue;
					run_once(v, body, sndbuf, count, r, &eff);
					step++;
					fprintf(stderr,
						"[%u/%u] body %u B, SO_SNDBUF %s, %s run %u/%u: "
						"%.0f msgs/s, %.2f s, %s\n",
						step, ncells * opt.runs * nvar, body,
						sndbuf ? "4096" : "default", vname[v], rep + 1,
						opt.runs, r->sent / r->elapsed_s, r->elapsed_s,
						intact(r) ? "intact" :
						r->stalled ? "STALLED" :
						r->corrupt ? "CORRUPT" : "LOST MESSAGES");
				}
			}
			for (int v = 0; v < V_COUNT; v++)
				if (opt.variant[v])
					summarize(&vs[v], opt.runs);
			kcm_ok &= !opt.variant[V_KCM] || !vs[V_KCM].bad_runs;
			report_cell(body, sndbuf, eff, count, vs, cell++ == 0);
		}
	}
	if (opt.json)
		printf("],\"kcm_intact\":%s}\n", kcm_ok ? "true" : "false");
	skmsg_unload();
	for (unsigned int c = 0; c < 256; c++)
		free(tmpl[c]);
	return kcm_ok ? 0 : 1;
}
