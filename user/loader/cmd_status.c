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
#include "output.h"
#include "loader.h"

static int show_program(const struct kcm_program_status *p, void *ctx)
{
	(void)ctx;
	open_json_object(NULL);
	print_string(PRINT_ANY, "map", "    %-10s", p->map);
	print_string(PRINT_ANY, "attach_type", " %-14s", p->attach_type);
	print_uint(PRINT_ANY, "prog_id", " prog %llu", p->prog_id);
	print_string(PRINT_ANY, "prog_name", " %s", p->prog_id ? p->prog_name : "-");
	print_uint(PRINT_JSON, "pinned_prog_id", NULL, p->pinned_prog_id);
	print_bool(PRINT_JSON, "ok", NULL, p->ok);
	if (p->query_err)
		print_string(PRINT_ANY, "unknown", "  (the kernel cannot say: %s)",
			     strerror(p->query_err));
	else
		print_string(PRINT_FP, NULL, "%s", p->ok ? "" : p->prog_id ?
			     "  (NOT the pinned program)" : "  (NOTHING ATTACHED)");
	print_nl();
	close_json_object();
	return 0;
}

static int show_parser(const struct kcm_parser_status *p, void *ctx)
{
	(void)ctx;
	open_json_object(NULL);
	print_uint(PRINT_ANY, "id", "    %-3llu", p->id);
	print_string(PRINT_ANY, "name", " %-16s", p->name);
	print_uint(PRINT_ANY, "prog_id", " prog %-6llu", p->prog_id);
	print_string(PRINT_ANY, "object", " %s", p->path);
	print_nl();
	close_json_object();
	return 0;
}

static int show_transport(const struct kcm_transport_status *t, void *ctx)
{
	const char *state = kcm_slot_state_name(t->state);
	char local[64], remote[64];

	(void)ctx;
	fmt_sockaddr(local, sizeof(local), &t->local);
	fmt_sockaddr(remote, sizeof(remote), &t->remote);
	open_json_object(NULL);
	print_uint(PRINT_ANY, "slot", "    slot %-4llu", t->slot);
	print_uint(PRINT_ANY, "cookie", " cookie %-8llu", t->cookie);
	print_string(PRINT_JSON, "state", NULL, state);
	print_string(PRINT_ANY, "local", " %s", local);
	print_string(PRINT_ANY, "remote", " -> %s", remote);
	print_uint(PRINT_ANY, "pid", "  pid %llu", t->pid);
	print_int(PRINT_ANY, "fd", " fd %lld", t->fd);
	print_bool(PRINT_JSON, "owner_alive", NULL, t->owner_alive);
	print_uint(PRINT_ANY, "parser", "  parser %llu", t->parser);
	print_string(PRINT_FP, NULL, "  %s", state);
	print_nl();
	close_json_object();
	return 0;
}

static int show_member(const struct kcm_member_status *m, void *ctx)
{
	const char *state = kcm_slot_state_name(m->state);

	(void)ctx;
	open_json_object(NULL);
	print_uint(PRINT_ANY, "slot", "    slot %-3llu", m->slot);
	print_uint(PRINT_ANY, "cookie", " cookie %-8llu", m->cookie);
	print_string(PRINT_JSON, "state", NULL, state);
	print_uint(PRINT_ANY, "pid", " pid %-7llu", m->pid);
	print_string(PRINT_FP, NULL, " %-13s", state);
	print_uint(PRINT_ANY, "rx_msgs", " %llu msgs", m->rx_msgs);
	print_uint(PRINT_ANY, "rx_bytes", " %llu bytes", m->rx_bytes);
	print_nl();
	close_json_object();
	return 0;
}

static void show_counters(struct kcm_mux *mux)
{
	struct kcm_mux_counters t = { .sz = sizeof(t) };

	kcm_mux_counters(mux, &t);
	open_json_object("counters");
	print_string(PRINT_FP, NULL, "%s", "  counters:");
	print_uint(PRINT_ANY, "rx_msgs", " rx_msgs %llu", t.rx_msgs);
	print_uint(PRINT_ANY, "rx_bytes", " rx_bytes %llu", t.rx_bytes);
	print_uint(PRINT_ANY, "rx_redirects", " rx_redirects %llu", t.rx_redirects);
	print_uint(PRINT_ANY, "rx_drops", " rx_drops %llu", t.rx_drops);
	print_string(PRINT_FP, NULL, "%s", "\n           ");
	print_uint(PRINT_ANY, "err_too_big", " err_too_big %llu", t.err_too_big);
	print_uint(PRINT_ANY, "err_bad_len", " err_bad_len %llu", t.err_bad_len);
	print_uint(PRINT_ANY, "need_more_hdr", " need_more_hdr %llu", t.need_more_hdr);
	print_uint(PRINT_ANY, "requeued_msgs", " requeued_msgs %llu", t.requeued_msgs);
	print_nl();
	close_json_object();
}

