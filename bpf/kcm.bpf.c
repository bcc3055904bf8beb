// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * The receive data plane of one multiplexor: a stream parser that finds message
 * boundaries with a configurable length prefix, a stream verdict that steers whole
 * messages to the KCM sockets of the group, and a verdict that moves messages off a
 * receive-disabled KCM socket.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "kcm_shared.h"

#define EMSGSIZE 90
#define EBADMSG 74
#define BPF_F_INGRESS 1
#define SK_PASS 1
#define SK_DROP 0
#define EIO 5
/* bpf_skb_load_bytes() takes offsets up to INT_MAX (0xffff on kernels before 5.x) */
#define KCM_LOAD_LIMIT 0x7fffffff

/* Framing and policy, fixed when the mux is created (filled between open and load). */
const volatile __u32 cfg_len_offset = 0;
const volatile __u32 cfg_len_size = 4;
const volatile __u32 cfg_big_endian = 1;
const volatile __s64 cfg_len_adjust = 4;
const volatile __u32 cfg_max_msg = 65536;
const volatile __u32 cfg_batch = 1;
const volatile __u32 cfg_policy = KCM_STEER_MESSAGES;
const volatile __u32 cfg_window = 2 << 20;
/* counted per message on top of its bytes (parser programs: each pins a segment clone) */
const volatile __u32 cfg_msg_cost = 0;

/* parser programs with a splitter: libkcm requeues one message per datagram */
const volatile __u32 cfg_split = 0;

struct {
	__uint(type, BPF_MAP_TYPE_SOCKMAP);
	__uint(max_entries, KCM_MAX_TRANSPORTS);
	__type(key, __u32);
	__type(value, __u64);
} transports SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_SOCKMAP);
	__uint(max_entries, KCM_MAX_MEMBERS);
	__type(key, __u32);
	__type(value, __u64);
} group SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct kcm_steer);
} steer SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, KCM_MAX_MEMBERS);
	__type(key, __u32);
	__type(value, struct kcm_member_counters);
} member_counters SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, KCM_MAX_TRANSPORTS);
	__type(key, __u32);
	__type(value, struct kcm_transport_info);
} transport_info SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, KCM_MAX_MEMBERS);
	__type(key, __u32);
	__type(value, struct kcm_member_info);
} member_info SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, KCM_MAX_PARSERS);
	__type(key, __u32);
	__type(value, struct kcm_parser_info);
} parsers SEC(".maps");

#include "kcm_mux_maps.h"
#include "kcm_account.h"

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__uint(map_flags, BPF_F_MMAPABLE); /* readers add what they consume */
	__type(key, __u32);
	__type(value, struct kcm_credits);
} credits SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__uint(map_flags, BPF_F_MMAPABLE);
	__type(key, __u32);
	__type(value, struct kcm_flow_state);
} flow SEC(".maps");

/* Every transport again, by the same slot, as the target of the brake (no programs). */
struct {
	__uint(type, BPF_MAP_TYPE_SOCKMAP);
	__uint(max_entries, KCM_MAX_TRANSPORTS);
	__type(key, __u32);
	__type(value, __u64);
} brake_targets SEC(".maps");

/* The controller's loopback socket whose writes become ballast (one slot). */
struct {
	__uint(type, BPF_MAP_TYPE_SOCKMAP);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} brake_source SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, KCM_MAX_MEMBERS);
	__uint(map_flags, BPF_F_MMAPABLE);
	__type(key, __u32);
	__type(value, struct kcm_member_stats);
} member_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__uint(map_flags, BPF_F_MMAPABLE);
	__type(key, __u32);
	__type(value, struct kcm_mux_stats);
} mux_stats SEC(".maps");

static __always_inline struct kcm_counters *cnt(void)
{
	__u32 key = 0;

	return bpf_map_lookup_elem(&counters, &key);
}

/* strparser keeps the message start in the skb control block; __sk_buff has no field for it. */
static __always_inline struct strp_msg strp_msg_of(struct __sk_buff *skb)
{
	struct sk_buff *kskb = (void *)(unsigned long)skb; /* the context is the sk_buff */
	struct sk_skb_cb *cb = (struct sk_skb_cb *)&kskb->cb[0];
	struct strp_msg m = {};

	bpf_probe_read_kernel(&m, sizeof(m), &cb->strp.strp);
	return m;
}

