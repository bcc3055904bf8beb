// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* kcm-loader monitor's records: health events and braking episodes, as text or JSON. */
#include <stdio.h>
#include <string.h>
#include <bpf/bpf.h>

#include "kcm.h"
#include "kcm_health.h"
#include "json.h"
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

static void print_json(const struct kcm_event *e, const char *local, const char *remote)
{
	json_start_object(NULL);
	json_string("event", event_name(e->type));
	json_uint("time_ns", e->ts_ns);
	json_uint("cookie", e->cookie);
	json_uint("slot", e->slot);
	json_string("local", local);
	json_string("remote", remote);
	json_uint("value", e->value);
	json_uint("threshold", e->threshold);
	json_int("err", e->err);
	json_string("error", e->err ? strerror(e->err) : "");
	json_string("state", tcp_state_name(e->state));
	json_string("old_state", tcp_state_name(e->old_state));
	json_start_object("tcp_info");
	json_uint("srtt_us", e->srtt_us);
	json_uint("rttvar_us", e->rttvar_us);
	json_uint("rto_us", e->rto_us);
	json_uint("snd_cwnd", e->snd_cwnd);
	json_uint("packets_out", e->packets_out);
	json_uint("retrans_out", e->retrans_out);
	json_uint("total_retrans", e->total_retrans);
	json_uint("bytes_acked", e->bytes_acked);
	json_uint("bytes_received", e->bytes_received);
	json_end_object();
	json_end_object();
	json_done();
}

static void print_text(const struct kcm_event *e, const char *local, const char *remote)
{
	printf("%s %s -> %s cookie %llu: ", event_name(e->type), local, remote, U(e->cookie));
	switch (e->type) {
	case KCM_EV_SRTT:
	case KCM_EV_RTTVAR:
		printf("%u us > %u us (cwnd %u, retrans %u)\n", e->value, e->threshold,
		       e->snd_cwnd, e->total_retrans);
		break;
	case KCM_EV_RETRANS:
		printf("%u retransmitted >= %u (cwnd %u, in flight %u, srtt %u us)\n", e->value,
		       e->threshold, e->snd_cwnd, e->packets_out, e->srtt_us);
		break;
	case KCM_EV_RTO:
		printf("timeout %u in a row, rto %u us (cwnd %u, retrans %u)\n", e->value,
		       e->rto_us, e->snd_cwnd, e->total_retrans);
		break;
	case KCM_EV_STATE:
		printf("%s -> %s%s%s\n", tcp_state_name(e->old_state), tcp_state_name(e->state),
		       e->err ? ": " : "", e->err ? strerror(e->err) : "");
		break;
	case KCM_EV_PARSE_ERROR:
		printf("parser failed the transport: %s\n", strerror(e->err));
		break;
	default:
		printf("event type %u\n", e->type);
		break;
	}
	fflush(stdout);
}

/* One braking line: "brake" when the mux starts closing windows, "release" at the end. */
void monitor_print_brake(struct monitor *m, const char *what, const struct kcm_flow *f,
			__u64 now, uint64_t brakes)
{
	uint64_t ms = (now - m->brake_start_ns) / 1000000;

	if (env.json) {
		json_start_object(NULL);
		json_string("event", what);
		json_uint("time_ns", now);
		json_uint("braked", f->braked);
		json_uint("transports", f->transports);
		json_uint("unread_bytes", f->unread_bytes);
		json_uint("held_bytes", f->held_bytes);
		if (*what == 'r') {
			json_uint("duration_ms", ms);
			json_uint("peak_braked", m->brake_peak);
			json_uint("brakes", brakes);
		}
		json_end_object();
		json_done();
	} else if (*what == 'b') {
		printf("brake mux %s: %u of %u transports braked, %llu B unread (%llu held)\n",
		       m->name, f->braked, f->transports, U(f->unread_bytes), U(f->held_bytes));
	} else {
		printf("release mux %s: windows open again after %llu ms (at most %u braked, %llu "
		       "brakes)\n", m->name, U(ms), m->brake_peak, U(brakes));
	}
	fflush(stdout);
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
	if (env.json)
		print_json(e, local, remote);
	else
		print_text(e, local, remote);
}
