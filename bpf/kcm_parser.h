/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The kcm-bpf parser SDK: write a message parser as one function over message-relative
 * offsets, and `kcm-loader attach --prog` (or kcm_parser_open()) attaches it to a mux.
 *
 *	#include <kcm_parser.h>
 *
 *	KCM_PARSER(thrift)
 *	{
 *		return kcm_load_be32(ctx, 0) + 4;
 *	}
 *
 * Offset 0 is the first byte of the current message, wherever strparser keeps it in the
 * skb. A load past the bytes received so far makes the parser report "need more data";
 * the function's return value is then ignored and strparser calls again when more bytes
 * arrive. Return the whole length of the message (header included), or a negative errno
 * (-EBADMSG for a frame that cannot be valid). The SDK turns a length above the mux's
 * max_msg_size into -EMSGSIZE and a length of 0 or less into -EBADMSG; both are posted
 * on the transport as SO_ERROR, and the other transports carry on.
 *
 * Build: clang -O2 -g -target bpf -I/usr/include/$(uname -m)-linux-gnu \
 *		-I<prefix>/include/kcm-bpf -c parser.bpf.c -o parser.bpf.o
 * See docs/parser-sdk.md.
 *
 * The same source also builds for user space (any compiler without __bpf__): then
 * KCM_PARSER(name) defines kcm_split_<name>(buf, len), which libkcm uses to find the
 * message boundaries in a batch, so that a parser-program mux can carry many messages
 * per redirect like a length-prefix mux (kcm_mux_opts.splitter).
 */
#ifndef KCM_PARSER_H
#define KCM_PARSER_H

#ifdef __bpf__
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#else
#include <linux/types.h>
#include <string.h>
#ifndef __always_inline
#define __always_inline inline __attribute__((always_inline))
#endif
#endif

#include "kcm_shared.h"

#ifndef EIO
#define EIO 5
#endif
#ifndef EBADMSG
#define EBADMSG 74
#endif
#ifndef EMSGSIZE
#define EMSGSIZE 90
#endif

/* What a parser function sees: the current message and how much of it has arrived. */
struct kcm_ctx {
#ifdef __bpf__
	struct __sk_buff *skb;
	__u32 base;		/* offset of the message in the skb (strparser's) */
#else
	const unsigned char *buf;
#endif
	__u32 avail;		/* bytes of the message received so far */
	__u32 need_more;	/* a load went past @avail */
	__s32 error;		/* a load failed: -EIO */
};

#ifdef __bpf__
/* Messages one call may batch; the mux's config says whether to batch at all. */
#define KCM_PARSER_BATCH 256

/* The mux's maps (config, counters, transport stats, events), shared by libkcm with
 * every parser it loads, under kcm_-prefixed names; and the accounting the data plane
 * does too. */
#define KCM_MAP_NAME(n) kcm_##n
#include "kcm_mux_maps.h"
#include "kcm_account.h"

/* CO-RE views of the kernel structures that hold strparser's message offset. */
struct strp_msg___kcm {
	int full_len;
	int offset;
} __attribute__((preserve_access_index));

struct _strp_msg___kcm {
	struct strp_msg___kcm strp;
} __attribute__((preserve_access_index));

struct sk_skb_cb___kcm {
	struct _strp_msg___kcm strp;
} __attribute__((preserve_access_index));

struct sk_buff___kcm {
	char cb[48];
} __attribute__((preserve_access_index));

#endif /* __bpf__ */

/* Bytes of the current message received so far. */
static __always_inline __u32 kcm_avail(const struct kcm_ctx *ctx)
{
	return ctx->avail;
}

/* Copy @n bytes at message offset @off into @dst: 0, or -1 when they have not all
 * arrived (the parser then reports "need more data") or cannot be read. */
static __always_inline int kcm_load_bytes(struct kcm_ctx *ctx, __u32 off, void *dst, __u32 n)
{
	if (off > ctx->avail || n > ctx->avail - off) {
		ctx->need_more = 1;
		return -1;
	}
#ifdef __bpf__
	if (bpf_skb_load_bytes(ctx->skb, ctx->base + off, dst, n)) {
		ctx->error = -EIO;
		return -1;
	}
#else
	memcpy(dst, ctx->buf + off, n);
#endif
	return 0;
}