/* strparser fails a message longer than the transport's receive buffer with EMSGSIZE. */
static __always_inline __u32 rcvbuf_of(struct __sk_buff *skb)
{
	struct sk_buff *kskb = (void *)(unsigned long)skb;
	struct sock *sk = NULL;
	int rcvbuf = 0;

	bpf_probe_read_kernel(&sk, sizeof(sk), &kskb->sk);
	if (sk)
		bpf_probe_read_kernel(&rcvbuf, sizeof(rcvbuf), &sk->sk_rcvbuf);
	return rcvbuf > 0 ? rcvbuf : 0;
}

/*
 * Length of the frame whose first byte is at @at, with @avail bytes present from @at:
 * > 0 the length, 0 header incomplete, < 0 errno for a frame that cannot be valid.
 * Global, so the verifier checks it once instead of once per caller state.
 */
__noinline int kcm_frame_len(struct __sk_buff *skb, __u32 at, __u32 avail)
{
	__u32 hdr_end = cfg_len_offset + cfg_len_size;
	__u8 b[8] = {};
	__u64 v = 0;
	__s64 len;
	int i;

	if (!skb || avail < hdr_end)
		return 0;
	/*
	 * The header is present: a load that fails here would fail on every retry, so it
	 * is an error on the transport, never "need more data" (that would stall it).
	 */
	at += cfg_len_offset;
	if (at > KCM_LOAD_LIMIT)
		return -EIO;
	switch (cfg_len_size) {
	case 1:
		if (bpf_skb_load_bytes(skb, at, b, 1))
			return -EIO;
		break;
	case 2:
		if (bpf_skb_load_bytes(skb, at, b, 2))
			return -EIO;
		break;
	case 3:
		if (bpf_skb_load_bytes(skb, at, b, 3))
			return -EIO;
		break;
	case 4:
		if (bpf_skb_load_bytes(skb, at, b, 4))
			return -EIO;
		break;
	default:
		if (bpf_skb_load_bytes(skb, at, b, 8))
			return -EIO;
		break;
	}
#pragma unroll
	for (i = 0; i < 8; i++) {
		if (i >= cfg_len_size)
			break;
		if (cfg_big_endian)
			v = (v << 8) | b[i];
		else
			v |= (__u64)b[i] << (8 * i);
	}
	if (v > (1ULL << 40))
		return -EMSGSIZE;
	len = (__s64)v + cfg_len_adjust;
	if (len > (__s64)cfg_max_msg)
		return -EMSGSIZE;
	if (len < (__s64)hdr_end || len <= 0)
		return -EBADMSG;
	return (int)len;
}

/* The parser's scan of the messages available (struct so that bpf_loop can carry it). */
struct kcm_scan {
	struct __sk_buff *skb;
	__u32 base;	/* the message's first byte */
	__u32 avail;	/* bytes from there */
	__u32 limit;	/* a batch stays below the transport's receive buffer */
	__u32 pos;	/* bytes of whole messages so far */
	__u32 first;	/* the first message's length (0: its header is incomplete) */
	int ret;	/* the parser's answer, when done says so */
	int done;
};

/* Message @n of the scan: 0 to look at the next one, 1 to stop (bpf_loop's convention). */
static __always_inline long scan_one(struct kcm_scan *s, __u32 n)
{
	struct kcm_counters *c;
	int len;

	if (n >= cfg_batch || s->pos >= s->avail)
		return 1;
	len = kcm_frame_len(s->skb, s->base + s->pos, s->avail - s->pos);
	if (len == 0) {
		c = n == 0 ? cnt() : NULL;
		if (c)
			c->need_more_hdr++;
		return 1;
	}
	if (len < 0) {
		if (n)
			return 1; /* deliver the good ones; the bad frame fails next call */
		s->done = 1;
		s->ret = len;
		if (!kcm__account(s->skb, s->avail, len, 0))
			return 1;
		c = cnt();
		if (c && len == -EMSGSIZE)
			c->err_too_big++;
		else if (c)
			c->err_bad_len++;
		return 1;
	}
	if (n == 0)
		s->first = len;
	if ((__u32)len > s->avail - s->pos) {
		if (n == 0) {
			kcm__account(s->skb, s->avail, len, len);
			s->done = 1;
			s->ret = len;
		}
		return 1;
	}
	/* a batch must not look like one oversized message to strparser */
	if (n && s->pos + len > s->limit)
		return 1;
	s->pos += len;
	/* the count for the verdict: a store, so the verifier tracks no counter */
	s->skb->priority = n + 1;
	return 0;
}

