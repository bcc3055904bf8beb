// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * The receive paths compared: kcm-bpf through libkcm as a user would call it, the kernel's
 * own AF_KCM (afkcm, where the kernel has it), a userspace demux (one epoll reader cuts frames and hands them to workers in batches: copied into
 * a staging buffer per worker up to 4 KiB, as iovecs above), and the
 * direct ceiling (each worker reads its own connections, with no balancing).
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stddef.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <linux/kcm.h>
#include <linux/sock_diag.h>

#include "bench.h"
#include "kcm.h"

#define RECV_VEC 1024
#define READ_CHUNK (1u << 20)
#define PAIR_BUF (4 << 20)

#ifndef AF_KCM
#define AF_KCM 41
#endif

static struct kcm_mux *mux;
static pthread_t reader;
static int pair_in[MAX_WORKERS] = { -1 }; /* demux: the reader writes here */

static uint64_t sock_mem(int fd)
{
	uint32_t m[SK_MEMINFO_VARS] = { 0 };
	socklen_t len = sizeof(m);

	if (fd < 0 || getsockopt(fd, SOL_SOCKET, SO_MEMINFO, m, &len))
		return 0;
	return (uint64_t)m[SK_MEMINFO_RMEM_ALLOC] + m[SK_MEMINFO_WMEM_QUEUED];
}

uint64_t rx_kernel_mem(void)
{
	uint64_t sum = 0;

	for (unsigned int i = 0; i < B.cfg.conns; i++)
		sum += sock_mem(B.srv[i]);
	for (unsigned int i = 0; i < B.cfg.workers; i++) {
		sum += sock_mem(B.w[i].fd);
		if (B.cfg.variant == V_DEMUX)
			sum += sock_mem(pair_in[i]);
	}
	return sum;
}

/* ---- kcm-bpf ---- */

static int kcm_reply(struct worker *w, const uint8_t *msg, size_t len)
{
	return kcm_send(w->fd, msg, len, 0) == (ssize_t)len ? 0 : -errno;
}

/* Receive batches with @recv_batch and deliver each message, answering with @reply. */
static void *mmsg_worker(struct worker *w, int (*recv_batch)(int, struct mmsghdr *, unsigned int),
			 int (*reply)(struct worker *, const uint8_t *, size_t), const char *what)
{
	struct mmsghdr vec[RECV_VEC];
	struct iovec iov[RECV_VEC];
	size_t cap = B.cfg.size;
	uint8_t *bufs = malloc(cap * RECV_VEC);

	for (int i = 0; bufs && i < RECV_VEC; i++) {
		iov[i] = (struct iovec){ bufs + i * cap, cap };
		vec[i] = (struct mmsghdr){ .msg_hdr = { .msg_iov = &iov[i], .msg_iovlen = 1 } };
	}
	while (bufs && !atomic_load(&B.stop)) {
		int n;

		maybe_stall(w);
		n = recv_batch(w->fd, vec, RECV_VEC);
		if (n < 0) {
			struct pollfd p = { .fd = w->fd, .events = POLLIN };

			if (errno != EAGAIN && errno != EINTR) {
				fprintf(stderr, "rx_bench: failed to receive on %s %u: %s\n", what,
					w->id, strerror(errno));
				break;
			}
			poll(&p, 1, 10);
			continue;
		}
		for (int i = 0; i < n; i++)
			deliver(w, iov[i].iov_base, vec[i].msg_len, reply);
	}
	free(bufs);
	return NULL;
}

static int kcm_recv_batch(int fd, struct mmsghdr *vec, unsigned int n)
{
	return kcm_recvmmsg(fd, vec, n, MSG_DONTWAIT);
}

static void *kcm_worker(void *arg)
{
	return mmsg_worker(arg, kcm_recv_batch, kcm_reply, "KCM socket");
}

