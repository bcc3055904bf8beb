// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * kcm_client: the traffic generator for kcm_server. Each connection i sends test
 * messages (progs.h) with connection id conn-base + i and seqs 0..count-1, pipelined,
 * one per write, or one byte per write; then, optionally, malformed input (a frame over
 * the maximum, half a message, raw bytes) and holds the connections open. With
 * --replies it reads back and verifies every message the server echoes.
 */
#include <ctype.h>
#include <getopt.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>

#define PROG "kcm_client"
#include "progs.h"

#define MAX_CONNS 1024
#define MAX_BODY (256u << 20)
#define CHUNK (256 * 1024)	/* pipeline: bytes per write */
#define DEFAULT_OVERSIZE (1u << 30)

enum mode { PIPELINE, TRICKLE, EACH };

struct opts {
	const char *connect;
	unsigned int conns;
	uint32_t count;
	uint32_t size_min, size_max;
	bool size_log;
	bool size_alternate;	/* even seqs MIN, odd seqs MAX */
	uint64_t seed;
	enum mode mode;
	bool replies;
	const char *raw;
	uint8_t *raw_bytes;
	size_t raw_len;
	bool oversize;
	uint32_t oversize_body;
	uint32_t stall;
	unsigned int hold_s;
	bool close_rst;		/* --close rst: SO_LINGER 0, the peer gets a RST */
	const char *start_file;
	unsigned int timeout_s;
	bool json;
	uint32_t conn_base;
};

struct conn {
	int fd;
	uint32_t id;
	pthread_t thread;
	uint64_t msgs, bytes;
	int err;		/* errno of a failed write */
	/* replies: bytes received and not yet parsed */
	uint8_t *rbuf;
	size_t rlen, rcap;
	bool eof;
};

struct replies {
	uint64_t msgs, bytes, corrupt, duplicate, foreign;
	uint8_t *seen;		/* bitmap over (conn index, seq) */
};

static struct opts o = {
	.conns = 1,
	.count = 100,
	.size_min = 64,
	.size_max = 64,
	.seed = 1,
	.mode = PIPELINE,
	.timeout_s = 30,
};
static struct conn conns[MAX_CONNS];

static void usage(FILE *f)
{
	fprintf(f,
"usage: " PROG " --connect ADDR:PORT [options]\n"
"Send test messages (u32be+4 framing, see tests/progs.h) to a KCM server.\n"
"\n"
"  --connect ADDR:PORT  server address (required)\n"
"  --conns N            connections, one thread each (default 1, max %d)\n"
"  --count M            messages per connection, seqs 0..M-1 (default 100)\n"
"  --size MIN[:MAX]     body bytes, random in range (default 64)\n"
"  --size-dist D        'uniform' (default), 'log' (every power of two equally likely)\n"
"                       or 'alternate' (MIN for even seqs, MAX for odd ones)\n"
"  --seed N             random seed for the sizes (default 1)\n"
"  --mode M             pipeline: many messages per write (default)\n"
"                       each: one write per message\n"
"                       trickle: one byte per write, TCP_NODELAY\n"
"  --conn-base K        connection ids start at K (default 0)\n"
"  --replies            read back and verify every message the server echoes\n"
"                       (bodies of 12 bytes or more: they carry the ids)\n"
"  --oversize[=BODY]    then send a frame header claiming BODY bytes (default 1 GiB)\n"
"  --stall N            then send only the first N bytes of one more message\n"
"  --raw HEX            then send these bytes as they are, e.g. ffffffff00\n"
"  --start-file PATH    connect, then wait for PATH (kcm_server --attached-file)\n"
"                       before sending\n"
"  --hold SEC           keep the connections open SEC seconds after sending\n"
"  --close fin|rst      then close normally (FIN, default) or abortively (RST)\n"
"  --timeout SEC        give up waiting for replies after SEC seconds (default 30)\n"
"  --json               print a JSON summary on stdout\n"
"  --help               show this help\n"
"\n"
"Exit status: 0 all sent (and all replies verified), 1 failure, 2 usage error.\n",
		MAX_CONNS);
}

static void parse_size(const char *s)
{
	char buf[64], *colon;

	if (strlen(s) >= sizeof(buf))
		usage_error("invalid --size '%s': expected MIN[:MAX]", s);
	strcpy(buf, s);
	colon = strchr(buf, ':');
	if (colon)
		*colon = '\0';
	o.size_min = parse_num("--size", buf, 0, MAX_BODY);
	o.size_max = colon ? parse_num("--size", colon + 1, 0, MAX_BODY) : o.size_min;
	if (o.size_max < o.size_min)
		usage_error("invalid --size '%s': MAX is below MIN", s);
}

