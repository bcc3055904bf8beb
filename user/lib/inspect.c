// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Inspection (kcm.h): a mux's state, transports, KCM sockets, programs, parsers and
 * counters, read from its maps by any process that can open the pins. What
 * /proc/net/kcm and /proc/net/kcm_stats give AF_KCM users; kcm-loader status prints it.
 */
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "internal.h"

const char *kcm_mux_health_name(enum kcm_mux_health health)
{
	static const char *const names[] = { "ok", "incomplete", "orphaned", "broken",
					     "other-version" };

	return (unsigned int)health < sizeof(names) / sizeof(names[0]) ? names[health] : "?";
}

const char *kcm_slot_state_name(enum kcm_slot_state state)
{
	static const char *const names[] = { "attached", "attached-unrecorded", "stale",
					     "receiving", "recv-disabled" };

	return (unsigned int)state < sizeof(names) / sizeof(names[0]) ? names[state] : "?";
}

static bool pid_alive(pid_t pid)
{
	return pid > 0 && (kill(pid, 0) == 0 || errno == EPERM);
}

static bool valid(struct kcm_mux *mux, const void *out, size_t min)
{
	if (!mux || (out && *(const size_t *)out < min)) {
		errno = EINVAL;
		return false;
	}
	return true;
}

/* The libkcm and data-plane counters of the transport in t->slot, when they are its. */
static void transport_stats(struct kcm_mux *mux, struct kcm_transport_status *t)
{
	struct kcm_transport_stats ts;

	if (mux->map_fd[KCM_MAP_TRANSPORT_STATS] < 0 ||
	    bpf_map_lookup_elem(mux->map_fd[KCM_MAP_TRANSPORT_STATS], &t->slot, &ts) ||
	    ts.cookie != t->cookie)
		return;
	t->rx_msgs = ts.rx_msgs;
	t->rx_bytes = ts.rx_bytes;
	t->tx_msgs = ts.tx_msgs;
	t->tx_bytes = ts.tx_bytes;
	t->need_more_hdr = ts.need_more_hdr;
	t->err_too_big = ts.err_too_big;
	t->err_bad_len = ts.err_bad_len;
	t->err_timeout = ts.err_timeout;
	t->rx_drops = ts.rx_drops;
	t->lost_msgs = ts.lost_msgs;
	t->lost_bytes = ts.lost_bytes;
	t->partial = ts.partial;
	t->last_err = ts.last_err;
	t->tcp_state = ts.tcp_state;
}

int kcm_transport_foreach(struct kcm_mux *mux,
			  int (*fn)(const struct kcm_transport_status *t, void *ctx), void *ctx)
{
	struct kcm_transport_info info;
	__u64 cookie;

	if (!valid(mux, NULL, 0) || !fn || mux->map_fd[KCM_MAP_TRANSPORT_INFO] < 0) {
		errno = EINVAL;
		return -1;
	}
	for (__u32 slot = 0; slot < KCM_MAX_TRANSPORTS; slot++) {
		int state = kcm_transport_slot(mux, slot, &info, &cookie), r;
		struct kcm_transport_status t = { .sz = sizeof(t) };

		if (state < 0)
			continue;
		t.slot = slot;
		t.cookie = cookie;
		t.state = state;
		t.pid = info.pid;
		t.fd = info.cookie ? info.fd : -1;
		t.owner_alive = pid_alive(info.pid);
		t.parser = info.parser;
		kcm_sockaddr_of(&t.local, info.family, info.local_addr, info.local_port);
		kcm_sockaddr_of(&t.remote, info.family, info.remote_addr, info.remote_port);
		if (state == KCM_SLOT_ATTACHED)
			transport_stats(mux, &t);
		r = fn(&t, ctx);
		if (r)
			return r;
	}
	return 0;
}