static int kcm_start(void)
{
	struct kcm_mux_opts o = {
		.sz = sizeof(o),
		.framing = KCM_FRAMING_THRIFT,
		.max_msg_size = B.cfg.size > 65536 ? B.cfg.size : 65536,
		.batch = B.cfg.batch,
		.member_rcvbuf = B.cfg.member_rcvbuf,
		.pin_name = B.cfg.pin,
	};

	if (B.cfg.variant == V_KCM_FRAME || B.cfg.variant == V_KCM_PROG)
		o.parser = B.cfg.parser;
	if (B.cfg.variant == V_KCM_FRAME)
		o.splitter = "thrift";
	mux = kcm_mux_create(&o);
	if (!mux) {
		fprintf(stderr, "rx_bench: kcm_mux_create: %s\n", kcm_last_error());
		return -1;
	}
	for (unsigned int i = 0; i < B.cfg.workers; i++) {
		B.w[i].fd = i ? kcm_clone(B.w[0].fd) : kcm_socket(mux);
		if (B.w[i].fd < 0 || pthread_create(&B.w[i].th, NULL, kcm_worker, &B.w[i]))
			return -1;
	}
	for (unsigned int i = 0; i < B.cfg.conns; i++)
		if (kcm_attach(mux, B.srv[i])) {
			fprintf(stderr, "rx_bench: kcm_attach: %s\n", kcm_last_error());
			return -1;
		}
	return 0;
}

/* ---- AF_KCM: the kernel's own multiplexor ---- */

/*
 * Where strparser keeps the message's offset, from the kernel's sk_buff: AF_KCM hands
 * the parser a clone of the whole segment, and a message that does not start it starts
 * at strp_msg(skb)->offset. kcm.rst's load_word(skb, 0) reads the segment's first header
 * again (docs/parser-sdk.md, "the offset trap"): on 6.1, with this bench's fixed-size
 * messages, the first 32 KiB per connection came through and then AF_KCM cut 4-byte
 * garbage. __sk_buff does not expose the offset (its cb[] ends 4 bytes short of it), so
 * the parser reads it from the sk_buff with bpf_probe_read_kernel() (root), at offsets
 * taken from the kernel's BTF.
 */
static int btf_member_off(const struct btf *btf, const char *type, const char *member)
{
	int id = btf__find_by_name_kind(btf, type, BTF_KIND_STRUCT);
	const struct btf_type *t = id > 0 ? btf__type_by_id(btf, id) : NULL;
	const struct btf_member *m = t ? btf_members(t) : NULL;

	for (int i = 0; t && i < btf_vlen(t); i++, m++)
		if (!strcmp(btf__name_by_offset(btf, m->name_off), member))
			return btf_member_bit_offset(t, i) / 8;
	return -1;
}

/* Byte offset of strp_msg(skb)->offset in struct sk_buff, or -1. */
static int afkcm_strp_offset(void)
{
	struct btf *btf = btf__load_vmlinux_btf();
	int cb, strp, msg, off, at = -1;

	if (!btf)
		return -1;
	cb = btf_member_off(btf, "sk_buff", "cb");
	strp = btf_member_off(btf, "sk_skb_cb", "strp"); /* 5.16 on */
	if (strp < 0)
		strp = btf_member_off(btf, "qdisc_skb_cb", "data"); /* before */
	msg = btf_member_off(btf, "_strp_msg", "strp");
	off = btf_member_off(btf, "strp_msg", "offset");
	if (cb >= 0 && strp >= 0 && msg >= 0 && off >= 0)
		at = cb + strp + msg + off;
	btf__free(btf);
	return at;
}

/* The parser: the 4-byte big-endian length at the message's start, plus 4. */
static int afkcm_parser(void)
{
	int at = afkcm_strp_offset();
	struct bpf_insn prog[] = {
		/* r6 = ctx, as LD_IND wants it */
		{ .code = BPF_ALU64 | BPF_MOV | BPF_X, .dst_reg = BPF_REG_6, .src_reg = BPF_REG_1 },
		/* bpf_probe_read_kernel(fp - 8, 4, (void *)skb + at): strparser's offset */
		{ .code = BPF_ALU64 | BPF_MOV | BPF_X, .dst_reg = BPF_REG_3, .src_reg = BPF_REG_1 },
		{ .code = BPF_ALU64 | BPF_ADD | BPF_K, .dst_reg = BPF_REG_3, .imm = at },
		{ .code = BPF_ALU64 | BPF_MOV | BPF_X, .dst_reg = BPF_REG_1, .src_reg = BPF_REG_10 },
		{ .code = BPF_ALU64 | BPF_ADD | BPF_K, .dst_reg = BPF_REG_1, .imm = -8 },
		{ .code = BPF_ALU64 | BPF_MOV | BPF_K, .dst_reg = BPF_REG_2, .imm = 4 },
		{ .code = BPF_JMP | BPF_CALL, .imm = BPF_FUNC_probe_read_kernel },
		{ .code = BPF_LDX | BPF_MEM | BPF_W, .dst_reg = BPF_REG_7, .src_reg = BPF_REG_10,
		  .off = -8 },
		/* r0 = ntohl(*(u32 *)(data + r7)); not all there yet: the program returns 0,
		 * "need more" */
		{ .code = BPF_LD | BPF_IND | BPF_W, .src_reg = BPF_REG_7 },
		{ .code = BPF_ALU64 | BPF_ADD | BPF_K, .dst_reg = BPF_REG_0, .imm = 4 },
		{ .code = BPF_JMP | BPF_EXIT },
	};
	char log[4096] = "";
	LIBBPF_OPTS(bpf_prog_load_opts, o, .log_buf = log, .log_size = sizeof(log));
	int fd;

	if (at < 0) {
		fprintf(stderr, "rx_bench: failed to find strparser's offset in the kernel's BTF "
			"(/sys/kernel/btf/vmlinux)\n");
		errno = ENOENT;
		return -1;
	}
	fd = bpf_prog_load(BPF_PROG_TYPE_SOCKET_FILTER, "afkcm_parser", "GPL", prog,
			   sizeof(prog) / sizeof(prog[0]), &o);
	if (fd < 0) {
		int err = errno;

		fprintf(stderr, "rx_bench: failed to load the AF_KCM parser program: %s\n%s",
			strerror(err), log);
		errno = err;
	}
	return fd;
}

