/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * What a stream parser records on its transport (BPF only): the half-done message that is
 * lost if the transport fails now, and why the parser failed it, with an event on the
 * mux's ring buffer. The data plane's parser (kcm.bpf.c) and the SDK's (kcm_parser.h)
 * both call kcm__account(). Include after kcm_mux_maps.h.
 */
#ifndef KCM_ACCOUNT_H
#define KCM_ACCOUNT_H

#ifndef EMSGSIZE
#define EMSGSIZE 90
#endif

/* Counters of the transport @skb arrived on; NULL when it is not attached (any more). */
static __always_inline struct kcm_transport_stats *kcm__tstats(struct __sk_buff *skb,
								__u32 *slot)
{
	__u64 cookie = bpf_get_socket_cookie(skb);
	__u32 *s = bpf_map_lookup_elem(&KCM_MAP_NAME(transport_slot), &cookie);
	struct kcm_transport_stats *ts;

	if (!s)
		return (void *)0;
	ts = bpf_map_lookup_elem(&KCM_MAP_NAME(transport_stats), s);
	if (!ts || ts->cookie != cookie)
		return (void *)0;
	*slot = *s;
	return ts;
}

/* Tell user space why the parser failed a transport; the ring buffer may be full. */
static __always_inline void kcm__parse_error_event(struct kcm_transport_stats *ts, __u32 slot,
						   int err)
{
	struct kcm_event *ev = bpf_ringbuf_reserve(&KCM_MAP_NAME(events), sizeof(*ev), 0);

	if (!ev)
		return;
	__builtin_memset(ev, 0, sizeof(*ev));
	ev->ts_ns = bpf_ktime_get_ns();
	ev->cookie = ts->cookie;
	ev->type = KCM_EV_PARSE_ERROR;
	ev->slot = slot;
	ev->err = err;
	ev->state = ts->tcp_state;
	bpf_ringbuf_submit(ev, 0);
}

/*
 * Record a parser's answer @ret for the @avail bytes it saw, @first being the length of
 * the first message (0: its header is incomplete). Returns 0 when @ret is an error
 * already counted on this transport: strparser may ask again about the same bad frame
 * (measured: sometimes twice).
 */
static __always_inline int kcm__account(struct __sk_buff *skb, __u32 avail, int ret, __u32 first)
{
	struct kcm_transport_stats *ts;
	__u32 slot = 0;

	ts = kcm__tstats(skb, &slot);
	if (!ts)
		return 1;
	if (ret < 0) {
		if (ts->last_err)
			return 0;
		if (ret == -EMSGSIZE)
			ts->err_too_big++;
		else
			ts->err_bad_len++;
		ts->partial = 1;
		ts->partial_bytes = avail;
		ts->partial_need = 0;
		ts->last_err = -ret;
		kcm__parse_error_event(ts, slot, -ret);
		return 1;
	}
	if (first == 0 && avail)
		ts->need_more_hdr++;
	/* 0: header incomplete; first > avail: body incomplete; else the batch is whole */
	ts->partial = avail && (first == 0 || first > avail);
	ts->partial_bytes = ts->partial ? avail : 0;
	ts->partial_need = ts->partial ? first : 0;
	return 1;
}

#endif /* KCM_ACCOUNT_H */
