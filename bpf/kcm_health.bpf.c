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
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>
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

static __always_inline void fill_tuple(struct tcp_sock *tp, struct kcm_event *ev)
{
	struct sock_common *c = &tp->inet_conn.icsk_inet.sk.__sk_common;

	ev->family = c->skc_family;
	/* inet_sport: closing unhashes the socket and zeroes skc_num before the tracepoint */
	ev->local_port = bpf_ntohs(tp->inet_conn.icsk_inet.inet_sport);
	ev->remote_port = bpf_ntohs(c->skc_dport);
	if (ev->family == AF_INET) {
		__u32 l = c->skc_rcv_saddr, r = c->skc_daddr;

		__builtin_memcpy(ev->local_addr, &l, 4);
		__builtin_memcpy(ev->remote_addr, &r, 4);
		return;
	}
	BPF_CORE_READ_INTO(&ev->local_addr, c, skc_v6_rcv_saddr.in6_u.u6_addr8);
	BPF_CORE_READ_INTO(&ev->remote_addr, c, skc_v6_daddr.in6_u.u6_addr8);
}

static __always_inline __u32 tcp_state(struct tcp_sock *tp)
{
	return tp->inet_conn.icsk_inet.sk.__sk_common.skc_state;
}

/* Send one event with a TCP_INFO-style snapshot; @state/@old_state as the caller saw them. */
static __always_inline void emit(struct tcp_sock *tp, __u64 cookie, __u32 slot, __u32 type,
				 __u32 value, __u32 threshold, __u32 state, __u32 old_state)
{
	struct kcm_event *ev = bpf_ringbuf_reserve(&events, sizeof(*ev), 0);

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
	ev->srtt_us = tp->srtt_us >> 3;
	ev->snd_cwnd = tp->snd_cwnd;
	ev->packets_out = tp->packets_out;
	ev->retrans_out = tp->retrans_out;
	ev->total_retrans = tp->total_retrans;
	ev->bytes_acked = tp->bytes_acked;
	ev->bytes_received = tp->bytes_received;
	fill_tuple(tp, ev);
	ev->rttvar_us = tp->mdev_us >> 2; /* what TCP_INFO calls rttvar */
	if (CONFIG_HZ)
		ev->rto_us = tp->inet_conn.icsk_rto * (1000000 / CONFIG_HZ);
	if (type == KCM_EV_STATE)
		ev->err = tp->inet_conn.icsk_inet.sk.sk_err;
	bpf_ringbuf_submit(ev, 0);
}

/* Report @value once when it rises above @limit; re-armed when it is back at or below. */
static __always_inline void edge(struct tcp_sock *tp, struct health_edge *e, __u32 bit,
				 __u64 cookie, __u32 slot, __u32 type, __u32 value, __u32 limit)
{
	if (value > limit) {
		if (e->above & bit)
			return;
		e->above |= bit;
		emit(tp, cookie, slot, type, value, limit, tcp_state(tp), tcp_state(tp));
	} else {
		e->above &= ~bit;
	}
}

static __always_inline void on_rtt(struct tcp_sock *tp, const struct kcm_health_cfg *cfg,
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
		edge(tp, e, ABOVE_SRTT, cookie, slot, KCM_EV_SRTT, tp->srtt_us >> 3, cfg->srtt_us);
	if (cfg->rttvar_us)
		edge(tp, e, ABOVE_RTTVAR, cookie, slot, KCM_EV_RTTVAR, tp->mdev_us >> 2,
		     cfg->rttvar_us);
}

/*
 * One health callback of socket @tp (cookie @cookie): @op is the sock_ops callback it is,
 * or stands for; @a0, @a1 its arguments. Sockets that are not transports of the mux leave
 * at the first lookup.
 */