static int afkcm_reply(struct worker *w, const uint8_t *msg, size_t len)
{
	return send(w->fd, msg, len, 0) == (ssize_t)len ? 0 : -errno; /* any transport */
}

/* One message per datagram: recvmmsg() takes what is queued, up to RECV_VEC. */
static int afkcm_recv_batch(int fd, struct mmsghdr *vec, unsigned int n)
{
	return recvmmsg(fd, vec, n, MSG_DONTWAIT, NULL);
}

static void *afkcm_worker(void *arg)
{
	return mmsg_worker(arg, afkcm_recv_batch, afkcm_reply, "AF_KCM socket");
}

static int afkcm_start(void)
{
	int prog, err;

	B.w[0].fd = socket(AF_KCM, SOCK_DGRAM | SOCK_CLOEXEC, KCMPROTO_CONNECTED);
	if (B.w[0].fd < 0) {
		err = errno;
		fprintf(stderr, "rx_bench: failed to create an AF_KCM socket: %s%s\n", strerror(err),
			err == EAFNOSUPPORT ? " (no AF_KCM in this kernel: modprobe kcm, or a "
			"kernel built with CONFIG_AF_KCM)" : "");
		errno = err;
		return -1;
	}
	for (unsigned int i = 1; i < B.cfg.workers; i++) {
		struct kcm_clone c = { .fd = -1 };

		if (ioctl(B.w[0].fd, SIOCKCMCLONE, &c)) {
			err = errno;
			fprintf(stderr, "rx_bench: failed to clone AF_KCM socket %u: %s\n", i,
				strerror(err));
			errno = err;
			return -1;
		}
		B.w[i].fd = c.fd;
	}
	for (unsigned int i = 0; i < B.cfg.workers; i++)
		if (pthread_create(&B.w[i].th, NULL, afkcm_worker, &B.w[i]))
			return -1;
	prog = afkcm_parser();
	if (prog < 0)
		return -1;
	for (unsigned int i = 0; i < B.cfg.conns; i++) {
		struct kcm_attach a = { .fd = B.srv[i], .bpf_fd = prog };

		if (ioctl(B.w[0].fd, SIOCKCMATTACH, &a)) {
			err = errno;
			fprintf(stderr, "rx_bench: failed to attach connection %u to AF_KCM: %s\n", i,
				strerror(err));
			close(prog);
			errno = err;
			return -1;
		}
	}
	close(prog); /* each attached transport holds the program */
	return 0;
}

/* ---- userspace demux ---- */

static int sock_reply(struct worker *w, const uint8_t *msg, size_t len)
{
	uint32_t conn;
	int err;

	(void)w;
	memcpy(&conn, msg + 4, 4);
	pthread_mutex_lock(&B.srv_lock[conn]);
	err = write_full(B.srv[conn], msg, len);
	pthread_mutex_unlock(&B.srv_lock[conn]);
	return err;
}

