// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Parser programs: load a user's stream parser object, refuse what cannot work with a
 * message that says why, and give each parser a transport map of its own in the mux.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "internal.h"

#define LOG_SIZE (1 << 20)

/* Helpers that change the packet: strparser must see the bytes it will deliver. */
static const struct {
	int id;
	const char *name;
} modifying_helpers[] = {
	{ BPF_FUNC_skb_store_bytes, "bpf_skb_store_bytes" },
	{ BPF_FUNC_l3_csum_replace, "bpf_l3_csum_replace" },
	{ BPF_FUNC_l4_csum_replace, "bpf_l4_csum_replace" },
	{ BPF_FUNC_skb_change_proto, "bpf_skb_change_proto" },
	{ BPF_FUNC_skb_change_tail, "bpf_skb_change_tail" },
	{ BPF_FUNC_skb_pull_data, "bpf_skb_pull_data" },
	{ BPF_FUNC_skb_change_head, "bpf_skb_change_head" },
	{ BPF_FUNC_skb_adjust_room, "bpf_skb_adjust_room" },
};

static const char *modifies_packet(const struct bpf_program *prog)
{
	const struct bpf_insn *insn = bpf_program__insns(prog);
	size_t n = bpf_program__insn_cnt(prog);

	for (size_t i = 0; i < n; i++) {
		if (insn[i].code != (BPF_JMP | BPF_CALL) || insn[i].src_reg != 0)
			continue;
		for (size_t h = 0; h < sizeof(modifying_helpers) / sizeof(modifying_helpers[0]); h++)
			if (insn[i].imm == modifying_helpers[h].id)
				return modifying_helpers[h].name;
	}
	return NULL;
}

/*
 * The verifier log trimmed to what a person acts on: the last instruction it checked
 * and the reason it gave (the lines after it, without the statistics).
 */
static void log_trim(const char *log, char *out, size_t len)
{
	const char *last_insn = NULL, *p = log, *end;
	size_t n;

	for (; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL) {
		unsigned int insn;
		char c;

		if (sscanf(p, "%u: %c", &insn, &c) == 2 && c == '(')
			last_insn = p;
	}
	p = last_insn ? last_insn : log;
	end = strstr(p, "processed ");
	if (!end)
		end = p + strlen(p);
	while (end > p && (end[-1] == '\n' || end[-1] == ' '))
		end--;
	n = (size_t)(end - p) < len - 1 ? (size_t)(end - p) : len - 1;
	memcpy(out, p, n);
	out[n] = '\0';
	for (char *c = out; *c; c++)
		if (*c == '\n')
			*c = ' ';
}

/* The object's one stream parser; the others are not loaded. */
static struct bpf_program *find_parser(struct bpf_object *obj, const char *path, int *err)
{
	struct bpf_program *prog, *parser = NULL;
	const char *kcm_style = NULL;
	int count = 0;

	bpf_object__for_each_program(prog, obj) {
		const char *sec = bpf_program__section_name(prog);

		if (bpf_program__type(prog) == BPF_PROG_TYPE_SK_SKB &&
		    bpf_program__expected_attach_type(prog) == BPF_SK_SKB_STREAM_PARSER) {
			parser = prog;
			count++;
			continue;
		}
		if (!strncmp(sec, "socket", 6))
			kcm_style = sec;
		bpf_program__set_autoload(prog, false);
	}
	if (count == 1)
		return parser;
	if (count > 1) {
		*err = kcm_fail(-EINVAL, "%s has %d stream parsers (SEC(\"sk_skb/stream_parser\")); "
				"a parser object must have one", path, count);
	} else if (kcm_style) {
		*err = kcm_fail(-EINVAL, "%s is an AF_KCM parser (SEC(\"%s\"), a socket filter that "
				"reads at offset 0); sockmap needs SEC(\"sk_skb/stream_parser\") and "
				"reads relative to the message start: include kcm_parser.h, wrap the "
				"function in KCM_PARSER(name) and replace load_word(skb, 0) with "
				"kcm_load_be32(ctx, 0) (the comment at the top of kcm_parser.h)", path, kcm_style);
	} else {
		*err = kcm_fail(-ENOENT, "%s has no stream parser: no program in "
				"SEC(\"sk_skb/stream_parser\"); write one with KCM_PARSER(name) from "
				"kcm_parser.h (the comment at its top says how)", path);
	}
	return NULL;
}

