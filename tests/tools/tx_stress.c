// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * tx_stress: transmit atomicity under backpressure. Several threads, each with its own
 * KCM socket, send messages of mixed sizes through a mux whose transports (loopback TCP
 * pairs) have a tiny send buffer; a slow reader on the peer end of every transport
 * re-splits the stream by the length header and checks every message. One byte of
 * another message inside a frame, a half message, a lost or a doubled one fails the run.
 *
 *   tx_stress [--senders N] [--transports N] [--count TOTAL] [--sndbuf BYTES]
 *             [--max-body BYTES] [--seed N] [--slow-ms MS] [--stall-s S] [--nonblock] [--json]
 *             [--bypass-lib]
 *
 * --bypass-lib is the negative control: senders write() straight to the transports without
 * libkcm's lock, which interleaves under backpressure; the run must then fail.
 *
 * Exit status: 0 all intact, 1 corrupt/missing/duplicate/stall/error, 2 usage.
 */
#include <getopt.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "kcm.h"
#define PROG "tx_stress"
#include "progs.h"

#define MAX_SENDERS 64
#define MAX_TRANSPORTS 64

static struct {
	unsigned int senders, transports;
	uint64_t count;
	int sndbuf;		/* 0 = the kernel's default */
	uint32_t max_body;
	uint64_t seed;
	unsigned int slow_ms;	/* the readers start slow for this long */
	unsigned int stall_s;	/* no progress for this long = hang */
	bool nonblock, json, bypass;
} opt = {
	.senders = 4, .transports = 2, .count = 100000, .sndbuf = 4096, .max_body = 65536,
	.seed = 1, .slow_ms = 1000, .stall_s = 30,
};

struct sender {
	pthread_t th;
	unsigned int id;
	int k;
	uint64_t first, n;	/* global ids [first, first + n) are this sender's seq 0..n-1 */
	atomic_ullong sent, bytes;
	uint64_t small;		/* bodies too short to carry ids */
	uint64_t eagain;
	int err;
};

struct reader {
	pthread_t th;
	unsigned int id;
	int fd;
	atomic_ullong bytes;
	uint64_t msgs, small, corrupt, interleaved, desync, partial, reordered;
	uint32_t last_seq[MAX_SENDERS];
	int err;
};

static struct sender senders[MAX_SENDERS];
static struct reader readers[MAX_TRANSPORTS];
static _Atomic uint8_t *seen;	/* per global id: copies received */
static int transport_fd[MAX_TRANSPORTS];
static uint64_t t_start;

static uint64_t xorshift(uint64_t *s)
{
	uint64_t x = *s;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return *s = x;
}

/* Mostly small, some medium, a few up to max_body; a few too short for ids. */
static uint32_t pick_body(uint64_t *rng)
{
	uint64_t r = xorshift(rng), p = r % 100;
	uint32_t lo, hi;

	if (p < 2) {
		lo = 1;
		hi = PROG_BODY_IDS - 1;
	} else if (p < 72) {
		lo = PROG_BODY_IDS;
		hi = 512;
	} else if (p < 97) {
		lo = 513;
		hi = 8192;
	} else {
		lo = 8193;
		hi = opt.max_body;
	}
	if (hi > opt.max_body)
		hi = opt.max_body;
	if (lo > hi)
		lo = hi;
	return lo + (uint32_t)((r >> 8) % (hi - lo + 1));
}

static void *send_main(void *arg)
{
	struct sender *s = arg;
	uint64_t rng = opt.seed * 0x9e3779b97f4a7c15ull + s->id + 1;
	uint8_t *buf = malloc(4 + (size_t)opt.max_body);
	int flags = opt.nonblock ? MSG_DONTWAIT : 0;

	if (!buf) {
		s->err = ENOMEM;
		return NULL;
	}
	for (uint64_t seq = 0; seq < s->n; seq++) {
		uint32_t body = pick_body(&rng);
		size_t len = msg_build(buf, s->id, (uint32_t)seq, body);
		unsigned int spins = 0;

		if (opt.bypass) {
			int fd = transport_fd[(seq + s->id) % opt.transports];
			size_t done = 0;

			while (done < len) {
				ssize_t r = send(fd, buf + done, len - done, MSG_NOSIGNAL);

				if (r < 0 && errno == EINTR)
					continue;
				if (r <= 0) {
					s->err = r < 0 ? errno : EIO;
					goto out;
				}
				done += r;
			}
		}
		while (!opt.bypass) {
			ssize_t r = kcm_send(s->k, buf, len, flags);

			if (r == (ssize_t)len)
				break;
			if (r >= 0) {
				s->err = EIO; /* a short count: the API promises whole messages */
				goto out;
			}
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN || !opt.nonblock) {
				s->err = errno;
				goto out;
			}
			s->eagain++;
			if (++spins < 64)
				sched_yield();
			else
				usleep(50);
		}
		if (body < PROG_BODY_IDS)
			s->small++;
		atomic_fetch_add(&s->bytes, len);
		atomic_fetch_add(&s->sent, 1);
	}