/* A worker re-splits the stream of whole messages the reader handed it. */
static void *demux_worker(void *arg)
{
	struct worker *w = arg;
	uint8_t *buf = malloc(READ_CHUNK + B.cfg.size);
	size_t have = 0;

	while (buf && !atomic_load(&B.stop)) {
		ssize_t r;

		maybe_stall(w);
		r = read(w->fd, buf + have, READ_CHUNK + B.cfg.size - have);
		if (r < 0 && errno == EAGAIN) {
			struct pollfd p = { .fd = w->fd, .events = POLLIN };

			poll(&p, 1, 10);
			continue;
		}
		if (r <= 0)
			break;
		have += r;
		cut_frames(w, buf, &have, sock_reply);
	}
	free(buf);
	return NULL;
}

struct conn_buf {
	uint8_t *buf;
	size_t have;
};

/* What a worker's pair would not take yet: the reader gives that worker nothing more. */
struct backlog {
	uint8_t *buf;
	size_t len, cap;
};

static struct backlog backlog[MAX_WORKERS];

static int backlog_add(struct backlog *b, const struct iovec *iov, size_t n, size_t skip)
{
	for (size_t i = 0; i < n; i++) {
		size_t l = iov[i].iov_len;
		const uint8_t *p = iov[i].iov_base;

		if (skip >= l) {
			skip -= l;
			continue;
		}
		p += skip;
		l -= skip;
		skip = 0;
		if (b->len + l > b->cap) {
			size_t cap = (b->len + l) * 2;
			uint8_t *nb = realloc(b->buf, cap);

			if (!nb)
				return -ENOMEM;
			b->buf = nb;
			b->cap = cap;
		}
		memcpy(b->buf + b->len, p, l);
		b->len += l;
	}
	return 0;
}

/* Hand @n frames to worker @w without blocking; what does not fit waits in its backlog. */
static void demux_flush(unsigned int w, struct iovec *iov, size_t n)
{
	struct backlog *b = &backlog[w];
	ssize_t r;

	if (b->len) {
		r = write(pair_in[w], b->buf, b->len);
		if (r > 0) {
			memmove(b->buf, b->buf + r, b->len - r);
			b->len -= r;
		}
	}
	if (!n)
		return;
	if (b->len) {
		backlog_add(b, iov, n, 0);
		return;
	}
	r = writev(pair_in[w], iov, n);
	backlog_add(b, iov, n, r > 0 ? (size_t)r : 0);
}

/* The next worker whose pair took everything so far; wait when none has. */
static unsigned int demux_pick(unsigned int *next)
{
	unsigned int nw = B.cfg.workers;

	for (;;) {
		struct pollfd p[MAX_WORKERS];

		for (unsigned int k = 0; k < nw; k++) {
			unsigned int w = (*next + k) % nw;

			if (!backlog[w].len) {
				*next = (w + 1) % nw;
				return w;
			}
		}
		for (unsigned int w = 0; w < nw; w++)
			p[w] = (struct pollfd){ .fd = pair_in[w], .events = POLLOUT };
		poll(p, nw, 10);
		for (unsigned int w = 0; w < nw; w++)
			demux_flush(w, NULL, 0);
		if (atomic_load(&B.stop))
			return *next;
	}
}

#define IOV_MAX_BATCH 512

/*
 * The reader: every readable connection is read in large chunks and its complete frames
 * go round-robin to the workers through one of two hand-offs (below). A worker that does
 * not keep up (its pair is full) gets nothing more until it has taken its backlog.
 */
struct handoff {
	void (*frame)(uint8_t *p, uint32_t len);	/* a whole frame, in the read buffer */
	void (*conn_done)(void);	/* before the read buffer moves */
	void (*pass_done)(int nevents);	/* after each epoll_wait() pass */
};

static void *demux_read(const struct handoff *h)
{
	struct conn_buf *cb = calloc(B.cfg.conns, sizeof(*cb));
	size_t cap = READ_CHUNK + B.cfg.size;
	struct epoll_event ev[MAX_CONNS];
	int ep = epoll_create1(EPOLL_CLOEXEC);

	for (unsigned int i = 0; cb && i < B.cfg.conns; i++) {
		struct epoll_event e = { .events = EPOLLIN, .data.u32 = i };

		cb[i].buf = malloc(cap);
		epoll_ctl(ep, EPOLL_CTL_ADD, B.srv[i], &e);
	}
	while (cb && !atomic_load(&B.stop)) {
		int n = epoll_wait(ep, ev, MAX_CONNS, 10);

		for (int e = 0; e < n; e++) {
			struct conn_buf *c = &cb[ev[e].data.u32];
			ssize_t r = read(B.srv[ev[e].data.u32], c->buf + c->have, cap - c->have);
			size_t off = 0;

			if (r <= 0)
				continue;
			c->have += r;
			while (c->have - off >= 4) {
				uint32_t len;

				memcpy(&len, c->buf + off, 4);
				len = __builtin_bswap32(len) + 4;
				if (c->have - off < len)
					break;
				h->frame(c->buf + off, len);
				off += len;
			}
			h->conn_done();
			memmove(c->buf, c->buf + off, c->have - off);
			c->have -= off;
		}
		h->pass_done(n);
	}
	for (unsigned int i = 0; cb && i < B.cfg.conns; i++)
		free(cb[i].buf);
	free(cb);
	close(ep);
	return NULL;
}