/* Load the parser of @path; returns its fd and fills @info. */
int kcm_parser_load(struct kcm_mux *mux, const char *path, struct kcm_parser_info *info)
{
	struct bpf_prog_info pi = { 0 };
	__u32 pi_len = sizeof(pi);
	struct bpf_program *prog;
	struct bpf_object *obj;
	const char *helper;
	char *log = NULL, why[512];
	int err = 0, fd = -1;

	if (access(path, R_OK))
		return kcm_fail(-errno, "cannot read parser object %s", path);
	obj = bpf_object__open_file(path, NULL);
	if (!obj)
		return kcm_fail(-errno, "failed to open parser object %s (not a BPF ELF object?)",
				path);
	prog = find_parser(obj, path, &err);
	if (!prog)
		goto out;
	helper = modifies_packet(prog);
	if (helper) {
		err = kcm_fail(-EINVAL, "%s: parser %s calls %s, which modifies the packet; a "
			       "stream parser must only read (bpf_skb_load_bytes, kcm_load_*)",
			       path, bpf_program__name(prog), helper);
		goto out;
	}
	err = kcm_shared_maps_reuse(obj, "kcm_", mux->map_fd, path);
	if (err)
		goto out;
	log = calloc(1, LOG_SIZE);
	if (log)
		bpf_program__set_log_buf(prog, log, LOG_SIZE);
	if (bpf_object__load(obj)) {
		err = -errno;
		if (log && log[0]) { /* the verifier says EACCES too: its log is the cause */
			log_trim(log, why, sizeof(why));
			kcm_fail(err, "the verifier rejected parser %s in %s: %s", bpf_program__name(prog),
				 path, why);
		} else if (err == -EPERM || err == -EACCES) {
			kcm_fail(err, "failed to load parser %s (needs CAP_BPF and CAP_NET_ADMIN, "
				 "or root)", path);
		} else {
			kcm_fail(err, "failed to load parser %s", path);
		}
		goto out;
	}
	fd = fcntl(bpf_program__fd(prog), F_DUPFD_CLOEXEC, 0);
	if (fd < 0 || bpf_obj_get_info_by_fd(fd, &pi, &pi_len)) {
		err = kcm_fail(-errno, "failed to read parser %s", path);
		goto out;
	}
	memset(info, 0, sizeof(*info));
	info->prog_id = pi.id;
	memcpy(info->tag, pi.tag, sizeof(info->tag));
	snprintf(info->name, sizeof(info->name), "%s", bpf_program__name(prog));
	snprintf(info->path, sizeof(info->path), "%s", path);
out:
	if (err && fd >= 0)
		close(fd);
	bpf_object__close(obj);
	free(log);
	return err ? err : fd;
}

int kcm_parser_record(struct kcm_mux *mux, unsigned int id, const struct kcm_parser_info *info)
{
	if (bpf_map_update_elem(mux->map_fd[KCM_MAP_PARSERS], &id, info, BPF_ANY))
		return kcm_fail(-errno, "failed to record parser %u", id);
	return 0;
}

/* The transport map of parser @parser_id, opened from the pins on first use. */
int kcm_transport_map(struct kcm_mux *mux, unsigned int parser_id)
{
	char file[32], path[256];

	if (parser_id == 0)
		return mux->map_fd[KCM_MAP_TRANSPORTS];
	if (parser_id >= KCM_MAX_PARSERS)
		return -EINVAL;
	if (mux->parser_map[parser_id] >= 0 || !mux->name[0])
		return mux->parser_map[parser_id] >= 0 ? mux->parser_map[parser_id] : -ENOENT;
	snprintf(file, sizeof(file), KCM_PARSER_MAP_FMT, parser_id);
	if (kcm_pin_path(path, sizeof(path), mux->name, file))
		return -ENAMETOOLONG;
	mux->parser_map[parser_id] = bpf_obj_get(path);
	return mux->parser_map[parser_id] >= 0 ? mux->parser_map[parser_id] : -errno;
}