static void parse_raw(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n % 2)
		usage_error("invalid --raw '%s': expected an even number of hex digits", s);
	o.raw_bytes = malloc(n / 2);
	if (!o.raw_bytes)
		die(PROG ": out of memory");
	for (size_t i = 0; i < n / 2; i++) {
		unsigned int b;

		if (!isxdigit((unsigned char)s[2 * i]) || !isxdigit((unsigned char)s[2 * i + 1]) ||
		    sscanf(s + 2 * i, "%2x", &b) != 1)
			usage_error("invalid --raw '%s': expected hex digits", s);
		o.raw_bytes[i] = b;
	}
	o.raw_len = n / 2;
}

static void parse_args(int argc, char **argv)
{
	enum { O_CONNECT = 256, O_CONNS, O_COUNT, O_SIZE, O_SIZE_DIST, O_SEED, O_MODE,
	       O_CONN_BASE, O_REPLIES, O_OVERSIZE, O_STALL, O_RAW, O_HOLD, O_CLOSE, O_START, O_TIMEOUT,
	       O_JSON, O_HELP };
	static const struct option lo[] = {
		{ "connect", required_argument, NULL, O_CONNECT },
		{ "conns", required_argument, NULL, O_CONNS },
		{ "count", required_argument, NULL, O_COUNT },
		{ "size", required_argument, NULL, O_SIZE },
		{ "size-dist", required_argument, NULL, O_SIZE_DIST },
		{ "seed", required_argument, NULL, O_SEED },
		{ "mode", required_argument, NULL, O_MODE },
		{ "conn-base", required_argument, NULL, O_CONN_BASE },
		{ "replies", no_argument, NULL, O_REPLIES },
		{ "oversize", optional_argument, NULL, O_OVERSIZE },
		{ "stall", required_argument, NULL, O_STALL },
		{ "raw", required_argument, NULL, O_RAW },
		{ "hold", required_argument, NULL, O_HOLD },
		{ "close", required_argument, NULL, O_CLOSE },
		{ "start-file", required_argument, NULL, O_START },
		{ "timeout", required_argument, NULL, O_TIMEOUT },
		{ "json", no_argument, NULL, O_JSON },
		{ "help", no_argument, NULL, O_HELP },
		{ 0 }
	};
	int c;

	opterr = 0;
	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (c) {
		case O_CONNECT:
			o.connect = optarg;
			break;
		case O_CONNS:
			o.conns = parse_num("--conns", optarg, 1, MAX_CONNS);
			break;
		case O_COUNT:
			o.count = parse_num("--count", optarg, 0, 1u << 28);
			break;
		case O_SIZE:
			parse_size(optarg);
			break;
		case O_SIZE_DIST:
			if (strcmp(optarg, "uniform") && strcmp(optarg, "log") &&
			    strcmp(optarg, "alternate"))
				usage_error("invalid --size-dist '%s': expected uniform, log or "
					    "alternate", optarg);
			o.size_log = !strcmp(optarg, "log");
			o.size_alternate = !strcmp(optarg, "alternate");
			break;
		case O_SEED:
			o.seed = parse_num("--seed", optarg, 0, UINT64_MAX);
			break;
		case O_MODE:
			if (!strcmp(optarg, "pipeline"))
				o.mode = PIPELINE;
			else if (!strcmp(optarg, "trickle"))
				o.mode = TRICKLE;
			else if (!strcmp(optarg, "each"))
				o.mode = EACH;
			else
				usage_error("invalid --mode '%s': expected pipeline, each or trickle",
					    optarg);
			break;
		case O_CONN_BASE:
			o.conn_base = parse_num("--conn-base", optarg, 0, UINT32_MAX - MAX_CONNS);
			break;
		case O_REPLIES:
			o.replies = true;
			break;
		case O_OVERSIZE:
			o.oversize = true;
			o.oversize_body = optarg ? parse_num("--oversize", optarg, 1, UINT32_MAX) :
						   DEFAULT_OVERSIZE;
			break;
		case O_STALL:
			o.stall = parse_num("--stall", optarg, 1, 4 + MAX_BODY - 1);
			break;
		case O_RAW:
			parse_raw(optarg);
			break;
		case O_CLOSE:
			if (strcmp(optarg, "fin") && strcmp(optarg, "rst"))
				usage_error("--close takes fin or rst, not '%s'", optarg);
			o.close_rst = !strcmp(optarg, "rst");
			break;
		case O_HOLD:
			o.hold_s = parse_num("--hold", optarg, 0, 86400);
			break;
		case O_START:
			o.start_file = optarg;
			break;
		case O_TIMEOUT:
			o.timeout_s = parse_num("--timeout", optarg, 1, 86400);
			break;
		case O_JSON:
			o.json = true;
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
	if (!o.connect)
		usage_error("--connect ADDR:PORT is required");
	if (o.stall && o.stall >= 4 + (uint64_t)o.size_max)
		usage_error("--stall %u is not less than a whole message (4 + %u bytes)", o.stall,
			    o.size_max);
	if (o.replies && (o.stall || o.oversize || o.raw_bytes))
		usage_error("--replies cannot be combined with malformed input");
	/* a reply is told apart by the connection and sequence its body carries */
	if (o.replies && o.size_min < PROG_BODY_IDS)
		usage_error("--replies needs bodies of at least %d bytes (they carry the "
			    "connection and sequence number), not --size %u", PROG_BODY_IDS,
			    o.size_min);
}

/* Bounded wait for a file another process creates (no sleep-and-hope). */
static int wait_file(const char *path)
{
	uint64_t deadline = now_ns() + o.timeout_s * 1000000000ull;
	struct timespec ts = { 0, 10 * 1000000 };

	while (access(path, F_OK)) {
		if (now_ns() >= deadline)
			return -ETIMEDOUT;
		nanosleep(&ts, NULL);
	}
	return 0;
}

static uint64_t rng_next(uint64_t *s)
{
	/* xorshift64*: sizes reproducible from --seed */
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 0x2545f4914f6cdd1dull;
}

static uint32_t pick_size(uint64_t *rng, uint32_t seq)
{
	uint64_t span = (uint64_t)o.size_max - o.size_min + 1;

	if (o.size_min == o.size_max)
		return o.size_min;
	if (o.size_alternate)
		return seq & 1 ? o.size_max : o.size_min;
	if (o.size_log) {
		/* a bit length uniformly, then a size of that length: every magnitude shows */
		unsigned int lo = 64 - __builtin_clzll((uint64_t)o.size_min + 1);
		unsigned int hi = 64 - __builtin_clzll((uint64_t)o.size_max + 1);
		unsigned int b = lo + rng_next(rng) % (hi - lo + 1);
		uint64_t sz = (1ull << (b - 1)) + rng_next(rng) % (1ull << (b - 1)) - 1;

		return sz < o.size_min ? o.size_min : sz > o.size_max ? o.size_max : sz;
	}
	return o.size_min + rng_next(rng) % span;
}

static int send_messages(struct conn *c)
{
	size_t cap = CHUNK + 4 + (size_t)o.size_max, fill = 0;
	uint64_t rng = o.seed * 0x9e3779b97f4a7c15ull + c->id + 1;
	uint8_t *buf = malloc(cap);
	int one = 1, err = 0;

	if (!buf)
		return -ENOMEM;
	if (o.mode == TRICKLE && setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)))
		err = -errno;
	for (uint32_t seq = 0; !err && seq < o.count; seq++) {
		uint32_t body = pick_size(&rng, seq);
		size_t len;

		if (o.mode == PIPELINE && fill && fill + 4 + body > CHUNK) {
			err = write_all_err(c->fd, buf, fill);
			fill = 0;
		}
		len = msg_build(buf + fill, c->id, seq, body);
		if (o.mode == PIPELINE) {
			fill += len;
		} else if (o.mode == EACH) {
			err = write_all_err(c->fd, buf, len);
		} else {
			for (size_t i = 0; !err && i < len; i++)
				err = write_all_err(c->fd, buf + i, 1);
		}
		if (!err) {
			c->msgs++;
			c->bytes += len;
		}
	}
	if (!err && fill)
		err = write_all_err(c->fd, buf, fill);
	if (!err && o.stall) {
		/* half of one more message (seq = count): the server must time it out */
		msg_build(buf, c->id, o.count, o.size_max);
		err = write_all_err(c->fd, buf, o.stall);
	}
	if (!err && o.oversize) {
		uint32_t be = htonl(o.oversize_body);

		memcpy(buf, &be, 4);
		for (int i = 0; i < 16; i++)
			buf[4 + i] = pattern_byte(c->id, o.count, i);
		err = write_all_err(c->fd, buf, 20);
	}
	if (!err && o.raw_bytes)
		err = write_all_err(c->fd, o.raw_bytes, o.raw_len);
	free(buf);
	return err;
}