/*
 * An unsigned integer of @n (1..8) bytes at message offset @off; 0 when not all there.
 * The kcm_load_* wrappers return it as __s64 so that `kcm_load_be32(ctx, 0) + 4` cannot
 * wrap around in 32 bits (0xffffffff + 4 would read as a 3-byte message).
 */
static __always_inline __u64 kcm__load_uint(struct kcm_ctx *ctx, __u32 off, __u32 n, int be)
{
	__u8 b[8] = {};
	__u64 v = 0;

	kcm_load_bytes(ctx, off, b, n);
#ifdef __clang__
#pragma unroll
#endif
	for (__u32 i = 0; i < 8; i++) {
		if (i >= n)
			break;
		v = be ? v << 8 | b[i] : v | (__u64)b[i] << (8 * i);
	}
	return v;
}

static __always_inline __s64 kcm_load_u8(struct kcm_ctx *ctx, __u32 off)
{
	return kcm__load_uint(ctx, off, 1, 1);
}

static __always_inline __s64 kcm_load_be16(struct kcm_ctx *ctx, __u32 off)
{
	return kcm__load_uint(ctx, off, 2, 1);
}

static __always_inline __s64 kcm_load_be24(struct kcm_ctx *ctx, __u32 off)
{
	return kcm__load_uint(ctx, off, 3, 1);
}

static __always_inline __s64 kcm_load_be32(struct kcm_ctx *ctx, __u32 off)
{
	return kcm__load_uint(ctx, off, 4, 1);
}

static __always_inline __u64 kcm_load_be64(struct kcm_ctx *ctx, __u32 off)
{
	return kcm__load_uint(ctx, off, 8, 1);
}

static __always_inline __s64 kcm_load_le16(struct kcm_ctx *ctx, __u32 off)
{
	return kcm__load_uint(ctx, off, 2, 0);
}

static __always_inline __s64 kcm_load_le32(struct kcm_ctx *ctx, __u32 off)
{
	return kcm__load_uint(ctx, off, 4, 0);
}

#ifdef __bpf__
/*
 * Internals of KCM_PARSER(): find the message, then judge the function's answer.
 * An sk_skb program's context is the kernel's struct sk_buff: strparser's offset is read
 * from its control block with CO-RE offsets (no kfunc, so 6.1 loads it too).
 */
static __always_inline void kcm__begin(struct kcm_ctx *ctx, struct __sk_buff *skb)
{
	struct sk_buff___kcm *kskb = (void *)(unsigned long)skb;
	struct sk_skb_cb___kcm *cb = (void *)kskb->cb;
	int off = 0;

	bpf_probe_read_kernel(&off, sizeof(off), &cb->strp.strp.offset);
	ctx->skb = skb;
	ctx->base = off > 0 ? off : 0;
	ctx->avail = skb->len > ctx->base ? skb->len - ctx->base : 0;
}

/* The transport's counters: a failed transport, or a message it is still assembling.
 * Returns 0 when the error was counted already. */
static __always_inline int kcm__note(struct kcm_ctx *ctx, int ret)
{
	if (ret > 0 && (__u32)ret <= ctx->avail)
		return 1; /* a whole message: the mux's verdict counts it */
	return kcm__account(ctx->skb, ctx->avail, ret, ret > 0 ? ret : 0);
}

/* The function's answer, checked against the mux's limits. */
static __always_inline int kcm__judge(struct kcm_ctx *ctx, __s64 len)
{
	__u32 key = 0, max = 0;
	struct kcm_config *cfg = bpf_map_lookup_elem(&kcm_mux_config, &key);

	if (ctx->error)
		return ctx->error;
	if (ctx->need_more)
		return 0;
	if (cfg)
		max = cfg->max_msg;
	if (len > 0 && (!max || len <= max))
		return (int)len;
	if (len > 0 || len == -EMSGSIZE)
		return -EMSGSIZE;
	return len < 0 && len >= -4095 ? (int)len : -EBADMSG;
}

