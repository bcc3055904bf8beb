// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * kcm-loader status: what the kernel really has, as libkcm's inspection API reads it
 * (kcm.h): programs from BPF_PROG_QUERY on each map, KCM sockets and transports from the
 * sockmaps themselves, cross-checked with the records; anything that disagrees is
 * reported as stale. This file only prints.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "kcm.h"
#include "format.h"
#include "json.h"
#include "loader.h"

static int show_program(const struct kcm_program_status *p, void *ctx)
{
	(void)ctx;
	if (env.json) {
		json_start_object(NULL);
		json_string("map", p->map);
		json_string("attach_type", p->attach_type);
		json_uint("prog_id", p->prog_id);
		json_string("prog_name", p->prog_id ? p->prog_name : "-");
		json_uint("pinned_prog_id", p->pinned_prog_id);
		json_bool("ok", p->ok);
		json_end_object();
	} else {
		printf("    %-10s %-14s prog %u %s%s\n", p->map, p->attach_type, p->prog_id,
		       p->prog_id ? p->prog_name : "-",
		       p->ok ? "" : p->prog_id ? "  (NOT the pinned program)" : "  (NOTHING ATTACHED)");
	}
	return 0;
}

static int show_parser(const struct kcm_parser_status *p, void *ctx)
{
	(void)ctx;
	if (env.json) {
		json_start_object(NULL);
		json_uint("id", p->id);
		json_string("name", p->name);
		json_uint("prog_id", p->prog_id);
		json_string("object", p->path);
		json_end_object();
	} else {
		printf("    %-3u %-16s prog %-6u %s\n", p->id, p->name, p->prog_id, p->path);
	}
	return 0;
}

static int show_transport(const struct kcm_transport_status *t, void *ctx)
{
	char local[64], remote[64];

	(void)ctx;
	fmt_sockaddr(local, sizeof(local), &t->local);
	fmt_sockaddr(remote, sizeof(remote), &t->remote);
	if (env.json) {
		json_start_object(NULL);
		json_uint("slot", t->slot);
		json_uint("cookie", t->cookie);
		json_string("state", kcm_slot_state_name(t->state));
		json_string("local", local);
		json_string("remote", remote);
		json_uint("pid", t->pid);
		json_int("fd", t->fd);
		json_bool("owner_alive", t->owner_alive);
		json_uint("parser", t->parser);
		json_end_object();
	} else {
		printf("    slot %-4u cookie %-8llu %s -> %s  pid %u fd %d  parser %u  %s\n",
		       t->slot, (unsigned long long)t->cookie, local, remote, t->pid, t->fd,
		       t->parser, kcm_slot_state_name(t->state));
	}
	return 0;
}

static int show_member(const struct kcm_member_status *m, void *ctx)
{
	(void)ctx;
	if (env.json) {
		json_start_object(NULL);
		json_uint("slot", m->slot);
		json_uint("cookie", m->cookie);
		json_string("state", kcm_slot_state_name(m->state));
		json_uint("pid", m->pid);
		json_uint("rx_msgs", m->rx_msgs);
		json_uint("rx_bytes", m->rx_bytes);
		json_end_object();
	} else {
		printf("    slot %-3u cookie %-8llu pid %-7u %-13s %llu msgs %llu bytes\n", m->slot,
		       (unsigned long long)m->cookie, m->pid, kcm_slot_state_name(m->state),
		       (unsigned long long)m->rx_msgs, (unsigned long long)m->rx_bytes);
	}
	return 0;
}

static void show_counters(struct kcm_mux *mux)
{
	struct kcm_mux_counters t = { .sz = sizeof(t) };

	kcm_mux_counters(mux, &t);
	if (env.json) {
		json_start_object("counters");
		json_uint("rx_msgs", t.rx_msgs);
		json_uint("rx_bytes", t.rx_bytes);
		json_uint("rx_redirects", t.rx_redirects);
		json_uint("rx_drops", t.rx_drops);
		json_uint("err_too_big", t.err_too_big);
		json_uint("err_bad_len", t.err_bad_len);
		json_uint("need_more_hdr", t.need_more_hdr);
		json_uint("requeued_msgs", t.requeued_msgs);
		json_end_object();
	} else {
		printf("  counters: rx_msgs %llu rx_bytes %llu rx_redirects %llu rx_drops %llu\n"
		       "            err_too_big %llu err_bad_len %llu need_more_hdr %llu "
		       "requeued_msgs %llu\n",
		       (unsigned long long)t.rx_msgs, (unsigned long long)t.rx_bytes,
		       (unsigned long long)t.rx_redirects, (unsigned long long)t.rx_drops,
		       (unsigned long long)t.err_too_big, (unsigned long long)t.err_bad_len,
		       (unsigned long long)t.need_more_hdr, (unsigned long long)t.requeued_msgs);
	}
}

/* A list of the mux's @what ("programs"...), one line or object per entry. */
#define SHOW_LIST(key, title, foreach, fn, mux)                                     \
	do {                                                                        \
		if (env.json)                                                       \
			json_start_array(key);                                      \
		else                                                                \
			printf("  %s:\n", title);                                   \
		foreach(mux, fn, NULL);                                             \
		if (env.json)                                                       \
			json_end_array();                                           \
	} while (0)