int kcm_member_foreach(struct kcm_mux *mux,
		       int (*fn)(const struct kcm_member_status *m, void *ctx), void *ctx)
{
	int ncpu = libbpf_num_possible_cpus();
	struct kcm_member_counters *mc;
	struct kcm_member_info info;
	struct kcm_member_stats ms;
	__u64 cookie;
	int r = 0;

	if (!mux || !fn || ncpu <= 0 || mux->map_fd[KCM_MAP_GROUP] < 0 ||
	    mux->map_fd[KCM_MAP_MEMBER_INFO] < 0) {
		errno = EINVAL;
		return -1;
	}
	mc = calloc(ncpu, sizeof(*mc));
	if (!mc)
		return -1;
	for (__u32 slot = 0; !r && slot < KCM_MAX_MEMBERS; slot++) {
		int state = kcm_member_slot(mux, slot, &info, &cookie);
		struct kcm_member_status m = { .sz = sizeof(m) };

		if (state < 0 || info.hold)
			continue; /* the hold queue: kcm_mux_flow() shows what it holds */
		m.slot = slot;
		m.cookie = cookie;
		m.state = state;
		m.pid = info.pid;
		if (mux->map_fd[KCM_MAP_MEMBER_COUNTERS] >= 0 &&
		    !bpf_map_lookup_elem(mux->map_fd[KCM_MAP_MEMBER_COUNTERS], &slot, mc))
			for (int c = 0; c < ncpu; c++) {
				m.rx_msgs += mc[c].msgs;
				m.rx_bytes += mc[c].bytes;
			}
		if (state != KCM_SLOT_STALE && mux->map_fd[KCM_MAP_MEMBER_STATS] >= 0 &&
		    !bpf_map_lookup_elem(mux->map_fd[KCM_MAP_MEMBER_STATS], &slot, &ms) &&
		    ms.cookie == cookie) {
			m.tx_msgs = ms.tx_msgs;
			m.tx_bytes = ms.tx_bytes;
			m.requeued_msgs = ms.requeued_msgs;
		}
		r = fn(&m, ctx);
	}
	free(mc);
	return r;
}

static __u32 prog_id(int fd)
{
	struct bpf_prog_info info = { 0 };
	__u32 len = sizeof(info);

	if (fd < 0 || bpf_obj_get_info_by_fd(fd, &info, &len))
		return 0;
	return info.id;
}

static bool parser_info(struct kcm_mux *mux, __u32 id, struct kcm_parser_info *pi)
{
	memset(pi, 0, sizeof(*pi));
	return mux->map_fd[KCM_MAP_PARSERS] >= 0 &&
	       !bpf_map_lookup_elem(mux->map_fd[KCM_MAP_PARSERS], &id, pi) && pi->prog_id;
}

/* What the kernel reports attached to @map_fd for @type, against @want. */
static int program_one(const char *map, int map_fd, enum bpf_attach_type type, __u32 want,
		       int (*fn)(const struct kcm_program_status *p, void *ctx), void *ctx)
{
	struct kcm_program_status p = { .sz = sizeof(p), .pinned_prog_id = want };
	__u32 ids[4] = { 0 }, cnt = 4, flags = 0;

	snprintf(p.map, sizeof(p.map), "%s", map);
	p.attach_type = type == BPF_SK_SKB_STREAM_PARSER ? "stream_parser" : "stream_verdict";
	if (map_fd >= 0 && bpf_prog_query(map_fd, type, 0, &flags, ids, &cnt))
		p.query_err = errno; /* a kernel without BPF_PROG_QUERY on sockmaps */
	if (map_fd < 0 || p.query_err)
		cnt = 0;
	if (cnt) {
		struct bpf_prog_info info = { 0 };
		__u32 len = sizeof(info);
		int fd = bpf_prog_get_fd_by_id(ids[0]);

		p.prog_id = ids[0];
		if (fd >= 0 && !bpf_obj_get_info_by_fd(fd, &info, &len))
			snprintf(p.prog_name, sizeof(p.prog_name), "%s", info.name);
		if (fd >= 0)
			close(fd);
	}
	p.ok = (cnt == 1 && ids[0] == want && want) || p.query_err;
	return fn(&p, ctx);
}

