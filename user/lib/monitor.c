// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * kcm_monitor_open/poll/close: the health programs (kcm_health.bpf.c) loaded on the mux's
 * own maps and attached through bpf_links (they go away with this process, even when it
 * is killed); the sock_ops path where the kernel can arm transports, else the tracing
 * path; the event ring read into kcm_monitor_events; flow control's braking episodes.
 */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "kcm_health.skel.h"
#include "monitor_state.h"

const char *kcm_monitor_event_name(enum kcm_monitor_event_type type)
{
	switch (type) {
	case KCM_MON_SRTT:
		return "srtt";
	case KCM_MON_RTTVAR:
		return "rttvar";
	case KCM_MON_RETRANS:
		return "retrans";
	case KCM_MON_RTO:
		return "rto";
	case KCM_MON_STATE:
		return "state";
	case KCM_MON_PARSE_ERROR:
		return "parse_error";
	case KCM_MON_BRAKE:
		return "brake";
	case KCM_MON_RELEASE:
		return "release";
	case KCM_MON_ARMED:
		return "armed";
	case KCM_MON_ARM_FAILED:
		return "arm_failed";
	default:
		return "unknown";
	}
}

int kcm_monitor_on_ring(void *ctx, void *data, size_t size)
{
	struct kcm_monitor *m = ctx;
	struct kcm_monitor_event out = { 0 };
	struct kcm_event e = { 0 };

	memcpy(&e, data, size < sizeof(e) ? size : sizeof(e));
	/* left in the ring by an earlier run (or by the data plane while nobody listened) */
	if (e.ts_ns < m->start_ns) {
		m->stale++;
		return 0;
	}
	/* parse errors come from the data plane without addresses: take the slot's record */
	if (!e.family && e.slot < KCM_MAX_TRANSPORTS) {
		struct kcm_transport_info info;
		__u64 cookie;

		if (kcm_transport_slot(m->mux, e.slot, &info, &cookie) >= 0 &&
		    info.cookie == e.cookie) {
			e.family = info.family;
			e.local_port = info.local_port;
			e.remote_port = info.remote_port;
			memcpy(e.local_addr, info.local_addr, sizeof(e.local_addr));
			memcpy(e.remote_addr, info.remote_addr, sizeof(e.remote_addr));
		}
	}
	out.type = e.type;
	out.time_ns = e.ts_ns;
	out.cookie = e.cookie;
	out.slot = e.slot;
	out.err = e.err;
	out.value = e.value;
	out.threshold = e.threshold;
	out.state = e.state;
	out.old_state = e.old_state;
	kcm_sockaddr_of(&out.local, e.family, e.local_addr, e.local_port);
	kcm_sockaddr_of(&out.remote, e.family, e.remote_addr, e.remote_port);
	out.srtt_us = e.srtt_us;
	out.rttvar_us = e.rttvar_us;
	out.rto_us = e.rto_us;
	out.snd_cwnd = e.snd_cwnd;
	out.packets_out = e.packets_out;
	out.retrans_out = e.retrans_out;
	out.total_retrans = e.total_retrans;
	out.bytes_acked = e.bytes_acked;
	out.bytes_received = e.bytes_received;
	kcm_monitor_deliver(m, &out);
	return m->ret ? -ECANCELED : 0; /* stops ring_buffer__poll() */
}

/*
 * Braking episodes: from the first transport braked to the moment none is. Looked at
 * every poll, so an episode shorter than that shows as one RELEASE with the brakes
 * counted since the last look.
 */
static void check_brakes(struct kcm_monitor *m)
{
	struct kcm_flow f = { .sz = sizeof(f) };
	struct kcm_monitor_event e = { .flow = &f };
	__u64 now = kcm_monitor_now_ns();

	if (kcm_mux_flow(m->mux, &f))
		return;
	e.time_ns = now;
	e.brakes = f.brakes - m->brakes_seen;
	if (f.braked && !m->brake_start_ns) {
		m->brake_start_ns = now;
		m->brake_peak = 0;
		e.type = KCM_MON_BRAKE;
		kcm_monitor_deliver(m, &e);
	}
	if (f.braked > m->brake_peak)
		m->brake_peak = f.braked;
	if (!f.braked && (m->brake_start_ns || e.brakes)) {
		if (!m->brake_start_ns)
			m->brake_start_ns = now;
		e.type = KCM_MON_RELEASE;
		e.episode_ns = now - m->brake_start_ns;
		e.peak_braked = m->brake_peak;
		kcm_monitor_deliver(m, &e);
		m->brake_start_ns = 0;
		m->brakes_seen = f.brakes;
	}
}

int kcm_monitor_poll(struct kcm_monitor *m, int timeout_ms, kcm_monitor_fn fn, void *ctx)
{
	int err;

	if (!m || !fn)
		return -EINVAL;
	m->fn = fn;
	m->ctx = ctx;
	m->ret = 0;
	m->polled = 0;
	if (!m->traced && (!m->last_scan_ns ||
			   kcm_monitor_now_ns() - m->last_scan_ns >= KCM_MONITOR_RESCAN_NS)) {
		kcm_monitor_arm_new(m);
		m->last_scan_ns = kcm_monitor_now_ns();
	}
	err = m->ret ? 0 : ring_buffer__poll(m->rb, timeout_ms);
	if (!m->ret)
		check_brakes(m);
	m->fn = NULL;
	if (m->ret)
		return m->ret;
	if (err < 0 && err != -ECANCELED)
		return err;
	return m->polled;
}

int kcm_monitor_fd(const struct kcm_monitor *m)
{
	return m ? ring_buffer__epoll_fd(m->rb) : -EINVAL;
}

/* Run count and time of the programs that ran: the sock_ops one, or the tracing ones. */
static int program_cost(const struct kcm_monitor *m, struct kcm_monitor_info *sum)
{
	struct bpf_program *p = m->traced ? kcm_health_trace_prog(m->skel, 0) :
					    m->skel->progs.kcm_health;

	for (size_t i = 1; p; p = m->traced ? kcm_health_trace_prog(m->skel, i++) : NULL) {
		struct bpf_prog_info info = { 0 };
		__u32 len = sizeof(info);

		if (bpf_obj_get_info_by_fd(bpf_program__fd(p), &info, &len))
			return -errno;
		sum->prog_id = sum->prog_id ? sum->prog_id : info.id;
		sum->run_cnt += info.run_cnt;
		sum->run_time_ns += info.run_time_ns;
	}
	return 0;
}

int kcm_monitor_info(const struct kcm_monitor *m, struct kcm_monitor_info *out)
{
	struct kcm_monitor_info i = { .sz = sizeof(i) };
	int err = 0;

	if (!m || !out || out->sz < offsetof(struct kcm_monitor_info, traced) + sizeof(bool))
		return -EINVAL;
	i.traced = m->traced;
	snprintf(i.why_traced, sizeof(i.why_traced), "%s", m->why_traced);
	i.armed = m->narmed;
	i.events = m->events;
	i.stale = m->stale;
	if (m->stats_fd >= 0)
		err = program_cost(m, &i);
	COPY_OUT(out, i);
	return err;
}
