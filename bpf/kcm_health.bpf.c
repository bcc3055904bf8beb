// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Transport health of one mux (kcm-loader monitor): a sock_ops program that watches the
 * RTT, retransmissions, RTOs and state changes of the mux's transports and sends an event
 * to the mux's ring buffer when one crosses a threshold of health_cfg, and a
 * cgroup/setsockopt program that turns those callbacks on for a socket that is already
 * established (the sock_ops flags are per socket, and transports are connected before
 * the monitor sees them).
 *
 * transport_slot, transport_stats, health_cfg and events are the mux's own maps: the
 * loader replaces this object's copies with the pinned ones (bpf_map__reuse_fd).
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "kcm_shared.h"
#include "kcm_health.h"
#include "kcm_mux_maps.h"

#define SOL_TCP 6
#define AF_INET 2
#define AF_INET6 10

/* Edge bits: the transport is above the threshold and was reported. */
#define ABOVE_SRTT 1
#define ABOVE_RTTVAR 2

/* icsk_rto is in jiffies; 0 when the kernel config is not readable (rto_us then 0). */
extern unsigned int CONFIG_HZ __kconfig __weak;

/* Which thresholds a transport is above, by slot; a new cookie in the slot starts clean. */
struct health_edge {
	__u64 cookie;
	__u32 above;
	__u32 pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, KCM_MAX_TRANSPORTS);
	__type(key, __u32);
	__type(value, struct health_edge);
} health_edge SEC(".maps");

static __always_inline void fill_tuple(struct bpf_sock_ops *ctx, struct kcm_event *ev)
{
	ev->family = ctx->family;
	ev->local_port = ctx->local_port;
	ev->remote_port = bpf_ntohs(ctx->remote_port >> 16);
	if (ctx->family == AF_INET) {
		__u32 l = ctx->local_ip4, r = ctx->remote_ip4;

		__builtin_memcpy(ev->local_addr, &l, 4);
		__builtin_memcpy(ev->remote_addr, &r, 4);
		return;
	}
	__u32 l6[4] = { ctx->local_ip6[0], ctx->local_ip6[1], ctx->local_ip6[2],
			ctx->local_ip6[3] };
	__u32 r6[4] = { ctx->remote_ip6[0], ctx->remote_ip6[1], ctx->remote_ip6[2],
			ctx->remote_ip6[3] };

	__builtin_memcpy(ev->local_addr, l6, 16);
	__builtin_memcpy(ev->remote_addr, r6, 16);
}

/* Send one event with a TCP_INFO-style snapshot; @state/@old_state as the caller saw them. */
static __always_inline void emit(struct bpf_sock_ops *ctx, __u64 cookie, __u32 slot, __u32 type,
				 __u32 value, __u32 threshold, __u32 state, __u32 old_state)
{
	struct kcm_event *ev = bpf_ringbuf_reserve(&events, sizeof(*ev), 0);
	struct bpf_sock *sk = ctx->sk;
	struct tcp_sock *tp = NULL;

	if (!ev)
		return;
	__builtin_memset(ev, 0, sizeof(*ev));
	ev->ts_ns = bpf_ktime_get_ns();
	ev->cookie = cookie;
	ev->type = type;
	ev->slot = slot;
	ev->value = value;
	ev->threshold = threshold;
	ev->state = state;
	ev->old_state = old_state;
	ev->srtt_us = ctx->srtt_us >> 3;
	ev->snd_cwnd = ctx->snd_cwnd;
	ev->packets_out = ctx->packets_out;
	ev->retrans_out = ctx->retrans_out;
	ev->total_retrans = ctx->total_retrans;
	ev->bytes_acked = ctx->bytes_acked;
	ev->bytes_received = ctx->bytes_received;
	fill_tuple(ctx, ev);
	if (sk)
		tp = bpf_skc_to_tcp_sock(sk);
	if (tp) {
		ev->rttvar_us = tp->mdev_us >> 2; /* what TCP_INFO calls rttvar */
		if (CONFIG_HZ)
			ev->rto_us = tp->inet_conn.icsk_rto * (1000000 / CONFIG_HZ);
		if (type == KCM_EV_STATE)
			ev->err = tp->inet_conn.icsk_inet.sk.sk_err;
	}
	bpf_ringbuf_submit(ev, 0);
}

static __always_inline __u32 rttvar_us(struct bpf_sock_ops *ctx)
{
	struct bpf_sock *sk = ctx->sk;
	struct tcp_sock *tp;

	if (!sk)
		return 0;
	tp = bpf_skc_to_tcp_sock(sk);
	return tp ? tp->mdev_us >> 2 : 0;
}