int kcm_program_foreach(struct kcm_mux *mux,
			int (*fn)(const struct kcm_program_status *p, void *ctx), void *ctx)
{
	struct kcm_parser_info pi;
	__u32 verdict;
	int r;

	if (!mux || !fn) {
		errno = EINVAL;
		return -1;
	}
	verdict = prog_id(mux->prog_fd[KCM_PROG_VERDICT]);
	r = program_one("transports", mux->map_fd[KCM_MAP_TRANSPORTS], BPF_SK_SKB_STREAM_PARSER,
			mux->cfg.parsers ? (parser_info(mux, 0, &pi), pi.prog_id) :
			prog_id(mux->prog_fd[KCM_PROG_PARSER]), fn, ctx);
	if (!r)
		r = program_one("transports", mux->map_fd[KCM_MAP_TRANSPORTS],
				BPF_SK_SKB_STREAM_VERDICT, verdict, fn, ctx);
	for (__u32 id = 1; !r && id < KCM_MAX_PARSERS; id++) {
		char map[24];
		int fd;

		if (!parser_info(mux, id, &pi))
			continue;
		snprintf(map, sizeof(map), KCM_PARSER_MAP_FMT, id);
		fd = kcm_transport_map(mux, id);
		r = program_one(map, fd, BPF_SK_SKB_STREAM_PARSER, pi.prog_id, fn, ctx);
		if (!r)
			r = program_one(map, fd, BPF_SK_SKB_STREAM_VERDICT, verdict, fn, ctx);
	}
	if (!r)
		r = program_one("group", mux->map_fd[KCM_MAP_GROUP], BPF_SK_SKB_STREAM_VERDICT,
				prog_id(mux->prog_fd[KCM_PROG_REQUEUE]), fn, ctx);
	return r;
}

int kcm_parser_foreach(struct kcm_mux *mux,
		       int (*fn)(const struct kcm_parser_status *p, void *ctx), void *ctx)
{
	struct kcm_parser_info pi;
	int r = 0;

	if (!mux || !fn) {
		errno = EINVAL;
		return -1;
	}
	for (__u32 id = 0; !r && id < KCM_MAX_PARSERS; id++) {
		struct kcm_parser_status p = { .sz = sizeof(p), .id = id };

		if (!parser_info(mux, id, &pi))
			continue;
		p.prog_id = pi.prog_id;
		snprintf(p.name, sizeof(p.name), "%.*s", (int)sizeof(pi.name), pi.name);
		snprintf(p.path, sizeof(p.path), "%.*s", (int)sizeof(pi.path), pi.path);
		r = fn(&p, ctx);
	}
	return r;
}

int kcm_mux_counters(struct kcm_mux *mux, struct kcm_mux_counters *out)
{
	int ncpu = libbpf_num_possible_cpus();
	struct kcm_mux_counters t = { 0 };
	struct kcm_mux_stats ms;
	struct kcm_counters *pc;
	__u32 key = 0;

	if (!valid(mux, out, offsetof(struct kcm_mux_counters, requeued_msgs) + 8) || !out ||
	    ncpu <= 0 || mux->map_fd[KCM_MAP_COUNTERS] < 0) {
		errno = EINVAL;
		return -1;
	}
	pc = calloc(ncpu, sizeof(*pc));
	if (!pc)
		return -1;
	if (bpf_map_lookup_elem(mux->map_fd[KCM_MAP_COUNTERS], &key, pc)) {
		free(pc);
		return -1;
	}
	for (int c = 0; c < ncpu; c++) {
		t.rx_msgs += pc[c].rx_msgs;
		t.rx_bytes += pc[c].rx_bytes;
		t.rx_redirects += pc[c].rx_redirects;
		t.rx_drops += pc[c].rx_drops;
		t.err_too_big += pc[c].err_too_big;
		t.err_bad_len += pc[c].err_bad_len;
		t.need_more_hdr += pc[c].need_more_hdr;
		t.requeued_msgs += pc[c].requeued_msgs;
	}
	free(pc);
	if (mux->map_fd[KCM_MAP_MUX_STATS] >= 0 &&
	    !bpf_map_lookup_elem(mux->map_fd[KCM_MAP_MUX_STATS], &key, &ms)) {
		t.tx_msgs = ms.tx_msgs;
		t.tx_bytes = ms.tx_bytes;
		t.tx_errors = ms.tx_errors;
		t.err_timeout = ms.err_timeout;
		t.attaches = ms.attaches;
		t.unattaches = ms.unattaches;
		t.transport_failures = ms.transport_failures;
		t.auto_unattached = ms.auto_unattached;
		t.lost_msgs = ms.lost_msgs;
		t.lost_bytes = ms.lost_bytes;
	}
	COPY_OUT(out, t);
	return 0;
}

