// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* A multiplexor: load the data plane, wire its programs to its maps, pin or open it. */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "internal.h"
#include "kcm.skel.h"

#define DEFAULT_MAX_MSG (64u * 1024)
#define MAX_MAX_MSG (256u * 1024 * 1024)
/* 4 MiB held about 60 queued messages and delivery fell to ~30 k msgs/s (docs/memory.md). */
#define DEFAULT_MEMBER_RCVBUF (32 << 20)
#define DEFAULT_WINDOW (2u << 20)

static int opts_check(const struct kcm_mux_opts *o, struct kcm_config *cfg)
{
	static const struct kcm_framing none = { .len_size = 1 };
	const struct kcm_framing *f = o->parser ? &none : &o->framing;

	if (o->parser && !o->splitter && o->batch > 1)
		return -EINVAL; /* one message per redirect is how members learn lengths */
	if (o->splitter && (!o->parser || !kcm_splitter_valid(o->splitter)))
		return -EINVAL;
	if (f->len_size != 1 && f->len_size != 2 && f->len_size != 3 && f->len_size != 4 &&
	    f->len_size != 8)
		return -EINVAL;
	if (f->len_offset > 4096 || f->len_adjust > (1LL << 32) || f->len_adjust < -(1LL << 32))
		return -EINVAL;
	if (o->max_msg_size > MAX_MAX_MSG || o->batch > KCM_MAX_BATCH)
		return -EINVAL;
	if (o->policy != KCM_POLICY_MESSAGES && o->policy != KCM_POLICY_BYTES)
		return -EINVAL;
	if (o->pin_name && kcm_name_check(o->pin_name))
		return -EINVAL;
	*cfg = (struct kcm_config){
		.len_offset = f->len_offset,
		.len_size = f->len_size,
		.big_endian = f->big_endian,
		.len_adjust = f->len_adjust,
		.policy = o->policy,
		.max_msg = o->max_msg_size ? o->max_msg_size : DEFAULT_MAX_MSG,
		.batch = o->batch ? o->batch : o->parser && !o->splitter ? 1 : KCM_MAX_BATCH,
		.transport_rcvbuf = o->transport_rcvbuf,
		.member_rcvbuf = o->member_rcvbuf ? o->member_rcvbuf : DEFAULT_MEMBER_RCVBUF,
		.version = KCM_CONFIG_VERSION,
		.parsers = o->parser != NULL,
		.window = o->rx_window ? o->rx_window : DEFAULT_WINDOW,
	};
	if (o->splitter)
		snprintf(cfg->splitter, sizeof(cfg->splitter), "%s", o->splitter);
	/* Without UDP FIONREAD, UDP KCM sockets could not tell messages apart: the parser
	 * splits for itself (split_prog.c), one message per redirect as before. */
	if (kcm_one_per_redirect(cfg) && !kcm_kernel_udp_inq())
		snprintf(cfg->splitter, sizeof(cfg->splitter), "%s", KCM_SPLIT_PROG);
	if (cfg->max_msg < f->len_offset + f->len_size)
		return -EINVAL;
	return 0;
}

/* @parser_fd: the program parsing the default transport map. */
static int mux_wire(struct kcm_mux *mux, int parser_fd)
{
	static const struct {
		int prog, map;
		enum bpf_attach_type type;
	} wires[] = {
		{ KCM_PROG_PARSER, KCM_MAP_TRANSPORTS, BPF_SK_SKB_STREAM_PARSER },
		{ KCM_PROG_VERDICT, KCM_MAP_TRANSPORTS, BPF_SK_SKB_STREAM_VERDICT },
		{ KCM_PROG_REQUEUE, KCM_MAP_GROUP, BPF_SK_SKB_STREAM_VERDICT },
		{ KCM_PROG_BRAKE, KCM_MAP_BRAKE_SOURCE, BPF_SK_MSG_VERDICT },
	};
	struct kcm_steer steer = { 0 };
	__u32 key = 0;

	/* Programs first: a socket takes its map's programs when it is inserted. */
	for (size_t i = 0; i < sizeof(wires) / sizeof(wires[0]); i++) {
		int prog = wires[i].prog == KCM_PROG_PARSER ? parser_fd : mux->prog_fd[wires[i].prog];

		if (!bpf_prog_attach(prog, mux->map_fd[wires[i].map], wires[i].type, 0))
			continue;
		if (errno == EINVAL && wires[i].type == BPF_SK_SKB_STREAM_PARSER)
			return kcm_fail(-errno, "failed to attach stream parser to %s map "
					"(kernel without CONFIG_BPF_STREAM_PARSER?)",
					kcm_map_names[wires[i].map]);
		return kcm_fail(-errno, "failed to attach %s to %s map",
				kcm_prog_names[wires[i].prog], kcm_map_names[wires[i].map]);
	}
	if (bpf_map_update_elem(mux->map_fd[KCM_MAP_CONFIG], &key, &mux->cfg, BPF_ANY))
		return kcm_fail(-errno, "failed to write config map");
	if (bpf_map_update_elem(mux->map_fd[KCM_MAP_STEER], &key, &steer, BPF_F_LOCK))
		return kcm_fail(-errno, "failed to write steer map");
	return 0;
}