static long scan_one_cb(__u32 n, void *ctx)
{
	return scan_one(ctx, n);
}

/*
 * Returns the length of every complete message available (up to cfg_batch), the
 * length of the first message when it is still incomplete, 0 when its header is
 * incomplete, or a negative errno that strparser posts on the transport. The count of
 * messages goes to the verdict in skb->priority, as the SDK's parsers pass theirs:
 * strparser hands the verdict the skb the parser returned the batch's length on (a
 * batch of whole messages completes in that call; only a single incomplete message
 * waits for more data, and may then arrive on a new head skb with priority 0).
 *
 * The scan is a bpf_loop where the kernel has it (5.17), else a bounded loop: the
 * verifier walks a bounded loop's 1024 iterations one by one, which took 6.1's verifier
 * 18 s under TCG (about 1 s of a real CPU) for every mux created.
 */
static __always_inline int parse(struct __sk_buff *skb, bool kernel_loop)
{
	struct strp_msg m = strp_msg_of(skb);
	struct kcm_scan s = { .skb = skb, .base = m.offset };

	skb->priority = 1;
	if (skb->len <= s.base)
		return 0;
	s.avail = skb->len - s.base;
	s.limit = cfg_batch > 1 ? rcvbuf_of(skb) : 0;
	if (kernel_loop) {
		bpf_loop(KCM_MAX_BATCH, scan_one_cb, &s, 0);
	} else {
		for (int n = 0; n < KCM_MAX_BATCH; n++)
			if (scan_one(&s, n))
				break;
	}
	if (s.done)
		return s.ret;
	/* only an incomplete header is left to record; the verdict counts whole messages */
	if (!s.first)
		kcm__account(skb, s.avail, s.pos, 0);
	return s.pos;
}

SEC("sk_skb/stream_parser")
int kcm_parser(struct __sk_buff *skb)
{
	return parse(skb, false);
}

/* The same parser for kernels with bpf_loop; the loader loads one of the two. */
SEC("sk_skb/stream_parser")
int kcm_parser_loop(struct __sk_buff *skb)
{
	return parse(skb, true);
}

/* Number of messages in a datagram libkcm requeues (the verdict gets the parser's count). */
static __always_inline __u32 batch_msgs(struct __sk_buff *skb)
{
	__u32 full = skb->len;
	__u32 pos = 0, n;
	int len;

	if (cfg_batch <= 1)
		return 1;
	for (n = 0; n < KCM_MAX_BATCH; n++) {
		if (pos >= full)
			break;
		len = kcm_frame_len(skb, pos, full - pos);
		if (len <= 0)
			break;
		pos += len;
	}
	return n ? n : 1;
}

/*
 * Pick the member for a batch (see struct kcm_steer): the ready member served least
 * (highest credit), ties broken in turn after @cursor; else, when none has room, the
 * one with the fewest unread bytes (the controller then closes the transports'
 * windows). A member is ready while its unread bytes plus the batch fit the window, or
 * it holds nothing. Returns its group slot, -1 when there is no member.
 *
 * What the scan carries from one member to the next lives in the map (scan_*), not in
 * registers: the verifier then sees one state per iteration, not one per candidate.
 */