out:
	free(buf);
	return NULL;
}

/* Check one frame; @len is the whole frame. */
static void frame_check(struct reader *rd, const uint8_t *f, size_t len)
{
	uint32_t conn, seq, ids[3];

	if (msg_check(f, len, &conn, &seq) == 0) {
		if (len - 4 < PROG_BODY_IDS) {
			rd->small++;
			rd->msgs++;
			return;
		}
		if (conn >= opt.senders || seq >= senders[conn].n) {
			rd->corrupt++;
			return;
		}
		if (rd->last_seq[conn] != UINT32_MAX && seq <= rd->last_seq[conn])
			rd->reordered++;
		rd->last_seq[conn] = seq;
		atomic_fetch_add(&seen[senders[conn].first + seq], 1);
		rd->msgs++;
		return;
	}
	rd->corrupt++;
	/* Plausible ids and size but wrong bytes: another message's bytes got in. */
	if (len - 4 >= PROG_BODY_IDS) {
		memcpy(ids, f + 4, sizeof(ids));
		if (ntohl(ids[0]) < opt.senders && ntohl(ids[2]) == len - 4)
			rd->interleaved++;
	}
}

static void *read_main(void *arg)
{
	struct reader *rd = arg;
	size_t cap = 2 * (4 + (size_t)opt.max_body) + (256 << 10), have = 0, off = 0;
	uint8_t *buf = malloc(cap);
	bool synced = true;

	if (!buf) {
		rd->err = ENOMEM;
		return NULL;
	}
	for (uint32_t i = 0; i < MAX_SENDERS; i++)
		rd->last_seq[i] = UINT32_MAX;
	for (;;) {
		bool slow = now_ns() - t_start < opt.slow_ms * 1000000ull;
		size_t want = slow ? 1024 : cap - have;
		ssize_t r;

		if (want > cap - have)
			want = cap - have;
		r = read(rd->fd, buf + have, want);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			rd->err = errno;
			break;
		}
		if (r == 0)
			break;
		atomic_fetch_add(&rd->bytes, r);
		if (!synced) /* no way to find the next frame: just drain */
			continue;
		have += r;
		while (have - off >= 4) {
			uint32_t body;

			memcpy(&body, buf + off, 4);
			body = ntohl(body);
			if (body > opt.max_body) {
				/* a header that cannot be: bytes of two messages mixed */
				rd->corrupt++;
				rd->interleaved++;
				rd->desync++;
				synced = false;
				break;
			}
			if (have - off < 4 + (size_t)body)
				break;
			frame_check(rd, buf + off, 4 + (size_t)body);
			off += 4 + (size_t)body;
		}
		if (!synced) {
			have = off = 0;
			continue;
		}
		memmove(buf, buf + off, have - off);
		have -= off;
		off = 0;
		if (slow)
			usleep(100);
	}
	if (synced && have) { /* EOF inside a message: half a message went out */
		rd->partial++;
		rd->corrupt++;
	}
	free(buf);
	return NULL;
}

static void usage(const char *prog, int status)
{
	fprintf(status ? stderr : stdout,
		"usage: %s [--senders N] [--transports N] [--count TOTAL] [--sndbuf BYTES]\n"
		"          [--max-body BYTES] [--seed N] [--slow-ms MS] [--stall-s S]\n"
		"          [--nonblock] [--json] [--bypass-lib]\n"
		"  --sndbuf 0 leaves the transports' send buffer at the kernel default\n",
		prog);
	exit(status);
}