static void *sender_main(void *arg)
{
	struct conn *c = arg;

	c->err = -send_messages(c);
	return NULL;
}

/* Parse the whole replies in @c's buffer. */
static int parse_replies(struct conn *c, struct replies *rp)
{
	size_t off = 0;

	while (c->rlen - off >= 4) {
		uint32_t body, id, seq;
		size_t len;

		memcpy(&body, c->rbuf + off, 4);
		body = ntohl(body);
		if (body > MAX_BODY)
			return -EBADMSG; /* the stream is lost: nothing after this can be trusted */
		len = 4 + (size_t)body;
		if (c->rlen - off < len) {
			if (len > c->rcap) {
				uint8_t *p = realloc(c->rbuf, len);

				if (!p)
					return -ENOMEM;
				c->rbuf = p;
				c->rcap = len;
			}
			break;
		}
		rp->msgs++;
		rp->bytes += len;
		if (msg_check(c->rbuf + off, len, &id, &seq)) {
			rp->corrupt++;
		} else if (id == UINT32_MAX || id < o.conn_base || id - o.conn_base >= o.conns ||
			   seq >= o.count) {
			rp->foreign++;
		} else {
			uint64_t bit = (uint64_t)(id - o.conn_base) * o.count + seq;

			if (rp->seen[bit / 8] & (1u << (bit % 8)))
				rp->duplicate++;
			rp->seen[bit / 8] |= 1u << (bit % 8);
		}
		off += len;
	}
	memmove(c->rbuf, c->rbuf + off, c->rlen - off);
	c->rlen -= off;
	return 0;
}