static void show_config(const char *name, const struct kcm_mux_state *st)
{
	const char *policy = st->policy == KCM_POLICY_BYTES ? "bytes" : "messages";

	if (env.json) {
		json_start_object(NULL);
		json_string("name", name);
		json_string("framing", st->framing);
		if (st->splitter[0])
			json_string("splitter", st->splitter);
		else
			json_null("splitter");
		json_uint("max_msg", st->max_msg);
		json_uint("batch", st->batch);
		json_string("policy", policy);
		json_uint("owner_pid", st->owner_pid);
		json_uint("generation", st->generation);
	} else {
		printf("mux %s: framing %s%s%s, max %u, batch %u, policy %s, %s\n", name,
		       st->framing, st->splitter[0] ? ", splitter " : "", st->splitter, st->max_msg,
		       st->batch, policy, st->owner_pid ? "owned by a program" : "persistent");
	}
}

/* Returns 0 when the mux is healthy, 1 otherwise. */
static int show_mux(const char *name, void *ctx)
{
	struct kcm_mux_open_opts oo = { .sz = sizeof(oo), .inspect = true };
	struct kcm_mux_state st = { .sz = sizeof(st) };
	struct kcm_mux *mux = kcm_mux_open_opts(name, &oo);
	const char *state;

	(void)ctx;
	if (!mux || kcm_mux_state(mux, &st)) {
		fail_lib("failed to read mux", errno);
		kcm_mux_close(mux);
		return 1; /* the others are still shown */
	}
	show_config(name, &st);
	state = kcm_mux_health_name(st.health);
	if (st.health == KCM_MUX_INCOMPLETE) {
		if (env.json) {
			json_string("state", state);
			json_string("missing", st.missing);
			json_end_object();
		} else {
			printf("  state: incomplete (no %s): `kcm-loader clean` removes it\n",
			       st.missing);
		}
		kcm_mux_close(mux);
		return 1;
	}
	SHOW_LIST("programs", "programs (as the kernel reports them)", kcm_program_foreach,
		  show_program, mux);
	if (!strcmp(st.framing, "parsers"))
		SHOW_LIST("parsers", "parsers", kcm_parser_foreach, show_parser, mux);
	SHOW_LIST("transports", "transports", kcm_transport_foreach, show_transport, mux);
	SHOW_LIST("members", "KCM sockets", kcm_member_foreach, show_member, mux);
	show_counters(mux);
	show_flow(name);
	if (env.json) {
		json_uint("stale_entries", st.stale);
		json_string("state", state);
		json_end_object();
	} else {
		printf("  state: %s%s\n", state,
		       st.health == KCM_MUX_ORPHANED ? " (its program exited): `kcm-loader clean`" :
		       st.stale ? " (some entries are stale: their sockets closed)" : "");
	}
	kcm_mux_close(mux);
	return st.health != KCM_MUX_OK;
}

struct listing {
	int shown, not_ok;
};

static int count_mux(const char *name, void *ctx)
{
	struct listing *l = ctx;

	l->shown++;
	l->not_ok += show_mux(name, NULL);
	return 0;
}

int cmd_status(int argc, char **argv)
{
	struct listing l = { 0 };
	int ret;

	ret = json_help_options("status", argc, argv,
		"Usage: kcm-loader status [NAME] [--json]\n\n"
		"Show each mux: framing, the programs the kernel reports attached to\n"
		"its maps, its transports and KCM sockets with their counters, and\n"
		"anything stale. Exit 1 when NAME does not exist or a mux shown is not ok\n"
		"(incomplete, orphaned, broken, or made by another version).\n");
	if (ret >= 0)
		return ret;
	if (argc - optind > 1)
		return usage_error("status", "expected at most one NAME");
	if (optind < argc) {
		struct kcm_mux_open_opts oo = { .sz = sizeof(oo), .inspect = true };
		struct kcm_mux *mux;

		if (kcm_name_check(argv[optind]))
			return usage_error("status", "invalid name '%s'", argv[optind]);
		mux = kcm_mux_open_opts(argv[optind], &oo); /* no such mux: exit 1 */
		if (!mux)
			return fail_lib("failed to open mux", errno);
		kcm_mux_close(mux);
		if (env.json)
			json_start_array(NULL);
		ret = show_mux(argv[optind], NULL);
		if (env.json) {
			json_end_array();
			json_done();
		}
		return ret ? EXIT_FAIL : EXIT_OK;
	}
	/* not there: no muxes; there and unreadable: say so rather than "no muxes" */
	if (access(kcm_pin_root(), R_OK | X_OK) && errno != ENOENT)
		return fail("failed to read %s: %s%s", kcm_pin_root(), strerror(errno),
			    errno == EACCES ? " (only root may read muxes)" : "");
	if (env.json)
		json_start_array(NULL);
	kcm_mux_list(count_mux, &l);
	if (env.json) {
		json_end_array();
		json_done();
	} else if (!l.shown) {
		printf("no muxes (nothing under %s)\n", kcm_pin_root());
	}
	return l.not_ok ? EXIT_FAIL : EXIT_OK;
}
