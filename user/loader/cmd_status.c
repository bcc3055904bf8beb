// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * kcm-loader status: what the kernel really has. Programs come from BPF_PROG_QUERY on
 * each map, members and transports from the sockmaps themselves, cross-checked with
 * the info maps; anything that disagrees is reported as stale.
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "kcm.h"
#include "kcm_shared.h"
#include "json.h"
#include "loader.h"
#include "pinned.h"
#include "pins.h"

static const char *attach_name(enum bpf_attach_type t)
{
	return t == BPF_SK_SKB_STREAM_PARSER ? "stream_parser" :
	       t == BPF_SK_SKB_STREAM_VERDICT ? "stream_verdict" : "msg_verdict";
}

static __u32 prog_id(int fd)
{
	struct bpf_prog_info info = { 0 };
	__u32 len = sizeof(info);

	if (fd < 0 || bpf_obj_get_info_by_fd(fd, &info, &len))
		return 0;
	return info.id;
}

/* Programs attached to @map_fd as reported by the kernel; @want is the expected one. */
static void show_attached(const char *map, int map_fd, enum bpf_attach_type type, __u32 want,
			  int *problems)
{
	__u32 ids[4] = { 0 }, cnt = 4, flags = 0;
	char pname[BPF_OBJ_NAME_LEN] = "-";
	bool ok;

	if (bpf_prog_query(map_fd, type, 0, &flags, ids, &cnt))
		cnt = 0;
	if (cnt) {
		struct bpf_prog_info info = { 0 };
		__u32 len = sizeof(info);
		int fd = bpf_prog_get_fd_by_id(ids[0]);

		if (fd >= 0 && !bpf_obj_get_info_by_fd(fd, &info, &len))
			snprintf(pname, sizeof(pname), "%s", info.name);
		if (fd >= 0)
			close(fd);
	}
	ok = cnt == 1 && ids[0] == want;
	if (!ok)
		(*problems)++;
	if (env.json) {
		json_start_object(NULL);
		json_string("map", map);
		json_string("attach_type", attach_name(type));
		json_uint("prog_id", cnt ? ids[0] : 0);
		json_string("prog_name", pname);
		json_uint("pinned_prog_id", want);
		json_bool("ok", ok);
		json_end_object();
	} else {
		printf("    %-10s %-14s prog %u %s%s\n", map, attach_name(type), cnt ? ids[0] : 0,
		       pname, ok ? "" : cnt ? "  (NOT the pinned program)" : "  (NOTHING ATTACHED)");
	}
}

static void show_transports(struct pinned *p, int *stale)
{
	struct kcm_transport_info info;
	char local[64], remote[64];
	__u64 cookie;

	if (env.json)
		json_start_array("transports");
	else
		printf("  transports:\n");
	for (__u32 slot = 0; slot < KCM_MAX_TRANSPORTS; slot++) {
		bool has_info = !bpf_map_lookup_elem(p->map[KCM_MAP_TRANSPORT_INFO], &slot, &info) &&
				info.cookie;
		int map = p->parser_map[has_info && info.parser < KCM_MAX_PARSERS ? info.parser : 0];
		bool in_map = map >= 0 && !bpf_map_lookup_elem(map, &slot, &cookie);
		const char *state;

		if (!in_map && !has_info)
			continue;
		state = in_map && has_info && info.cookie == cookie ? "attached" :
			in_map ? "attached-unrecorded" : "stale";
		if (strcmp(state, "attached"))
			(*stale)++;
		if (!has_info)
			memset(&info, 0, sizeof(info));
		fmt_addr(local, sizeof(local), info.family, info.local_addr, info.local_port);
		fmt_addr(remote, sizeof(remote), info.family, info.remote_addr, info.remote_port);
		if (env.json) {
			json_start_object(NULL);
			json_uint("slot", slot);
			json_uint("cookie", in_map ? cookie : info.cookie);
			json_string("state", state);
			json_string("local", local);
			json_string("remote", remote);
			json_uint("pid", info.pid);
			json_int("fd", info.fd);
			json_bool("owner_alive", pid_alive(info.pid));
			json_uint("parser", info.parser);
			json_end_object();
		} else {
			printf("    slot %-4u cookie %-8llu %s -> %s  pid %u fd %d  parser %u  %s\n",
			       slot, (unsigned long long)(in_map ? cookie : info.cookie), local, remote,
			       info.pid, info.fd, info.parser, state);
		}
	}
	if (env.json)
		json_end_array();
}