/* Replies come back on any connection (the server sends on any transport). */
static int read_replies(struct replies *rp)
{
	uint64_t want = (uint64_t)o.conns * o.count;
	uint64_t deadline = now_ns() + o.timeout_s * 1000000000ull;
	struct pollfd p[MAX_CONNS];

	rp->seen = calloc(want / 8 + 1, 1);
	if (!rp->seen)
		return -ENOMEM;
	for (unsigned int i = 0; i < o.conns; i++) {
		conns[i].rcap = 64 * 1024;
		conns[i].rbuf = malloc(conns[i].rcap);
		if (!conns[i].rbuf)
			return -ENOMEM;
	}
	while (rp->msgs < want) {
		uint64_t now = now_ns();
		unsigned int open = 0;
		int r;

		if (now >= deadline) {
			fprintf(stderr, PROG ": timed out waiting for replies: %llu of %llu\n",
				(unsigned long long)rp->msgs, (unsigned long long)want);
			return -ETIMEDOUT;
		}
		for (unsigned int i = 0; i < o.conns; i++) {
			p[i] = (struct pollfd){ conns[i].eof ? -1 : conns[i].fd, POLLIN, 0 };
			open += !conns[i].eof;
		}
		if (!open) {
			fprintf(stderr, PROG ": server closed every connection after %llu of %llu "
				"replies\n", (unsigned long long)rp->msgs, (unsigned long long)want);
			return -ECONNRESET;
		}
		r = poll(p, o.conns, (deadline - now) / 1000000 + 1);
		if (r < 0 && errno != EINTR)
			return -errno;
		for (unsigned int i = 0; r > 0 && i < o.conns; i++) {
			struct conn *c = &conns[i];
			ssize_t n;
			int err;

			if (!(p[i].revents & (POLLIN | POLLERR | POLLHUP)))
				continue;
			n = read(c->fd, c->rbuf + c->rlen, c->rcap - c->rlen);
			if (n < 0 && (errno == EINTR || errno == EAGAIN))
				continue;
			if (n <= 0) {
				c->eof = true;
				continue;
			}
			c->rlen += n;
			err = parse_replies(c, rp);
			if (err) {
				fprintf(stderr, PROG ": failed to parse replies on connection %u: %s\n",
					c->id, strerror(-err));
				return err;
			}
		}
	}
	return 0;
}

/*
 * --hold with --replies: keep reading (and dropping) what still arrives, e.g. replies a
 * KCM server sent on this connection for another one's requests. A peer that stops
 * reading would fill its buffer and make the server's side retransmit.
 */