static int mux_pin(struct kcm_mux *mux)
{
	char path[256];
	int err, lock;

	lock = kcm_pins_lock(mux->mount_bpffs);
	if (lock == -ENODEV)
		return lock; /* said why */
	if (lock < 0)
		return kcm_fail(lock, "failed to prepare %s (bpffs mounted and writable?)",
				kcm_pin_root());
	err = kcm_pin_path(path, sizeof(path), mux->name, NULL);
	if (!err && mkdir(path, 0700))
		err = kcm_fail(-errno, "failed to create %s", path); /* EEXIST: name taken */
	for (int i = 0; !err && i < KCM_PIN_COUNT; i++) {
		const char *file = kcm_pin_file(i);
		int fd = *kcm_mux_pin_fd(mux, i);

		err = kcm_pin_path(path, sizeof(path), mux->name, file);
		if (!err && bpf_obj_pin(fd, path))
			err = kcm_fail(-errno, "failed to pin %s", path);
		if (!err && chmod(path, 0600))
			err = kcm_fail(-errno, "failed to restrict %s to root", path);
	}
	if (!err && mux->split_prog >= 0)
		err = kcm_split_prog_pin(mux);
	kcm_pins_unlock(lock);
	if (err && err != -EEXIST)
		kcm_mux_unpin(mux->name);
	return err;
}

/* Options of a program built against an older kcm.h end at "persistent". */
#define OPTS_V1_SIZE (offsetof(struct kcm_mux_opts, persistent) + sizeof(bool))

struct kcm_mux *kcm_mux_create(const struct kcm_mux_opts *user_opts)
{
	struct kcm_mux_opts copy = { 0 }, *opts = &copy;
	struct kcm_parser_info pinfo;
	struct kcm_mux *mux = NULL;
	struct kcm_config cfg;
	struct kcm_bpf *skel;
	struct bpf_program *parser;
	bool use_loop;
	int err, parser_fd = -1;