static void show_members(struct pinned *p, int ncpu, int *stale)
{
	struct kcm_member_counters *mc = calloc(ncpu, sizeof(*mc));
	struct kcm_member_info info;
	__u64 cookie;

	if (env.json)
		json_start_array("members");
	else
		printf("  KCM sockets:\n");
	for (__u32 slot = 0; mc && slot < KCM_MAX_MEMBERS; slot++) {
		bool in_map = !bpf_map_lookup_elem(p->map[KCM_MAP_GROUP], &slot, &cookie);
		bool has_info = !bpf_map_lookup_elem(p->map[KCM_MAP_MEMBER_INFO], &slot, &info) &&
				info.cookie;
		__u64 msgs = 0, bytes = 0;
		const char *state;

		if (!in_map && !has_info)
			continue;
		if (has_info && info.hold)
			continue; /* the flow controller's hold queue: "flow" shows what it holds */
		if (!bpf_map_lookup_elem(p->map[KCM_MAP_MEMBER_COUNTERS], &slot, mc))
			for (int c = 0; c < ncpu; c++) {
				msgs += mc[c].msgs;
				bytes += mc[c].bytes;
			}
		state = !(in_map && has_info && info.cookie == cookie) ? "stale" :
			info.enabled ? "receiving" : "recv-disabled";
		if (!strcmp(state, "stale"))
			(*stale)++;
		if (env.json) {
			json_start_object(NULL);
			json_uint("slot", slot);
			json_uint("cookie", in_map ? cookie : info.cookie);
			json_string("state", state);
			json_uint("pid", has_info ? info.pid : 0);
			json_uint("rx_msgs", msgs);
			json_uint("rx_bytes", bytes);
			json_end_object();
		} else {
			printf("    slot %-3u cookie %-8llu pid %-7u %-13s %llu msgs %llu bytes\n", slot,
			       (unsigned long long)(in_map ? cookie : info.cookie),
			       has_info ? info.pid : 0, state, (unsigned long long)msgs,
			       (unsigned long long)bytes);
		}
	}
	free(mc);
	if (env.json)
		json_end_array();
}