static __always_inline void on_callback(struct tcp_sock *tp, __u64 cookie, __u32 op, __u32 a0,
					__u32 a1)
{
	struct kcm_transport_stats *ts;
	struct kcm_health_cfg *cfg;
	__u32 zero = 0, slot, *s;

	s = bpf_map_lookup_elem(&transport_slot, &cookie);
	if (!s)
		return;
	slot = *s;
	ts = bpf_map_lookup_elem(&transport_stats, &slot);
	cfg = bpf_map_lookup_elem(&health_cfg, &zero);
	if (!ts || !cfg || ts->cookie != cookie)
		return;

	switch (op) {
	case BPF_SOCK_OPS_RTT_CB:
		on_rtt(tp, cfg, cookie, slot);
		break;
	case BPF_SOCK_OPS_RETRANS_CB:
		/* total_retrans already counts this retransmission (segments, not calls) */
		if (cfg->retrans && tp->total_retrans >= cfg->retrans)
			emit(tp, cookie, slot, KCM_EV_RETRANS, tp->total_retrans, cfg->retrans,
			     tcp_state(tp), tcp_state(tp));
		break;
	case BPF_SOCK_OPS_RTO_CB:
		/* @a0: icsk_retransmits before this timeout, so value 1 is the first */
		if (cfg->rto)
			emit(tp, cookie, slot, KCM_EV_RTO, a0 + 1, 0, tcp_state(tp), tcp_state(tp));
		break;
	case BPF_SOCK_OPS_STATE_CB:
		/* @a0 old, @a1 new state; the socket's own is still the old one */
		ts->tcp_state = a1;
		if (cfg->state || a1 == BPF_TCP_CLOSE)
			emit(tp, cookie, slot, KCM_EV_STATE, a1, 0, a1, a0);
		break;
	}
}

SEC("sockops")
int kcm_health(struct bpf_sock_ops *ctx)
{
	struct bpf_sock *sk;
	__u32 op = ctx->op;
	struct tcp_sock *tp;

	/* every TCP socket of the machine comes here: leave the others at once */
	if (op != BPF_SOCK_OPS_RTT_CB && op != BPF_SOCK_OPS_RETRANS_CB &&
	    op != BPF_SOCK_OPS_RTO_CB && op != BPF_SOCK_OPS_STATE_CB)
		return 1;
	sk = ctx->sk;
	if (!sk)
		return 1;
	tp = bpf_skc_to_tcp_sock(sk);
	if (tp)
		on_callback(tp, bpf_get_socket_cookie(ctx), op, ctx->args[0], ctx->args[1]);
	return 1;
}

/*
 * Without arming (kernels whose bpf_setsockopt() cannot set TCP_BPF_SOCK_OPS_CB_FLAGS,
 * Linux 6.1), the same callbacks come from the tracepoints and the function TCP runs at
 * the same places: every TCP socket of the machine passes here, not only armed ones.
 * kcm-loader monitor loads these only then.
 */
static __always_inline void traced(struct sock *sk, __u32 op, __u32 a0, __u32 a1)
{
	struct tcp_sock *tp = bpf_skc_to_tcp_sock(sk);

	if (tp)
		on_callback(tp, bpf_get_socket_cookie(sk), op, a0, a1);
}

/* every segment TCP receives on an established socket, before it is processed */
SEC("tp_btf/tcp_probe")
int BPF_PROG(kcm_health_trace_rtt, struct sock *sk, struct sk_buff *skb)
{
	traced(sk, BPF_SOCK_OPS_RTT_CB, 0, 0);
	return 0;
}

SEC("tp_btf/tcp_retransmit_skb")
int BPF_PROG(kcm_health_trace_retrans, struct sock *sk, struct sk_buff *skb)
{
	traced(sk, BPF_SOCK_OPS_RETRANS_CB, 0, 0);
	return 0;
}

/*
 * A retransmission timeout: the timer's tcp_enter_loss() sets the congestion state to
 * Loss on every timeout (also when it is Loss already), before it counts the timeout in
 * icsk_retransmits. (A path MTU probe that fails enters Loss too, without a timeout.)
 */
SEC("tp_btf/tcp_cong_state_set")
int BPF_PROG(kcm_health_trace_rto, struct sock *sk, __u8 ca_state)
{
	struct tcp_sock *tp;

	if (ca_state != TCP_CA_Loss)
		return 0;
	tp = bpf_skc_to_tcp_sock(sk);
	if (tp)
		on_callback(tp, bpf_get_socket_cookie(sk), BPF_SOCK_OPS_RTO_CB,
			    tp->inet_conn.icsk_retransmits, 0);
	return 0;
}

SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(kcm_health_trace_state, struct sock *sk, int oldstate, int newstate)
{
	traced(sk, BPF_SOCK_OPS_STATE_CB, oldstate, newstate);
	return 0;
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