static void hold_draining(struct conn *conns)
{
	uint64_t end = now_ns() + o.hold_s * 1000000000ull;
	struct pollfd p[MAX_CONNS];
	static char sink[65536];

	for (unsigned int i = 0; i < o.conns; i++)
		p[i] = (struct pollfd){ .fd = conns[i].fd, .events = POLLIN };
	for (uint64_t now = now_ns(); now < end; now = now_ns()) {
		if (poll(p, o.conns, (int)((end - now) / 1000000) + 1) <= 0)
			continue;
		for (unsigned int i = 0; i < o.conns; i++)
			if (p[i].revents && read(p[i].fd, sink, sizeof(sink)) <= 0)
				p[i].fd = -1; /* EOF or error: stop watching it */
	}
}

int main(int argc, char **argv)
{
	struct replies rp = { 0 };
	uint64_t msgs = 0, bytes = 0, want, missing = 0;
	unsigned int started = 0;
	int err = 0, reply_err = 0;
	bool ok;

	parse_args(argc, argv);
	signal(SIGPIPE, SIG_IGN);
	for (unsigned int i = 0; i < o.conns; i++) {
		conns[i].fd = tcp_connect(o.connect);
		conns[i].id = o.conn_base + i;
		if (o.close_rst) {
			struct linger rst = { .l_onoff = 1, .l_linger = 0 };

			/* at once, so that a kill at any time resets the connection too (a
			 * test that kills the client while it still sends must see a RST) */
			if (setsockopt(conns[i].fd, SOL_SOCKET, SO_LINGER, &rst, sizeof(rst)))
				die(PROG ": SO_LINGER on connection %u: %s", conns[i].id,
				    strerror(errno));
		}
	}
	if (o.start_file && wait_file(o.start_file))
		die(PROG ": timed out after %u s waiting for %s", o.timeout_s, o.start_file);
	for (; started < o.conns; started++) {
		err = pthread_create(&conns[started].thread, NULL, sender_main, &conns[started]);
		if (err) {
			fprintf(stderr, PROG ": failed to start sender %u: %s\n", started,
				strerror(err));
			break;
		}
	}
	if (!err && o.replies)
		reply_err = read_replies(&rp);
	for (unsigned int i = 0; i < started; i++) {
		pthread_join(conns[i].thread, NULL);
		msgs += conns[i].msgs;
		bytes += conns[i].bytes;
		if (conns[i].err) {
			fprintf(stderr, PROG ": failed to send on connection %u: %s\n",
				conns[i].id, strerror(conns[i].err));
			err = err ? err : conns[i].err;
		}
	}
	want = (uint64_t)o.conns * o.count;
	if (o.replies) {
		uint64_t unique = rp.msgs - rp.corrupt - rp.duplicate - rp.foreign;

		missing = want > unique ? want - unique : 0;
	}
	ok = !err && !reply_err && msgs == want &&
	     (!o.replies || (!rp.corrupt && !rp.duplicate && !rp.foreign && !missing));
	if (o.json) {
		printf("{\"conns\":%u,\"messages\":%llu,\"bytes\":%llu", o.conns,
		       (unsigned long long)msgs, (unsigned long long)bytes);
		if (o.replies)
			printf(",\"replies\":%llu,\"reply_bytes\":%llu,\"corrupt\":%llu,"
			       "\"duplicate\":%llu,\"foreign\":%llu,\"missing\":%llu",
			       (unsigned long long)rp.msgs, (unsigned long long)rp.bytes,
			       (unsigned long long)rp.corrupt, (unsigned long long)rp.duplicate,
			       (unsigned long long)rp.foreign, (unsigned long long)missing);
		printf(",\"ok\":%s}\n", ok ? "true" : "false");
	} else {
		printf("sent: %llu messages, %llu bytes on %u connections\n",
		       (unsigned long long)msgs, (unsigned long long)bytes, o.conns);
		if (o.replies)
			printf("replies: %llu messages, %llu corrupt, %llu duplicate, %llu foreign, "
			       "%llu missing\n", (unsigned long long)rp.msgs,
			       (unsigned long long)rp.corrupt, (unsigned long long)rp.duplicate,
			       (unsigned long long)rp.foreign, (unsigned long long)missing);
	}
	fflush(stdout);
	if (o.hold_s && o.replies) {
		hold_draining(conns);
	} else if (o.hold_s) {
		/* malformed input: let the server see it, with the connection still open */
		struct timespec ts = { o.hold_s, 0 };

		while (nanosleep(&ts, &ts) && errno == EINTR)
			;
	}
	for (unsigned int i = 0; i < o.conns; i++) {
		close(conns[i].fd);
		free(conns[i].rbuf);
	}
	free(rp.seen);
	free(o.raw_bytes);
	return ok ? 0 : 1;
}