/* Parser ids of the same program (by tag and name) are shared: returns it, or -ENOENT. */
static int parser_find(struct kcm_mux *mux, const struct kcm_parser_info *want, int *free_id)
{
	struct kcm_parser_info info;

	*free_id = -1;
	for (__u32 id = 0; id < KCM_MAX_PARSERS; id++) {
		if (bpf_map_lookup_elem(mux->map_fd[KCM_MAP_PARSERS], &id, &info))
			continue;
		if (!info.prog_id) {
			if (*free_id < 0 && id > 0)
				*free_id = id;
			continue;
		}
		if (!memcmp(info.tag, want->tag, sizeof(info.tag)) &&
		    !strncmp(info.name, want->name, sizeof(info.name)))
			return id;
	}
	return -ENOENT;
}

/* A new transport map for @prog_fd, with the mux's verdict, pinned with the mux. */
static int parser_map_create(struct kcm_mux *mux, unsigned int id, int prog_fd)
{
	char file[32], path[256];
	int map, err = 0;

	map = bpf_map_create(BPF_MAP_TYPE_SOCKMAP, "kcm_transports", sizeof(__u32), sizeof(__u64),
			     KCM_MAX_TRANSPORTS, NULL);
	if (map < 0)
		return kcm_fail(-errno, "failed to create the transport map of parser %u", id);
	if (bpf_prog_attach(prog_fd, map, BPF_SK_SKB_STREAM_PARSER, 0) ||
	    bpf_prog_attach(mux->prog_fd[KCM_PROG_VERDICT], map, BPF_SK_SKB_STREAM_VERDICT, 0))
		err = kcm_fail(-errno, "failed to attach parser %u to its transport map", id);
	snprintf(file, sizeof(file), KCM_PARSER_MAP_FMT, id);
	if (!err && mux->name[0]) {
		err = kcm_pin_path(path, sizeof(path), mux->name, file);
		if (!err && (bpf_obj_pin(map, path) || chmod(path, 0600)))
			err = kcm_fail(-errno, "failed to pin %s", path);
	}
	if (err) {
		close(map);
		return err;
	}
	mux->parser_map[id] = map;
	return 0;
}

int kcm_parser_open(struct kcm_mux *mux, const char *path)
{
	struct kcm_parser_info info;
	int err, fd, id, free_id;

	if (!mux || !path) {
		errno = EINVAL;
		return -1;
	}
	err = kcm_writable(mux);
	if (!err)
		err = kcm_local_only(mux, "kcm_parser_open()");
	if (err)
		goto fail;
	if (!strcmp(mux->cfg.splitter, KCM_SPLIT_PROG)) {
		err = kcm_fail(-EOPNOTSUPP, "mux readers split messages by running its own parser "
			       "program%s, so transports cannot have parsers of their own (that "
			       "needs FIONREAD for UDP sockets in a sockmap: kcm-loader check, udp-members)",
			       kcm_kernel_udp_inq() ? "" : " (this kernel has no FIONREAD for UDP "
			       "sockets in a sockmap)");
		goto fail;
	}
	if (mux->cfg.splitter[0]) {
		err = kcm_fail(-EOPNOTSUPP, "mux batches and splits messages with the '%s' parser; "
			       "transports cannot have parsers of their own (create it without a "
			       "splitter)", mux->cfg.splitter);
		goto fail;
	}
	if (!mux->cfg.parsers) {
		err = kcm_fail(-EOPNOTSUPP, "mux%s%s finds messages with a length prefix, not parser "
			       "programs; create it with a parser (kcm_mux_opts.parser, kcm-loader "
			       "create --prog or --frame) to attach parser %s",
			       mux->name[0] ? " " : "", mux->name, path);
		goto fail;
	}
	fd = kcm_parser_load(mux, path, &info);
	if (fd < 0) {
		err = fd;
		goto fail;
	}
	err = kcm_mux_lock(mux);
	if (err) {
		close(fd);
		goto fail;
	}
	id = parser_find(mux, &info, &free_id);
	if (id < 0 && free_id < 0) {
		err = kcm_fail(-ENOSPC, "mux has %d parsers already", KCM_MAX_PARSERS);
	} else if (id < 0) {
		id = free_id;
		err = parser_map_create(mux, id, fd);
		if (!err)
			err = kcm_parser_record(mux, id, &info);
	} else {
		err = kcm_transport_map(mux, id) < 0 ?
			kcm_fail(-ENOENT, "transport map of parser %d is gone", id) : 0;
	}
	kcm_mux_unlock(mux);
	close(fd); /* the transport map holds the program */
	if (!err)
		return id;
fail:
	errno = -err;
	return -1;
}