	if (!user_opts || user_opts->sz < OPTS_V1_SIZE) {
		errno = EINVAL;
		return NULL;
	}
	/* fields the caller's kcm.h did not have stay zero */
	memcpy(&copy, user_opts, user_opts->sz < sizeof(copy) ? user_opts->sz : sizeof(copy));
	copy.sz = sizeof(copy);
	err = opts_check(opts, &cfg);
	if (err) {
		if (opts->splitter && !kcm_splitter_valid(opts->splitter))
			kcm_fail(err, "invalid mux options: no shipped parser is called '%s' (and "
				 "it is not '%s', the parser program itself)", opts->splitter,
				 KCM_SPLIT_PROG);
		else if (opts->splitter && !opts->parser)
			kcm_fail(err, "invalid mux options: a splitter needs a parser program");
		else
			kcm_fail(err, opts->parser && opts->batch > 1 ? "invalid mux options: a mux "
				 "with parser programs and no splitter delivers one message per "
				 "redirect (batch 1)" : "invalid mux options");
		goto fail;
	}
	if (opts->pin_name && !opts->persistent)
		cfg.owner_pid = getpid();
	skel = kcm_bpf__open();
	if (!skel) {
		err = kcm_fail(-errno, "failed to open the data plane object");
		goto fail;
	}
	skel->rodata->cfg_len_offset = cfg.len_offset;
	skel->rodata->cfg_len_size = cfg.len_size;
	skel->rodata->cfg_big_endian = cfg.big_endian;
	skel->rodata->cfg_len_adjust = cfg.len_adjust;
	skel->rodata->cfg_max_msg = cfg.max_msg;
	skel->rodata->cfg_batch = cfg.batch;
	skel->rodata->cfg_policy = cfg.policy;
	skel->rodata->cfg_window = cfg.window;
	skel->rodata->cfg_msg_cost = kcm_msg_cost(&cfg);
	skel->rodata->cfg_split = cfg.splitter[0] != 0;
	/* one parser of the two: the same scan, with bpf_loop where the kernel has it */
	use_loop = kcm_kernel_bpf_loop();
	parser = use_loop ? skel->progs.kcm_parser_loop : skel->progs.kcm_parser;
	bpf_program__set_autoload(use_loop ? skel->progs.kcm_parser : skel->progs.kcm_parser_loop,
				  false);
	err = kcm_bpf__load(skel);
	if (err) {
		err = err < 0 ? err : -errno;
		if (err == -EPERM || err == -EACCES)
			kcm_fail(err, "failed to load the data plane (needs CAP_BPF, CAP_NET_ADMIN "
				 "and CAP_PERFMON, or root)");
		else
			kcm_fail(err, "failed to load the data plane (the verifier log is above)");
		kcm_bpf__destroy(skel);
		goto fail;
	}
	mux = kcm_mux_alloc();
	if (!mux) {
		kcm_bpf__destroy(skel);
		err = -ENOMEM;
		goto fail;
	}
	mux->skel = skel;
	mux->cfg = cfg;
	kcm_mux_framing_from_cfg(mux);
	mux->map_fd[KCM_MAP_TRANSPORTS] = bpf_map__fd(skel->maps.transports);
	mux->map_fd[KCM_MAP_GROUP] = bpf_map__fd(skel->maps.group);
	mux->map_fd[KCM_MAP_STEER] = bpf_map__fd(skel->maps.steer);
	mux->map_fd[KCM_MAP_COUNTERS] = bpf_map__fd(skel->maps.counters);
	mux->map_fd[KCM_MAP_MEMBER_COUNTERS] = bpf_map__fd(skel->maps.member_counters);
	mux->map_fd[KCM_MAP_CONFIG] = bpf_map__fd(skel->maps.mux_config);
	mux->map_fd[KCM_MAP_TRANSPORT_INFO] = bpf_map__fd(skel->maps.transport_info);
	mux->map_fd[KCM_MAP_MEMBER_INFO] = bpf_map__fd(skel->maps.member_info);
	mux->map_fd[KCM_MAP_PARSERS] = bpf_map__fd(skel->maps.parsers);
	mux->map_fd[KCM_MAP_TRANSPORT_SLOT] = bpf_map__fd(skel->maps.transport_slot);
	mux->map_fd[KCM_MAP_TRANSPORT_STATS] = bpf_map__fd(skel->maps.transport_stats);
	mux->map_fd[KCM_MAP_MEMBER_STATS] = bpf_map__fd(skel->maps.member_stats);
	mux->map_fd[KCM_MAP_MUX_STATS] = bpf_map__fd(skel->maps.mux_stats);
	mux->map_fd[KCM_MAP_HEALTH_CFG] = bpf_map__fd(skel->maps.health_cfg);
	mux->map_fd[KCM_MAP_EVENTS] = bpf_map__fd(skel->maps.events);
	mux->map_fd[KCM_MAP_CREDITS] = bpf_map__fd(skel->maps.credits);
	mux->map_fd[KCM_MAP_FLOW] = bpf_map__fd(skel->maps.flow);
	mux->map_fd[KCM_MAP_BRAKE_TARGETS] = bpf_map__fd(skel->maps.brake_targets);
	mux->map_fd[KCM_MAP_BRAKE_SOURCE] = bpf_map__fd(skel->maps.brake_source);
	mux->prog_fd[KCM_PROG_PARSER] = bpf_program__fd(parser);
	mux->prog_fd[KCM_PROG_VERDICT] = bpf_program__fd(skel->progs.kcm_verdict);
	mux->prog_fd[KCM_PROG_REQUEUE] = bpf_program__fd(skel->progs.kcm_requeue);
	mux->prog_fd[KCM_PROG_BRAKE] = bpf_program__fd(skel->progs.kcm_brake);
	kcm_mux_config_mmap(mux);
	err = kcm_stats_map(mux);
	if (!err)
		err = kcm_credits_map(mux);
	if (!err && opts->parser) {
		parser_fd = kcm_parser_load(mux, opts->parser, &pinfo);
		err = parser_fd < 0 ? parser_fd : kcm_parser_record(mux, 0, &pinfo);
		if (!err && !strcmp(cfg.splitter, KCM_SPLIT_PROG))
			err = kcm_split_prog_load(mux, opts->parser);
	}
	if (!err)
		err = mux_wire(mux, opts->parser ? parser_fd : mux->prog_fd[KCM_PROG_PARSER]);
	if (parser_fd >= 0)
		close(parser_fd); /* the transport map holds it */
	if (!err && opts->pin_name) {
		snprintf(mux->name, sizeof(mux->name), "%s", opts->pin_name);
		mux->mount_bpffs = opts->mount_bpffs;
		err = mux_pin(mux);
		if (err)
			mux->name[0] = '\0'; /* not ours to unpin */
	}
	if (err) {
		kcm_mux_close(mux);
		mux = NULL;
		goto fail;
	}
	if (!opts->persistent)
		kcm_flowctl_start(mux); /* its process holds what arrives before a KCM socket */
	return mux;
fail:
	errno = -err;
	return NULL;
}