/* Judge, then count in the transport's and the mux's counters (kcm_counters). */
static __always_inline int kcm__finish(struct kcm_ctx *ctx, __s64 len)
{
	__u32 key = 0;
	struct kcm_counters *c = bpf_map_lookup_elem(&kcm_counters, &key);
	int ret = kcm__judge(ctx, len);

	if (!kcm__note(ctx, ret) || !c)
		return ret;
	if (ret == 0)
		c->need_more_hdr++;
	else if (ret == -EMSGSIZE)
		c->err_too_big++;
	else if (ret < 0)
		c->err_bad_len++;
	return ret;
}

/*
 * Define parser @name: the body computes the whole length of the message that starts at
 * offset 0, reading it with kcm_load_*(ctx, offset). The program is the object's
 * SEC("sk_skb/stream_parser"); kcm-loader lists it under @name. When the mux batches
 * (its config's batch > 1), the program returns every complete message available (up
 * to the batch, KCM_PARSER_BATCH and max_msg_size bytes) and tells the verdict how many
 * in skb->priority, which strparser hands on with the message.
 */
#define KCM_PARSER(name)							\
	static __always_inline __s64 kcm__parse_##name(struct kcm_ctx *ctx);	\
	/* global: the verifier checks it once, however many messages a batch holds */ \
	__attribute__((noinline)) int kcm__len_##name(struct __sk_buff *skb, __u32 base, \
						      __u32 avail)			\
	{									\
		struct kcm_ctx ctx = {};					\
									\
		if (!skb)							\
			return 0;						\
		ctx.skb = skb;							\
		ctx.base = base;						\
		ctx.avail = avail;						\
		return kcm__judge(&ctx, kcm__parse_##name(&ctx));		\
	}									\
	SEC("sk_skb/stream_parser")						\
	int name(struct __sk_buff *skb)						\
	{									\
		struct kcm_ctx ctx = {};					\
		__u32 key = 0, batch = 1, limit = 0, pos, n;			\
		struct kcm_config *cfg;						\
		int len;							\
									\
		kcm__begin(&ctx, skb);						\
		if (!ctx.avail)							\
			return 0;						\
		cfg = bpf_map_lookup_elem(&kcm_mux_config, &key);		\
		if (cfg) {							\
			batch = cfg->batch;					\
			limit = cfg->max_msg;					\
		}								\
		len = kcm__len_##name(skb, ctx.base, ctx.avail);		\
		skb->priority = 1;						\
		ctx.need_more = len == 0;					\
		if (len <= 0 || (__u32)len >= ctx.avail || batch <= 1)		\
			return kcm__finish(&ctx, len);				\
		pos = len;							\
		for (n = 1; n < KCM_PARSER_BATCH; n++) {			\
			if (n >= batch || pos >= ctx.avail)			\
				break;						\
			len = kcm__len_##name(skb, ctx.base + pos, ctx.avail - pos); \
			if (len <= 0 || (__u32)len > ctx.avail - pos ||		\
			    pos + len > limit)					\
				break;						\
			pos += len;						\
		}								\
		skb->priority = n;						\
		return pos;							\
	}									\
	char _kcm_license_##name[] SEC("license") = "Dual BSD/GPL";		\
	static __always_inline __s64 kcm__parse_##name(struct kcm_ctx *ctx)

#else /* !__bpf__ */

/*
 * The user-space build: kcm_split_<name>(buf, len) gives the length of the message at
 * the start of @buf (what the BPF program would judge before the mux's limits), 0 when
 * @len bytes are not enough to tell, or a negative errno.
 */
#define KCM_PARSER(name)							\
	static __always_inline __s64 kcm__parse_##name(struct kcm_ctx *ctx);	\
	static __s64 kcm_split_##name(const void *buf, __u32 len)		\
	{									\
		struct kcm_ctx ctx = { .buf = buf, .avail = len };		\
		__s64 ret = kcm__parse_##name(&ctx);				\
									\
		return ctx.need_more ? 0 : ret;					\
	}									\
	static __always_inline __s64 kcm__parse_##name(struct kcm_ctx *ctx)

#endif /* __bpf__ */

#endif /* KCM_PARSER_H */