/*
 * Hand-off by iovecs: frames go as iovecs into the read buffer, and one writev per
 * worker per connection read hands them over without another copy.
 */
static struct iovec *iov;
static size_t niov[MAX_WORKERS];
static unsigned int iov_next;

static void iov_frame(uint8_t *p, uint32_t len)
{
	unsigned int w = demux_pick(&iov_next);

	iov[w * IOV_MAX_BATCH + niov[w]++] = (struct iovec){ p, len };
	if (niov[w] == IOV_MAX_BATCH) {
		demux_flush(w, iov + w * IOV_MAX_BATCH, niov[w]);
		niov[w] = 0;
	}
}

static void iov_conn_done(void)
{
	for (unsigned int w = 0; w < B.cfg.workers; w++) {
		demux_flush(w, iov + w * IOV_MAX_BATCH, niov[w]);
		niov[w] = 0;
	}
}

static void iov_pass_done(int nevents)
{
	for (unsigned int w = 0; nevents == 0 && w < B.cfg.workers; w++)
		demux_flush(w, NULL, 0);
}

static void *demux_reader(void *arg)
{
	static const struct handoff h = { iov_frame, iov_conn_done, iov_pass_done };

	(void)arg;
	iov = calloc((size_t)B.cfg.workers * IOV_MAX_BATCH, sizeof(*iov));
	if (iov)
		demux_read(&h);
	free(iov);
	return NULL;
}

/*
 * The demux for small messages: whole frames are copied into a staging buffer per worker
 * and each buffer is written once per pass, one system call per worker instead of a
 * writev of hundreds of 64-byte iovecs. A worker whose pair did not take all of its
 * buffer is passed over until it has. Above STAGE_MAX_MSG the copy costs more than the
 * iovecs save, and demux_reader() is used.
 */
#define STAGE_MAX_MSG 4096
#define STAGE_BYTES (256u << 10)

struct stage {
	uint8_t *buf;
	size_t len;
	bool blocked;	/* the pair did not take everything: no new frames */
};

static struct stage stage[MAX_WORKERS];

static void stage_flush(unsigned int w)
{
	struct stage *st = &stage[w];
	ssize_t r;

	if (!st->len)
		return;
	r = write(pair_in[w], st->buf, st->len);
	if (r > 0 && (size_t)r < st->len)
		memmove(st->buf, st->buf + r, st->len - r);
	if (r > 0)
		st->len -= r;
	st->blocked = st->len > 0;
}

/* The next worker, round-robin, that can take @len more bytes; waits when none can. */
static unsigned int stage_pick(unsigned int *next, size_t len)
{
	unsigned int nw = B.cfg.workers;

	for (;;) {
		struct pollfd p[MAX_WORKERS];

		for (unsigned int k = 0; k < nw; k++) {
			unsigned int w = (*next + k) % nw;

			if (stage[w].blocked)
				continue;
			if (stage[w].len + len > STAGE_BYTES)
				stage_flush(w);
			if (stage[w].blocked)
				continue;
			*next = (w + 1) % nw;
			return w;
		}
		for (unsigned int w = 0; w < nw; w++)
			p[w] = (struct pollfd){ .fd = pair_in[w], .events = POLLOUT };
		poll(p, nw, 10);
		for (unsigned int w = 0; w < nw; w++)
			stage_flush(w);
		if (atomic_load(&B.stop))
			return *next;
	}
}

static unsigned int stage_next;

static void stage_frame(uint8_t *p, uint32_t len)
{
	unsigned int w = stage_pick(&stage_next, len);

	memcpy(stage[w].buf + stage[w].len, p, len);
	stage[w].len += len;
}

static void stage_conn_done(void)
{
}

static void stage_pass_done(int nevents)
{
	(void)nevents;
	for (unsigned int w = 0; w < B.cfg.workers; w++)
		stage_flush(w);
}