static void close_member(struct kcm_sock *ks)
{
	struct kcm_mux *mux = ks->mux;
	struct kcm_member_info none = { 0 };

	/* Our sockets leave the group when closed; forget them in the info map too (a
	 * sidecar does that for a connected mux when the connection closes). */
	if (!kcm_is_remote(mux))
		bpf_map_update_elem(mux->map_fd[KCM_MAP_MEMBER_INFO], &ks->slot, &none, BPF_ANY);
	kcm_sock_free(ks);
}

void kcm_mux_close(struct kcm_mux *mux)
{
	int saved = errno;

	if (!mux)
		return;
	kcm_flowctl_stop(mux);
	kcm_registry_drop_mux(mux, close_member);
	if (!mux->inspect && mux->map_fd[KCM_MAP_STEER] >= 0 && !kcm_mux_lock(mux)) {
		kcm_steer_sync(mux);
		kcm_mux_unlock(mux);
	}
	kcm_tx_clear(mux);
	if (mux->split_prog >= 0)
		close(mux->split_prog);
	for (int i = 0; i < KCM_MAX_PARSERS; i++)
		if (mux->parser_map[i] >= 0)
			close(mux->parser_map[i]);
	if (mux->cfg_map)
		munmap((void *)mux->cfg_map, sysconf(_SC_PAGESIZE));
	kcm_stats_unmap(mux);
	kcm_credits_unmap(mux);
	if (mux->skel) {
		kcm_bpf__destroy(mux->skel);
	} else {
		for (int i = 0; i < KCM_MAP_COUNT; i++)
			if (mux->map_fd[i] >= 0)
				close(mux->map_fd[i]);
		for (int i = 0; i < KCM_PROG_COUNT; i++)
			if (mux->prog_fd[i] >= 0)
				close(mux->prog_fd[i]);
	}
	if (mux->remote_fd >= 0)
		close(mux->remote_fd); /* the sidecar drops what this connection had */
	pthread_mutex_destroy(&mux->lock);
	pthread_mutex_destroy(&mux->remote_lock);
	pthread_rwlock_destroy(&mux->tx_lock);
	free(mux);
	errno = saved;
}

void kcm_mux_destroy(struct kcm_mux *mux)
{
	char name[KCM_NAME_MAX];

	if (!mux)
		return;
	/* a connected mux is the sidecar's to destroy */
	snprintf(name, sizeof(name), "%s", kcm_is_remote(mux) ? "" : mux->name);
	kcm_mux_close(mux);
	if (name[0])
		kcm_mux_unpin(name);
}