static int count_stale_transport(const struct kcm_transport_status *t, void *ctx)
{
	*(unsigned int *)ctx += t->state != KCM_SLOT_ATTACHED;
	return 0;
}

static int count_stale_member(const struct kcm_member_status *m, void *ctx)
{
	*(unsigned int *)ctx += m->state == KCM_SLOT_STALE;
	return 0;
}

static int count_bad_program(const struct kcm_program_status *p, void *ctx)
{
	*(unsigned int *)ctx += !p->ok;
	return 0;
}

int kcm_mux_state(struct kcm_mux *mux, struct kcm_mux_state *out)
{
	struct kcm_mux_state st = { 0 };
	const struct kcm_config *cfg;

	if (!valid(mux, out, offsetof(struct kcm_mux_state, config_version) + sizeof(uint32_t)) ||
	    !out) {
		errno = EINVAL;
		return -1;
	}
	cfg = &mux->cfg;
	if (!mux->inspect)
		kcm_config_read(mux); /* the generation moves */
	snprintf(st.framing, sizeof(st.framing), "?");
	if (cfg->version == KCM_CONFIG_VERSION && cfg->parsers)
		snprintf(st.framing, sizeof(st.framing), "parsers");
	else if (cfg->version == KCM_CONFIG_VERSION)
		kcm_framing_format(&mux->framing, st.framing, sizeof(st.framing));
	snprintf(st.splitter, sizeof(st.splitter), "%s", cfg->splitter);
	snprintf(st.missing, sizeof(st.missing), "%s", mux->missing);
	st.max_msg = cfg->max_msg;
	st.batch = cfg->batch;
	st.policy = cfg->policy == KCM_STEER_BYTES ? KCM_POLICY_BYTES : KCM_POLICY_MESSAGES;
	st.owner_pid = cfg->owner_pid;
	st.generation = cfg->generation;
	st.config_version = cfg->version;
	if (mux->missing[0]) {
		st.health = KCM_MUX_INCOMPLETE;
	} else if (cfg->version != KCM_CONFIG_VERSION) {
		st.health = KCM_MUX_OTHER_VERSION; /* its maps may be laid out otherwise */
	} else {
		kcm_transport_foreach(mux, count_stale_transport, &st.stale);
		kcm_member_foreach(mux, count_stale_member, &st.stale);
		kcm_program_foreach(mux, count_bad_program, &st.bad_programs);
		st.health = st.bad_programs ? KCM_MUX_BROKEN :
			    cfg->owner_pid && !pid_alive(cfg->owner_pid) ? KCM_MUX_ORPHANED :
			    KCM_MUX_OK;
	}
	COPY_OUT(out, st);
	return 0;
}

int kcm_mux_list(int (*fn)(const char *name, void *ctx), void *ctx)
{
	struct dirent *de;
	int r = 0;
	DIR *d;

	if (!fn) {
		errno = EINVAL;
		return -1;
	}
	d = opendir(kcm_pin_root());
	if (!d)
		return errno == ENOENT ? 0 : -1;
	while (!r && (de = readdir(d)))
		if (de->d_name[0] != '.' && !kcm_name_check(de->d_name))
			r = fn(de->d_name, ctx);
	closedir(d);
	return r;
}

int kcm_mux_map_fd(struct kcm_mux *mux, const char *name)
{
	for (int i = 0; mux && name && i < KCM_MAP_COUNT; i++)
		if (!strcmp(kcm_map_names[i], name) && mux->map_fd[i] >= 0)
			return mux->map_fd[i];
	errno = mux && name ? ENOENT : EINVAL;
	return -1;
}

int kcm_mux_share_maps(struct kcm_mux *mux, struct bpf_object *obj, const char *prefix)
{
	char who[192];
	int err;

	if (!mux || !obj || !prefix) {
		errno = EINVAL;
		return -1;
	}
	snprintf(who, sizeof(who), "object %s (for mux '%s')", bpf_object__name(obj), mux->name);
	err = kcm_shared_maps_reuse(obj, prefix, mux->map_fd, who);
	if (err) {
		errno = -err;
		return -1;
	}
	return 0;
}