static void *demux_reader_staged(void *arg)
{
	static const struct handoff h = { stage_frame, stage_conn_done, stage_pass_done };
	bool ok = true;

	(void)arg;
	for (unsigned int w = 0; w < B.cfg.workers; w++) {
		stage[w].buf = malloc(STAGE_BYTES);
		ok &= stage[w].buf != NULL;
	}
	if (ok)
		demux_read(&h);
	for (unsigned int w = 0; w < B.cfg.workers; w++)
		free(stage[w].buf);
	return NULL;
}

static int demux_start(void)
{
	for (unsigned int i = 0; i < B.cfg.workers; i++) {
		int sv[2], sz = PAIR_BUF;

		if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv))
			return -1;
		setsockopt(sv[0], SOL_SOCKET, SO_SNDBUFFORCE, &sz, sizeof(sz));
		setsockopt(sv[1], SOL_SOCKET, SO_RCVBUFFORCE, &sz, sizeof(sz));
		pair_in[i] = sv[0];
		B.w[i].fd = sv[1];
		if (pthread_create(&B.w[i].th, NULL, demux_worker, &B.w[i]))
			return -1;
	}
	return pthread_create(&reader, NULL, B.cfg.size <= STAGE_MAX_MSG ? demux_reader_staged :
			      demux_reader, NULL) ? -1 : 0;
}

/* ---- direct: each worker owns connections i % workers ---- */

static int direct_reply(struct worker *w, const uint8_t *msg, size_t len)
{
	uint32_t conn;

	(void)w;
	memcpy(&conn, msg + 4, 4);
	return write_full(B.srv[conn], msg, len); /* only this worker writes on it */
}

static void *direct_worker(void *arg)
{
	struct worker *w = arg;
	struct conn_buf cb[MAX_CONNS] = { 0 };
	struct epoll_event ev[MAX_CONNS];
	size_t cap = READ_CHUNK + B.cfg.size;
	int ep = epoll_create1(EPOLL_CLOEXEC);

	for (unsigned int i = w->id; i < B.cfg.conns; i += B.cfg.workers) {
		struct epoll_event e = { .events = EPOLLIN, .data.u32 = i };

		cb[i].buf = malloc(cap);
		epoll_ctl(ep, EPOLL_CTL_ADD, B.srv[i], &e);
	}
	while (!atomic_load(&B.stop)) {
		int n;

		maybe_stall(w);
		n = epoll_wait(ep, ev, MAX_CONNS, 10);
		for (int e = 0; e < n; e++) {
			struct conn_buf *c = &cb[ev[e].data.u32];
			ssize_t r = read(B.srv[ev[e].data.u32], c->buf + c->have, cap - c->have);

			if (r <= 0)
				continue;
			c->have += r;
			cut_frames(w, c->buf, &c->have, direct_reply);
		}
	}
	for (unsigned int i = 0; i < B.cfg.conns; i++)
		free(cb[i].buf);
	close(ep);
	return NULL;
}

static int direct_start(void)
{
	for (unsigned int i = 0; i < B.cfg.workers; i++) {
		B.w[i].fd = -1;
		if (pthread_create(&B.w[i].th, NULL, direct_worker, &B.w[i]))
			return -1;
	}
	return 0;
}

int rx_start(void)
{
	for (unsigned int i = 0; i < MAX_WORKERS; i++) {
		pair_in[i] = -1;
		B.w[i].id = i;
	}
	switch (B.cfg.variant) {
	case V_KCM:
	case V_KCM_BATCH:
	case V_KCM_FRAME:
	case V_KCM_PROG:
		return kcm_start();
	case V_AFKCM:
		return afkcm_start();
	case V_DEMUX:
		return demux_start();
	default:
		return direct_start();
	}
}

void rx_stop(void)
{
	atomic_store(&B.stop, true);
	if (B.cfg.variant == V_DEMUX)
		pthread_join(reader, NULL);
	for (unsigned int i = 0; i < B.cfg.workers; i++)
		if (B.w[i].th)
			pthread_join(B.w[i].th, NULL);
	for (unsigned int i = 0; i < B.cfg.workers; i++) {
		if (pair_in[i] >= 0)
			close(pair_in[i]);
		free(backlog[i].buf);
	}
	kcm_mux_destroy(mux); /* closes the KCM sockets and its transport references */
	if (!mux) /* afkcm: the last KCM socket closed unattaches the transports */
		for (unsigned int i = 0; i < B.cfg.workers; i++)
			if (B.w[i].fd >= 0)
				close(B.w[i].fd);
	mux = NULL;
}