static void parse_args(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "senders", required_argument, NULL, 's' },
		{ "transports", required_argument, NULL, 't' },
		{ "count", required_argument, NULL, 'c' },
		{ "sndbuf", required_argument, NULL, 'b' },
		{ "max-body", required_argument, NULL, 'm' },
		{ "seed", required_argument, NULL, 'r' },
		{ "slow-ms", required_argument, NULL, 'w' },
		{ "stall-s", required_argument, NULL, 'S' },
		{ "nonblock", no_argument, NULL, 'n' },
		{ "json", no_argument, NULL, 'j' },
		{ "bypass-lib", no_argument, NULL, 'B' },
		{ "help", no_argument, NULL, 'h' },
		{},
	};
	int c;

	while ((c = getopt_long(argc, argv, "s:t:c:b:m:r:w:S:njBh", lo, NULL)) != -1) {
		switch (c) {
		case 's':
			opt.senders = parse_num("--senders", optarg, 1, MAX_SENDERS);
			break;
		case 't':
			opt.transports = parse_num("--transports", optarg, 1, MAX_TRANSPORTS);
			break;
		case 'c':
			opt.count = parse_num("--count", optarg, 1, 1ull << 32);
			break;
		case 'b':
			opt.sndbuf = parse_num("--sndbuf", optarg, 0, INT_MAX / 2);
			break;
		case 'm':
			opt.max_body = parse_num("--max-body", optarg, 1, 16 << 20);
			break;
		case 'r':
			opt.seed = parse_num("--seed", optarg, 0, UINT64_MAX);
			break;
		case 'w':
			opt.slow_ms = parse_num("--slow-ms", optarg, 0, 600000);
			break;
		case 'S':
			opt.stall_s = parse_num("--stall-s", optarg, 1, 3600);
			break;
		case 'n':
			opt.nonblock = true;
			break;
		case 'j':
			opt.json = true;
			break;
		case 'B':
			opt.bypass = true;
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
	if (opt.count < opt.senders) {
		fprintf(stderr, "invalid --count %llu: expected at least one message per sender\n",
			(unsigned long long)opt.count);
		exit(2);
	}
}

struct totals {
	uint64_t sent, sent_bytes, sent_small, eagain;
	uint64_t received, recv_bytes, recv_small, corrupt, interleaved, desync, partial;
	uint64_t reordered, missing, duplicates;
	int send_err, recv_err;
};

static void sum_up(struct totals *t)
{
	memset(t, 0, sizeof(*t));
	for (unsigned int i = 0; i < opt.senders; i++) {
		t->sent += atomic_load(&senders[i].sent);
		t->sent_bytes += atomic_load(&senders[i].bytes);
		t->sent_small += senders[i].small;
		t->eagain += senders[i].eagain;
		if (senders[i].err && !t->send_err)
			t->send_err = senders[i].err;
	}
	for (unsigned int i = 0; i < opt.transports; i++) {
		struct reader *rd = &readers[i];

		t->received += rd->msgs;
		t->recv_bytes += atomic_load(&rd->bytes);
		t->recv_small += rd->small;
		t->corrupt += rd->corrupt;
		t->interleaved += rd->interleaved;
		t->desync += rd->desync;
		t->partial += rd->partial;
		t->reordered += rd->reordered;
		if (rd->err && !t->recv_err)
			t->recv_err = rd->err;
	}
	/* Messages with ids are checked one by one; the few without, by count. */
	for (uint64_t id = 0; id < opt.count; id++) {
		uint8_t n = atomic_load(&seen[id]);

		if (n > 1)
			t->duplicates += n - 1;
	}
	{
		uint64_t with_ids_sent = t->sent - t->sent_small, with_ids_seen = 0;

		for (uint64_t id = 0; id < opt.count; id++)
			with_ids_seen += atomic_load(&seen[id]) > 0;
		t->missing = with_ids_sent > with_ids_seen ? with_ids_sent - with_ids_seen : 0;
		if (t->sent_small > t->recv_small)
			t->missing += t->sent_small - t->recv_small;
		else
			t->duplicates += t->recv_small - t->sent_small;
	}
}

static void report(const struct totals *t, double secs, int eff_sndbuf, bool stalled)
{
	double rate = secs > 0 ? t->received / secs : 0;
	double mbs = secs > 0 ? t->recv_bytes / secs / 1e6 : 0;

	if (opt.json) {
		printf("{\"senders\":%u,\"transports\":%u,\"count\":%llu,\"sndbuf\":%d,"
		       "\"sndbuf_effective\":%d,\"nonblock\":%s,\"bypass_lib\":%s,\"seed\":%llu,"
		       "\"sent\":%llu,\"sent_bytes\":%llu,\"received\":%llu,\"bytes\":%llu,"
		       "\"corrupt\":%llu,\"interleaved\":%llu,\"desync\":%llu,\"partial\":%llu,"
		       "\"missing\":%llu,\"duplicates\":%llu,\"reordered\":%llu,\"eagain\":%llu,"
		       "\"send_error\":\"%s\",\"recv_error\":\"%s\",\"stalled\":%s,"
		       "\"elapsed_s\":%.3f,\"msgs_per_s\":%.0f,\"mb_per_s\":%.1f,\"per_transport\":[",
		       opt.senders, opt.transports, (unsigned long long)opt.count, opt.sndbuf,
		       eff_sndbuf, opt.nonblock ? "true" : "false", opt.bypass ? "true" : "false",
		       (unsigned long long)opt.seed,
		       (unsigned long long)t->sent, (unsigned long long)t->sent_bytes,
		       (unsigned long long)t->received, (unsigned long long)t->recv_bytes,
		       (unsigned long long)t->corrupt, (unsigned long long)t->interleaved,
		       (unsigned long long)t->desync, (unsigned long long)t->partial,
		       (unsigned long long)t->missing, (unsigned long long)t->duplicates,
		       (unsigned long long)t->reordered, (unsigned long long)t->eagain,
		       t->send_err ? strerror(t->send_err) : "",
		       t->recv_err ? strerror(t->recv_err) : "", stalled ? "true" : "false", secs,
		       rate, mbs);
		for (unsigned int i = 0; i < opt.transports; i++)
			printf("%s%llu", i ? "," : "", (unsigned long long)readers[i].msgs);
		printf("]}\n");
		return;
	}
	printf("tx_stress: %u senders, %u transports, SO_SNDBUF %d (effective %d), %s, seed %llu\n",
	       opt.senders, opt.transports, opt.sndbuf, eff_sndbuf,
	       opt.bypass ? "BYPASSING libkcm (negative control)" :
	       opt.nonblock ? "nonblocking (MSG_DONTWAIT, retry on EAGAIN)" : "blocking",
	       (unsigned long long)opt.seed);
	printf("sent %llu of %llu (%llu bytes), received %llu (%llu bytes)\n",
	       (unsigned long long)t->sent, (unsigned long long)opt.count,
	       (unsigned long long)t->sent_bytes, (unsigned long long)t->received,
	       (unsigned long long)t->recv_bytes);
	printf("corrupt %llu (interleaved %llu, desync %llu, partial %llu), missing %llu, "
	       "duplicates %llu, reordered %llu, EAGAIN retries %llu\n",
	       (unsigned long long)t->corrupt, (unsigned long long)t->interleaved,
	       (unsigned long long)t->desync, (unsigned long long)t->partial,
	       (unsigned long long)t->missing, (unsigned long long)t->duplicates,
	       (unsigned long long)t->reordered, (unsigned long long)t->eagain);
	printf("per transport:");
	for (unsigned int i = 0; i < opt.transports; i++)
		printf(" %llu", (unsigned long long)readers[i].msgs);
	printf("\nelapsed %.3f s, %.0f msgs/s, %.1f MB/s\n", secs, rate, mbs);
	if (t->send_err)
		printf("send error: %s\n", strerror(t->send_err));
	if (t->recv_err)
		printf("receive error: %s\n", strerror(t->recv_err));
	if (stalled)
		printf("stalled: no progress for %u s\n", opt.stall_s);
}

int main(int argc, char **argv)
{
	struct kcm_mux_opts mo = { .sz = sizeof(mo), .framing = KCM_FRAMING_THRIFT };
	int c[MAX_TRANSPORTS], s[MAX_TRANSPORTS], eff = 0;
	uint64_t per, last_progress = 0, last_change;
	struct kcm_mux *mux;
	struct totals t;
	bool stalled = false, ok;
	socklen_t sl = sizeof(eff);
	double secs;

	parse_args(argc, argv);
	setvbuf(stdout, NULL, _IOLBF, 0);
	signal(SIGPIPE, SIG_IGN);
	seen = calloc(opt.count, sizeof(*seen));
	if (!seen)
		die("failed to allocate %llu counters", (unsigned long long)opt.count);
	mo.max_msg_size = 4 + opt.max_body;
	mux = kcm_mux_create(&mo);
	if (!mux)
		die("failed to create the mux: %s", strerror(errno));
	for (unsigned int i = 0; i < opt.transports; i++) {
		tcp_pair(&c[i], &s[i]);
		if (opt.sndbuf &&
		    setsockopt(s[i], SOL_SOCKET, SO_SNDBUF, &opt.sndbuf, sizeof(opt.sndbuf)))
			die("failed to set SO_SNDBUF on transport %u: %s", i, strerror(errno));
		if (kcm_attach(mux, s[i]))
			die("failed to attach transport %u: %s", i, strerror(errno));
		transport_fd[i] = s[i];
	}
	getsockopt(s[0], SOL_SOCKET, SO_SNDBUF, &eff, &sl);
	per = opt.count / opt.senders;
	for (unsigned int i = 0; i < opt.senders; i++) {
		struct sender *sd = &senders[i];

		sd->id = i;
		sd->n = per + (i == 0 ? opt.count % opt.senders : 0);
		sd->first = i == 0 ? 0 : senders[i - 1].first + senders[i - 1].n;
		sd->k = i == 0 ? kcm_socket(mux) : kcm_clone(senders[0].k);
		if (sd->k < 0)
			die("failed to make KCM socket %u: %s", i, strerror(errno));
	}
	t_start = now_ns();
	for (unsigned int i = 0; i < opt.transports; i++) {
		readers[i].id = i;
		readers[i].fd = c[i];
		pthread_create(&readers[i].th, NULL, read_main, &readers[i]);
	}
	for (unsigned int i = 0; i < opt.senders; i++)
		pthread_create(&senders[i].th, NULL, send_main, &senders[i]);

	/* Wait for the senders, watching for a hang. */
	last_change = now_ns();
	for (;;) {
		uint64_t progress = 0, done = 0;

		for (unsigned int i = 0; i < opt.senders; i++) {
			progress += atomic_load(&senders[i].bytes);
			done += atomic_load(&senders[i].sent) == senders[i].n || senders[i].err;
		}
		for (unsigned int i = 0; i < opt.transports; i++)
			progress += atomic_load(&readers[i].bytes);
		if (done == opt.senders)
			break;
		if (progress != last_progress) {
			last_progress = progress;
			last_change = now_ns();
		} else if (now_ns() - last_change > opt.stall_s * 1000000000ull) {
			stalled = true;
			break;
		}
		usleep(10000);
	}
	if (stalled) {
		/* Threads are stuck in the library: report what we have and leave. */
		secs = (now_ns() - t_start) / 1e9;
		sum_up(&t);
		report(&t, secs, eff, true);
		fflush(stdout);
		_exit(1);
	}
	for (unsigned int i = 0; i < opt.senders; i++)
		pthread_join(senders[i].th, NULL);
	/* Every message is written: the peers see EOF after the last byte. */
	for (unsigned int i = 0; i < opt.transports; i++)
		shutdown(s[i], SHUT_WR);
	for (unsigned int i = 0; i < opt.transports; i++)
		pthread_join(readers[i].th, NULL);
	secs = (now_ns() - t_start) / 1e9;
	sum_up(&t);
	report(&t, secs, eff, false);
	ok = !t.corrupt && !t.missing && !t.duplicates && !t.send_err && !t.recv_err &&
	     t.sent == opt.count && t.received == t.sent;
	kcm_mux_destroy(mux);
	for (unsigned int i = 0; i < opt.transports; i++) {
		close(c[i]);
		close(s[i]);
	}
	free(seen);
	return ok ? 0 : 1;
}