static void show_counters(struct pinned *p, int ncpu)
{
	struct kcm_counters t = pinned_counters(p, ncpu);

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

static void show_parsers(struct pinned *p)
{
	if (env.json)
		json_start_array("parsers");
	else
		printf("  parsers:\n");
	for (int id = 0; id < KCM_MAX_PARSERS; id++) {
		const struct kcm_parser_info *pi = &p->parser[id];

		if (!pi->prog_id)
			continue;
		if (env.json) {
			json_start_object(NULL);
			json_uint("id", id);
			json_string("name", pi->name);
			json_uint("prog_id", pi->prog_id);
			json_string("object", pi->path);
			json_end_object();
		} else {
			printf("    %-3d %-16s prog %-6u %s\n", id, pi->name, pi->prog_id, pi->path);
		}
	}
	if (env.json)
		json_end_array();
}

/* Returns 0 when the mux is healthy, 1 when something is stale or missing. */
static int show_mux(const char *name, int ncpu)
{
	struct kcm_config cfg = { 0 };
	struct kcm_framing f;
	struct pinned p;
	int problems = 0, stale = 0;
	const char *state;
	char spec[64] = "?";
	__u32 key = 0;

	pinned_open(name, &p);
	if (p.map[KCM_MAP_CONFIG] >= 0 && !bpf_map_lookup_elem(p.map[KCM_MAP_CONFIG], &key, &cfg)) {
		f = (struct kcm_framing){ cfg.len_offset, cfg.len_size, cfg.big_endian,
					  cfg.len_adjust };
		kcm_framing_format(&f, spec, sizeof(spec));
		if (cfg.parsers)
			snprintf(spec, sizeof(spec), "parsers");
	}
	state = p.missing ? "incomplete" :
		cfg.owner_pid && !pid_alive(cfg.owner_pid) ? "orphaned" : "ok";
	if (env.json) {
		json_start_object(NULL);
		json_string("name", name);
		json_string("framing", spec);
		if (cfg.splitter[0])
			json_string("splitter", cfg.splitter);
		else
			json_null("splitter");
		json_uint("max_msg", cfg.max_msg);
		json_uint("batch", cfg.batch);
		json_string("policy", cfg.policy == KCM_STEER_BYTES ? "bytes" : "messages");
		json_uint("owner_pid", cfg.owner_pid);
		json_uint("generation", cfg.generation);
	} else {
		printf("mux %s: framing %s%s%s, max %u, batch %u, policy %s, %s\n", name, spec,
		       cfg.splitter[0] ? ", splitter " : "", cfg.splitter, cfg.max_msg, cfg.batch, cfg.policy == KCM_STEER_BYTES ? "bytes" : "messages",
		       cfg.owner_pid ? "owned by a program" : "persistent");
	}
	if (p.missing) {
		if (env.json) {
			json_string("state", state);
			json_string("missing", p.first_missing);
			json_end_object();
		} else {
			printf("  state: incomplete (no %s): `kcm-loader clean` removes it\n",
			       p.first_missing);
		}
		pinned_close(&p);
		return 1;
	}
	if (env.json)
		json_start_array("programs");
	else
		printf("  programs (as the kernel reports them):\n");
	show_attached("transports", p.map[KCM_MAP_TRANSPORTS], BPF_SK_SKB_STREAM_PARSER,
		      cfg.parsers ? p.parser[0].prog_id : prog_id(p.prog[KCM_PROG_PARSER]),
		      &problems);
	show_attached("transports", p.map[KCM_MAP_TRANSPORTS], BPF_SK_SKB_STREAM_VERDICT,
		      prog_id(p.prog[KCM_PROG_VERDICT]), &problems);
	for (int id = 1; id < KCM_MAX_PARSERS; id++) {
		char map[32];

		if (!p.parser[id].prog_id)
			continue;
		snprintf(map, sizeof(map), KCM_PARSER_MAP_FMT, id);
		if (p.parser_map[id] < 0) {
			problems++;
			continue;
		}
		show_attached(map, p.parser_map[id], BPF_SK_SKB_STREAM_PARSER, p.parser[id].prog_id,
			      &problems);
		show_attached(map, p.parser_map[id], BPF_SK_SKB_STREAM_VERDICT,
			      prog_id(p.prog[KCM_PROG_VERDICT]), &problems);
	}
	show_attached("group", p.map[KCM_MAP_GROUP], BPF_SK_SKB_STREAM_VERDICT,
		      prog_id(p.prog[KCM_PROG_REQUEUE]), &problems);
	if (env.json)
		json_end_array();
	if (cfg.parsers)
		show_parsers(&p);
	show_transports(&p, &stale);
	show_members(&p, ncpu, &stale);
	show_counters(&p, ncpu);
	show_flow(name);
	if (problems)
		state = "broken";
	if (env.json) {
		json_uint("stale_entries", stale);
		json_string("state", state);
		json_end_object();
	} else {
		printf("  state: %s%s\n", state,
		       !strcmp(state, "orphaned") ? " (its program exited): `kcm-loader clean`" :
		       stale ? " (some entries are stale: their sockets closed)" : "");
	}
	pinned_close(&p);
	return strcmp(state, "ok") ? 1 : 0;
}

int cmd_status(int argc, char **argv)
{
	int ncpu = libbpf_num_possible_cpus(), n = 0, ret;
	struct dirent *de;
	DIR *d;

	ret = json_help_options("status", argc, argv,
		"Usage: kcm-loader status [NAME] [--json]\n\n"
		"Show each mux: framing, the programs the kernel reports attached to\n"
		"its maps, its transports and KCM sockets with their counters, and\n"
		"anything stale. Exit 1 when NAME does not exist.\n");
	if (ret >= 0)
		return ret;
	if (argc - optind > 1)
		return usage_error("status", "expected at most one NAME");
	if (ncpu <= 0)
		return fail("failed to count possible CPUs: %s", strerror(-ncpu));
	if (optind < argc) {
		char path[256];
		int err = pinned_name_arg("status", argv[optind], path, sizeof(path));

		if (err)
			return err;
		if (env.json)
			json_start_array(NULL);
		show_mux(argv[optind], ncpu);
		if (env.json) {
			json_end_array();
			json_done();
		}
		return EXIT_OK;
	}
	d = opendir(KCM_PIN_ROOT);
	if (!d && errno != ENOENT)
		return fail("failed to read %s: %s%s", KCM_PIN_ROOT, strerror(errno),
			    errno == EACCES ? " (only root may read muxes)" : "");
	if (env.json)
		json_start_array(NULL);
	while (d && (de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		show_mux(de->d_name, ncpu);
		n++;
	}
	if (d)
		closedir(d);
	if (env.json) {
		json_end_array();
		json_done();
	} else if (!n) {
		printf("no muxes (nothing under %s)\n", KCM_PIN_ROOT);
	}
	return EXIT_OK;
}