/* A list of the mux's entries, one line or object each, under a title. */
#define SHOW_LIST(key, title, foreach, fn, mux)                                     \
	do {                                                                        \
		open_json_array(key);                                               \
		print_string(PRINT_FP, NULL, "  %s:\n", title);                     \
		foreach(mux, fn, NULL);                                             \
		close_json_array();                                                 \
	} while (0)

/* Opens the mux's JSON object; the caller closes it. */
static void show_config(const char *name, const struct kcm_mux_state *st)
{
	open_json_object(NULL);
	print_string(PRINT_ANY, "name", "mux %s:", name);
	print_string(PRINT_ANY, "framing", " framing %s", st->framing);
	if (st->splitter[0])
		print_string(PRINT_ANY, "splitter", ", splitter %s", st->splitter);
	else
		print_null(PRINT_JSON, "splitter", NULL);
	print_uint(PRINT_ANY, "max_msg", ", max %llu", st->max_msg);
	print_uint(PRINT_ANY, "batch", ", batch %llu", st->batch);
	print_string(PRINT_ANY, "policy", ", policy %s",
		     st->policy == KCM_POLICY_BYTES ? "bytes" : "messages");
	print_uint(PRINT_JSON, "owner_pid", NULL, st->owner_pid);
	print_uint(PRINT_JSON, "generation", NULL, st->generation);
	print_string(PRINT_FP, NULL, ", %s", st->owner_pid ? "owned by a program" : "persistent");
	print_nl();
}

/* Shows mux @name through its inspect handle @mux, then closes it. Returns 0 when the
 * mux is healthy, 1 otherwise. */
static int show_open(const char *name, struct kcm_mux *mux)
{
	struct kcm_mux_state st = { .sz = sizeof(st) };
	const char *state;

	if (!mux || kcm_mux_state(mux, &st)) {
		fail_lib("failed to read mux", errno);
		kcm_mux_close(mux);
		return 1; /* the others are still shown */
	}
	show_config(name, &st);
	state = kcm_mux_health_name(st.health);
	if (st.health == KCM_MUX_INCOMPLETE) {
		print_string(PRINT_ANY, "state", "  state: %s", state);
		print_string(PRINT_ANY, "missing", " (no %s): `kcm-loader clean` removes it",
			     st.missing);
		print_nl();
		close_json_object();
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
	show_flow(mux);
	print_uint(PRINT_JSON, "stale_entries", NULL, st.stale);
	print_string(PRINT_ANY, "state", "  state: %s", state);
	print_string(PRINT_FP, NULL, "%s",
		     st.health == KCM_MUX_ORPHANED ? " (its program exited): `kcm-loader clean`" :
		     st.stale ? " (some entries are stale: their sockets closed)" : "");
	print_nl();
	close_json_object();
	kcm_mux_close(mux);
	return st.health != KCM_MUX_OK;
}

static struct kcm_mux *open_inspect(const char *name)
{
	struct kcm_mux_open_opts oo = { .sz = sizeof(oo), .inspect = true };

	return kcm_mux_open_opts(name, &oo);
}

struct listing {
	int shown, not_ok;
};

static int count_mux(const char *name, void *ctx)
{
	struct listing *l = ctx;

	l->shown++;
	l->not_ok += show_open(name, open_inspect(name));
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
		struct kcm_mux *mux;

		if (kcm_name_check(argv[optind]))
			return usage_error("status", "invalid name '%s'", argv[optind]);
		mux = open_inspect(argv[optind]); /* no such mux: exit 1 before any output */
		if (!mux)
			return fail_lib("failed to open mux", errno);
		if (env.json)
			json_start_array(NULL);
		ret = show_open(argv[optind], mux);
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
