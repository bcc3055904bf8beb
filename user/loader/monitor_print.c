// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* kcm-loader monitor's records: health events and braking episodes, as text or JSON. */
#include <stdio.h>
#include <string.h>

#include "kcm.h"
#include "output.h"
#include "loader.h"
#include "monitor.h"

/* The text after "EVENT LOCAL -> REMOTE cookie C: ", which says what crossed what. */
static void print_detail(const struct kcm_monitor_event *e)
{
	switch (e->type) {
	case KCM_MON_SRTT:
	case KCM_MON_RTTVAR:
		print_uint(PRINT_FP, NULL, "%llu us", e->value);
		print_uint(PRINT_FP, NULL, " > %llu us", e->threshold);
		print_uint(PRINT_FP, NULL, " (cwnd %llu", e->snd_cwnd);
		print_uint(PRINT_FP, NULL, ", retrans %llu)", e->total_retrans);
		break;
	case KCM_MON_RETRANS:
		print_uint(PRINT_FP, NULL, "%llu retransmitted", e->value);
		print_uint(PRINT_FP, NULL, " >= %llu", e->threshold);
		print_uint(PRINT_FP, NULL, " (cwnd %llu", e->snd_cwnd);
		print_uint(PRINT_FP, NULL, ", in flight %llu", e->packets_out);
		print_uint(PRINT_FP, NULL, ", srtt %llu us)", e->srtt_us);
		break;
	case KCM_MON_RTO:
		print_uint(PRINT_FP, NULL, "timeout %llu in a row", e->value);
		print_uint(PRINT_FP, NULL, ", rto %llu us", e->rto_us);
		print_uint(PRINT_FP, NULL, " (cwnd %llu", e->snd_cwnd);
		print_uint(PRINT_FP, NULL, ", retrans %llu)", e->total_retrans);
		break;
	case KCM_MON_STATE:
		print_string(PRINT_FP, NULL, "%s", tcp_state_name(e->old_state));
		print_string(PRINT_FP, NULL, " -> %s", tcp_state_name(e->state));
		if (e->err)
			print_string(PRINT_FP, NULL, ": %s", strerror(e->err));
		break;
	case KCM_MON_PARSE_ERROR:
		print_string(PRINT_FP, NULL, "parser failed the transport: %s", strerror(e->err));
		break;
	default:
		print_uint(PRINT_FP, NULL, "event type %llu", e->type);
		break;
	}
}

static void print_event(const struct kcm_monitor_event *e, const char *local,
			const char *remote)
{
	open_json_object(NULL);
	print_string(PRINT_ANY, "event", "%s", kcm_monitor_event_name(e->type));
	print_uint(PRINT_JSON, "time_ns", NULL, e->time_ns);
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
void monitor_print_brake(const struct monitor *m, const struct kcm_monitor_event *e)
{
	bool brake = e->type == KCM_MON_BRAKE;
	enum print_kind on_brake = brake ? PRINT_ANY : PRINT_JSON;
	const struct kcm_flow *f = e->flow;

	open_json_object(NULL);
	print_string(PRINT_ANY, "event", "%s", kcm_monitor_event_name(e->type));
	print_string(PRINT_FP, NULL, " mux %s:", m->name);
	print_uint(PRINT_JSON, "time_ns", NULL, e->time_ns);
	print_uint(on_brake, "braked", " %llu", f->braked);
	print_uint(on_brake, "transports", " of %llu transports braked", f->transports);
	print_uint(on_brake, "unread_bytes", ", %llu B unread", f->unread_bytes);
	print_uint(on_brake, "held_bytes", " (%llu held)", f->held_bytes);
	if (!brake) {
		print_uint(PRINT_ANY, "duration_ms", " windows open again after %llu ms",
			   e->episode_ns / 1000000);
		print_uint(PRINT_ANY, "peak_braked", " (at most %llu braked", e->peak_braked);
		print_uint(PRINT_ANY, "brakes", ", %llu brakes)", e->brakes);
	}
	close_json_object();
	end_record();
}

/* One health event. */
void monitor_print_event(const struct kcm_monitor_event *e)
{
	char local[64] = "-", remote[64] = "-";

	if (e->local.ss_family) {
		fmt_sockaddr(local, sizeof(local), &e->local);
		fmt_sockaddr(remote, sizeof(remote), &e->remote);
	}
	print_event(e, local, remote);
}