static __always_inline int pick_member(struct kcm_steer *st, struct kcm_credits *cr, __u32 nm,
				       __u32 bytes, __s64 units, bool *full)
{
	volatile struct kcm_steer *v = st; /* clang must not keep the scratch in registers */
	__u32 k, i, s, at;
	__s64 c;
	__u64 u;

	if (!nm)
		return -1;
	v->scan_best = KCM_MAX_MEMBERS;
	v->scan_low = 0;
	v->scan_least = ~0ULL;
	for (k = 0; k < KCM_MAX_MEMBERS; k++) {
		if (k >= nm)
			break;
		i = (st->cursor + 1 + k) % nm;
		s = st->slots[i & (KCM_MAX_MEMBERS - 1)] & (KCM_MAX_MEMBERS - 1);
		u = cr->given[s].bytes - cr->consumed[s].bytes;
		if ((__s64)u < 0)
			u = 0; /* a correction in flight */
		if (u < v->scan_least) {
			v->scan_least = u;
			v->scan_low = i;
		}
		if (u && u + bytes > cfg_window)
			continue;
		c = st->credit[s];
		if (v->scan_best == KCM_MAX_MEMBERS || c > v->scan_credit) {
			v->scan_credit = c;
			v->scan_best = i;
		}
	}
	*full = v->scan_best >= KCM_MAX_MEMBERS;
	at = (*full ? v->scan_low : v->scan_best) & (KCM_MAX_MEMBERS - 1);
	s = st->slots[at] & (KCM_MAX_MEMBERS - 1);
	/* members passed over for lack of room bank no credit while they wait */
	c = st->credit[s];
	for (k = 0; k < KCM_MAX_MEMBERS; k++) {
		if (k >= nm)
			break;
		i = st->slots[k] & (KCM_MAX_MEMBERS - 1);
		if (st->credit[i] > c)
			st->credit[i] = c;
	}
	st->credit[s] -= units;
	st->cursor = at;
	return s;
}

#define PICK_NONE (-1)	/* no member and no hold queue */
#define PICK_FULL 0x100	/* or-ed in: no member had room */
#define PICK_HOLD 0x200	/* or-ed in: the hold queue (no member) */

/*
 * Choose the group slot for a batch of @bytes costing @units, and count the bytes as
 * given to it, under the steering lock: once libkcm has taken a member out of the list
 * (under the same lock) nothing more is counted to it. Global, so that the verifier
 * checks it once and its callers see only the slot it returns.
 */
__noinline int kcm_pick(__u32 bytes, __u32 units)
{
	struct kcm_credits *cr;
	struct kcm_steer *st;
	__u32 key = 0, nm, slot, hold;
	bool full = false;
	int pick, ret;

	st = bpf_map_lookup_elem(&steer, &key);
	cr = bpf_map_lookup_elem(&credits, &key);
	if (!st || !cr)
		return PICK_NONE;
	bpf_spin_lock(&st->lock);
	nm = st->nmembers;
	if (nm > KCM_MAX_MEMBERS)
		nm = KCM_MAX_MEMBERS;
	hold = st->hold;
	pick = pick_member(st, cr, nm, bytes, units, &full);
	if (pick >= 0) {
		slot = pick & (KCM_MAX_MEMBERS - 1);
		ret = slot | (full ? PICK_FULL : 0);
	} else if (hold) {
		slot = (hold - 1) & (KCM_MAX_MEMBERS - 1);
		ret = slot | PICK_HOLD;
	} else {
		slot = 0;
		ret = PICK_NONE;
	}
	if (ret != PICK_NONE)
		__sync_fetch_and_add(&cr->given[slot].bytes, bytes);
	bpf_spin_unlock(&st->lock);
	return ret;
}

/*
 * Redirect a batch of @msgs messages (@bytes) to a member with room (kcm_pick). With no
 * member at all it goes to the hold queue, which libkcm empties into the first KCM
 * socket that appears. SK_DROP only when neither exists.
 */
