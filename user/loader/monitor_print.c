// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* kcm-loader monitor's records: health events and braking episodes, as text or JSON. */
#include <stdio.h>
#include <string.h>
#include <bpf/bpf.h>

#include "kcm.h"
#include "kcm_health.h"
#include "output.h"
#include "loader.h"
#include "monitor.h"

static const char *event_name(__u32 type)
{
	switch (type) {
	case KCM_EV_SRTT:
		return "srtt";
	case KCM_EV_RTTVAR:
		return "rttvar";
	case KCM_EV_RETRANS:
		return "retrans";
	case KCM_EV_RTO:
		return "rto";
	case KCM_EV_STATE:
		return "state";
	case KCM_EV_PARSE_ERROR:
		return "parse_error";
	default:
		return "unknown";
	}
}

/* Parse errors come from the data plane without addresses: take them from transport_info. */
static void addrs_from_info(struct monitor *m, struct kcm_event *e)
{
	struct kcm_transport_info info;

	if (e->family || e->slot >= KCM_MAX_TRANSPORTS ||
	    bpf_map_lookup_elem(m->info_fd, &e->slot, &info) ||
	    info.cookie != e->cookie)
		return;
	e->family = info.family;
	e->local_port = info.local_port;
	e->remote_port = info.remote_port;
	memcpy(e->local_addr, info.local_addr, sizeof(e->local_addr));
	memcpy(e->remote_addr, info.remote_addr, sizeof(e->remote_addr));
}

/* The text after "EVENT LOCAL -> REMOTE cookie C: ", which says what crossed what. */
static void print_detail(const struct kcm_event *e)
{
	switch (e->type) {
	case KCM_EV_SRTT:
	case KCM_EV_RTTVAR:
		print_uint(PRINT_FP, NULL, "%llu us", e->value);
		print_uint(PRINT_FP, NULL, " > %llu us", e->threshold);
		print_uint(PRINT_FP, NULL, " (cwnd %llu", e->snd_cwnd);
		print_uint(PRINT_FP, NULL, ", retrans %llu)", e->total_retrans);
		break;
	case KCM_EV_RETRANS:
		print_uint(PRINT_FP, NULL, "%llu retransmitted", e->value);
		print_uint(PRINT_FP, NULL, " >= %llu", e->threshold);
		print_uint(PRINT_FP, NULL, " (cwnd %llu", e->snd_cwnd);
		print_uint(PRINT_FP, NULL, ", in flight %llu", e->packets_out);
		print_uint(PRINT_FP, NULL, ", srtt %llu us)", e->srtt_us);
		break;
	case KCM_EV_RTO:
		print_uint(PRINT_FP, NULL, "timeout %llu in a row", e->value);
		print_uint(PRINT_FP, NULL, ", rto %llu us", e->rto_us);
		print_uint(PRINT_FP, NULL, " (cwnd %llu", e->snd_cwnd);
		print_uint(PRINT_FP, NULL, ", retrans %llu)", e->total_retrans);
		break;
	case KCM_EV_STATE:
		print_string(PRINT_FP, NULL, "%s", tcp_state_name(e->old_state));
		print_string(PRINT_FP, NULL, " -> %s", tcp_state_name(e->state));
		if (e->err)
			print_string(PRINT_FP, NULL, ": %s", strerror(e->err));
		break;
	case KCM_EV_PARSE_ERROR:
		print_string(PRINT_FP, NULL, "parser failed the transport: %s", strerror(e->err));
		break;
	default:
		print_uint(PRINT_FP, NULL, "event type %llu", e->type);
		break;
	}
}

static void print_event(const struct kcm_event *e, const char *local, const char *remote)
{
	open_json_object(NULL);
	print_string(PRINT_ANY, "event", "%s", event_name(e->type));
	print_uint(PRINT_JSON, "time_ns", NULL, e->ts_ns);
	print_string(PRINT_ANY, "local", " %s", local);
	print_string(PRINT_ANY, "remote", " -> %s", remote);
	print_uint(PRINT_ANY, "cookie", " cookie %llu: ", e->cookie);
	print_uint(PRINT_JSON, "slot", NULL, e->slot);
	print_uint(PRINT_JSON, "value", NULL, e->value);
	print_uint(PRINT_JSON, "threshold", NULL, e->threshold);
	print_int(PRINT_JSON, "err", NULL, e->err);
	print_string(PRINT_JSON, "error", NULL, e->err ? strerror(e->err) : "");
	print_string(PRINT_JSON, "state", NULL, tcp_state_name(e->state));
	print_string(PRINT_JSON, "old_state", NULL, tcp_state_name(e->old_state));
	print_detail(e);
	open_json_object("tcp_info");
	print_uint(PRINT_JSON, "srtt_us", NULL, e->srtt_us);
	print_uint(PRINT_JSON, "rttvar_us", NULL, e->rttvar_us);
	print_uint(PRINT_JSON, "rto_us", NULL, e->rto_us);
	print_uint(PRINT_JSON, "snd_cwnd", NULL, e->snd_cwnd);
	print_uint(PRINT_JSON, "packets_out", NULL, e->packets_out);
	print_uint(PRINT_JSON, "retrans_out", NULL, e->retrans_out);
	print_uint(PRINT_JSON, "total_retrans", NULL, e->total_retrans);
	print_uint(PRINT_JSON, "bytes_acked", NULL, e->bytes_acked);
	print_uint(PRINT_JSON, "bytes_received", NULL, e->bytes_received);
	close_json_object();
	close_json_object();
	end_record();
}

/* One braking line: "brake" when the mux starts closing windows, "release" at the end. */
void monitor_print_brake(struct monitor *m, const char *what, const struct kcm_flow *f,
			__u64 now, uint64_t brakes)
{
	enum print_kind on_brake = *what == 'b' ? PRINT_ANY : PRINT_JSON;

	open_json_object(NULL);
	print_string(PRINT_ANY, "event", "%s", what);
	print_string(PRINT_FP, NULL, " mux %s:", m->name);
	print_uint(PRINT_JSON, "time_ns", NULL, now);
	print_uint(on_brake, "braked", " %llu", f->braked);
	print_uint(on_brake, "transports", " of %llu transports braked", f->transports);
	print_uint(on_brake, "unread_bytes", ", %llu B unread", f->unread_bytes);
	print_uint(on_brake, "held_bytes", " (%llu held)", f->held_bytes);
	if (*what == 'r') {
		print_uint(PRINT_ANY, "duration_ms", " windows open again after %llu ms",
			   (now - m->brake_start_ns) / 1000000);
		print_uint(PRINT_ANY, "peak_braked", " (at most %llu braked", m->brake_peak);
		print_uint(PRINT_ANY, "brakes", ", %llu brakes)", brakes);
	}
	close_json_object();
	end_record();
}

/* One health event, its addresses from the event or from transport_info. */
void monitor_print_event(struct monitor *m, struct kcm_event *e)
{
	char local[64] = "-", remote[64] = "-";

	addrs_from_info(m, e);
	if (e->family) {
		fmt_addr(local, sizeof(local), e->family, e->local_addr, e->local_port);
		fmt_addr(remote, sizeof(remote), e->family, e->remote_addr, e->remote_port);
	}
	print_event(e, local, remote);
}