/* Report @value once when it rises above @limit; re-armed when it is back at or below. */
static __always_inline void edge(struct bpf_sock_ops *ctx, struct health_edge *e, __u32 bit,
				 __u64 cookie, __u32 slot, __u32 type, __u32 value, __u32 limit)
{
	if (value > limit) {
		if (e->above & bit)
			return;
		e->above |= bit;
		emit(ctx, cookie, slot, type, value, limit, ctx->state, ctx->state);
	} else {
		e->above &= ~bit;
	}
}

static __always_inline void on_rtt(struct bpf_sock_ops *ctx, const struct kcm_health_cfg *cfg,
				   __u64 cookie, __u32 slot)
{
	struct health_edge *e;

	if (!cfg->srtt_us && !cfg->rttvar_us)
		return;
	e = bpf_map_lookup_elem(&health_edge, &slot);
	if (!e)
		return;
	if (e->cookie != cookie) {
		e->cookie = cookie;
		e->above = 0;
	}
	if (cfg->srtt_us)
		edge(ctx, e, ABOVE_SRTT, cookie, slot, KCM_EV_SRTT, ctx->srtt_us >> 3, cfg->srtt_us);
	if (cfg->rttvar_us)
		edge(ctx, e, ABOVE_RTTVAR, cookie, slot, KCM_EV_RTTVAR, rttvar_us(ctx),
		     cfg->rttvar_us);
}

SEC("sockops")
int kcm_health(struct bpf_sock_ops *ctx)
{
	struct kcm_transport_stats *ts;
	struct kcm_health_cfg *cfg;
	__u32 op = ctx->op, zero = 0, slot, *s;
	__u64 cookie;

	/* every TCP socket of the machine comes here: leave the others at once */
	if (op != BPF_SOCK_OPS_RTT_CB && op != BPF_SOCK_OPS_RETRANS_CB &&
	    op != BPF_SOCK_OPS_RTO_CB && op != BPF_SOCK_OPS_STATE_CB)
		return 1;
	cookie = bpf_get_socket_cookie(ctx);
	s = bpf_map_lookup_elem(&transport_slot, &cookie);
	if (!s)
		return 1;
	slot = *s;
	ts = bpf_map_lookup_elem(&transport_stats, &slot);
	cfg = bpf_map_lookup_elem(&health_cfg, &zero);
	if (!ts || !cfg || ts->cookie != cookie)
		return 1;

	switch (op) {
	case BPF_SOCK_OPS_RTT_CB:
		on_rtt(ctx, cfg, cookie, slot);
		break;
	case BPF_SOCK_OPS_RETRANS_CB:
		/* total_retrans already counts this retransmission (segments, not calls) */
		if (cfg->retrans && ctx->total_retrans >= cfg->retrans)
			emit(ctx, cookie, slot, KCM_EV_RETRANS, ctx->total_retrans, cfg->retrans,
			     ctx->state, ctx->state);
		break;
	case BPF_SOCK_OPS_RTO_CB:
		/* args[0]: icsk_retransmits before this timeout, so value 1 is the first */
		if (cfg->rto)
			emit(ctx, cookie, slot, KCM_EV_RTO, ctx->args[0] + 1, 0, ctx->state,
			     ctx->state);
		break;
	case BPF_SOCK_OPS_STATE_CB:
		/* args[0] old, args[1] new state; ctx->state is still the old one */
		ts->tcp_state = ctx->args[1];
		if (cfg->state || ctx->args[1] == BPF_TCP_CLOSE)
			emit(ctx, cookie, slot, KCM_EV_STATE, ctx->args[1], 0, ctx->args[1],
			     ctx->args[0]);
		break;
	}
	return 1;
}

/* Arm (or disarm) the health callbacks of the socket the caller names by its fd. */
SEC("cgroup/setsockopt")
int kcm_health_arm(struct bpf_sockopt *ctx)
{
	__u32 *val = ctx->optval, flags, cur = 0;
	int ret;

	if (ctx->level != SOL_TCP || ctx->optname != KCM_HEALTH_ARM) {
		/* larger than the page the kernel copied: let it use the caller's buffer */
		if (ctx->optlen > 4096)
			ctx->optlen = 0;
		return 1;
	}
	if ((void *)(val + 1) > ctx->optval_end || !ctx->sk) {
		bpf_set_retval(-22); /* EINVAL */
		return 0;
	}
	flags = *val & KCM_HEALTH_CB_ALL;
	/* keep the flags other programs set */
	bpf_getsockopt(ctx->sk, SOL_TCP, TCP_BPF_SOCK_OPS_CB_FLAGS, &cur, sizeof(cur));
	flags |= cur & ~KCM_HEALTH_CB_ALL;
	ret = bpf_setsockopt(ctx->sk, SOL_TCP, TCP_BPF_SOCK_OPS_CB_FLAGS, &flags, sizeof(flags));
	ctx->optlen = -1; /* handled here: the kernel does not know the option */
	if (ret) {
		bpf_set_retval(ret);
		return 0;
	}
	return 1;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