__noinline int kcm_steer(struct __sk_buff *skb, __u32 msgs, __u32 bytes)
{
	__u32 units = cfg_policy == KCM_STEER_BYTES ? bytes : msgs;
	__u32 cost = bytes + msgs * cfg_msg_cost; /* what the credits count */
	__u32 key = 0, first, slot, i, nm;
	struct kcm_member_counters *mc;
	struct kcm_flow_state *fs;
	struct kcm_credits *cr;
	struct kcm_steer *st;
	int pick;

	st = bpf_map_lookup_elem(&steer, &key);
	cr = bpf_map_lookup_elem(&credits, &key);
	fs = bpf_map_lookup_elem(&flow, &key);
	if (!skb || !st || !cr || !fs)
		return SK_DROP;
	pick = kcm_pick(cost, units);
	if (pick < 0)
		return SK_DROP;
	if (pick & PICK_FULL)
		__sync_fetch_and_add(&fs->saturated, 1);
	first = pick & (KCM_MAX_MEMBERS - 1);
	if (bpf_sk_redirect_map(skb, &group, first, BPF_F_INGRESS) == SK_PASS) {
		slot = first;
		goto given;
	}
	/* A member closed without kcm_close() leaves a hole: try the others in order. */
	__sync_fetch_and_add(&cr->given[first].bytes, -(__u64)cost);
	if (pick & PICK_HOLD)
		return SK_DROP;
	nm = st->nmembers;
	for (i = 0; i < KCM_MAX_MEMBERS; i++) {
		if (i >= nm)
			break;
		slot = st->slots[i] & (KCM_MAX_MEMBERS - 1);
		if (slot == first || bpf_sk_redirect_map(skb, &group, slot, BPF_F_INGRESS) != SK_PASS)
			continue;
		__sync_fetch_and_add(&cr->given[slot].bytes, cost);
		goto given;
	}
	return SK_DROP;
given:
	if (pick & PICK_HOLD)
		return SK_PASS;
	mc = bpf_map_lookup_elem(&member_counters, &slot);
	if (mc) {
		mc->msgs += msgs;
		mc->bytes += bytes;
	}
	return SK_PASS;
}

SEC("sk_skb/stream_verdict")
int kcm_verdict(struct __sk_buff *skb)
{
	struct strp_msg m = strp_msg_of(skb);
	/* the parser counted the batch (parse(), KCM_PARSER): 0 is a lone message */
	__u32 msgs = cfg_batch <= 1 ? 1 : skb->priority;
	struct kcm_counters *c = cnt();
	int ret;

	if (msgs < 1 || msgs > KCM_MAX_BATCH)
		msgs = 1;
	ret = kcm_steer(skb, msgs, m.full_len);

	struct kcm_transport_stats *ts;
	__u32 slot = 0;

	ts = kcm__tstats(skb, &slot);
	if (ts) {
		if (ret == SK_PASS) {
			ts->rx_msgs += msgs;
			ts->rx_bytes += m.full_len;
		} else {
			ts->rx_drops += msgs;
		}
		ts->consumed_bytes += m.full_len;
		ts->partial = 0;
		ts->partial_bytes = 0;
	}
	if (!c)
		return ret;
	if (ret == SK_PASS) {
		c->rx_msgs += msgs;
		c->rx_bytes += m.full_len;
		c->rx_redirects++;
	} else {
		c->rx_drops++;
	}
	return ret;
}

/*
 * Runs on data written into a KCM socket itself: one datagram holds whole messages to
 * move (one with parser programs).
 */
SEC("sk_skb/stream_verdict")
int kcm_requeue(struct __sk_buff *skb)
{
	struct kcm_counters *c = cnt();
	/* with parser programs libkcm moves one message per datagram */
	__u32 msgs = cfg_split ? 1 : batch_msgs(skb);
	int ret = kcm_steer(skb, msgs, skb->len);

	if (c && ret == SK_PASS)
		c->requeued_msgs += msgs;
	else if (c)
		c->rx_drops++;
	return ret;
}

/*
 * Brake: bytes the controller writes on its loopback socket land in the receive queue
 * of transport flow.brake_slot (bpf_tcp_ingress charges them to it at once), so TCP
 * advertises a zero window until libkcm reads them back.
 */
SEC("sk_msg")
int kcm_brake(struct sk_msg_md *msg)
{
	struct kcm_flow_state *fs;
	__u32 key = 0;

	fs = bpf_map_lookup_elem(&flow, &key);
	if (!fs)
		return SK_DROP;
	return bpf_msg_redirect_map(msg, &brake_targets, fs->brake_slot, BPF_F_INGRESS);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
