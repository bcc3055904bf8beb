// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * The parser program as its own splitter (splitter "prog"). A mux whose KCM sockets are
 * AF_UNIX streams of whole messages needs readers that find each message's end; for a
 * parser with no user-space build, the kernel runs the parser itself on the message's
 * first bytes. sk_skb programs have no BPF_PROG_TEST_RUN, so the object's stream parser
 * is loaded a second time as a tc classifier (same __sk_buff context and helpers; a tc
 * test run shows the program the data from its first byte, and strparser's offset in
 * skb->cb reads 0) and its answer is the message's length.
 *
 * It is what parser programs use where the kernel has no FIONREAD for UDP sockets in a
 * sockmap (Linux 6.1), and any mux can ask for it (kcm-loader create --prog OBJ --split
 * prog). The copy has maps of its own, so its runs touch no counter of the mux; its
 * config says batch 1, so it answers one message at a time.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "internal.h"

/* A tc test run needs an Ethernet header's worth of data and fits in a page. */
#define RUN_MIN 14
#define RUN_MAX 3072

static int copy_config(const struct kcm_mux *mux, struct bpf_object *obj)
{
	struct bpf_map *m = bpf_object__find_map_by_name(obj, "kcm_mux_config");
	struct kcm_config cfg = { .max_msg = mux->cfg.max_msg, .batch = 1 };
	__u32 key = 0;

	if (!m || bpf_map__value_size(m) != sizeof(cfg))
		return 0; /* not an SDK parser, or parser.c has refused it already */
	if (bpf_map_update_elem(bpf_map__fd(m), &key, &cfg, BPF_ANY))
		return kcm_fail(-errno, "failed to configure the splitting copy of the parser");
	return 0;
}

int kcm_split_prog_load(struct kcm_mux *mux, const char *path)
{
	struct bpf_program *prog, *parser = NULL;
	struct bpf_object *obj;
	struct bpf_map *m;
	int err = 0;

	obj = bpf_object__open_file(path, NULL);
	if (!obj)
		return kcm_fail(-errno, "failed to open parser object %s", path);
	bpf_object__for_each_program(prog, obj) {
		if (!parser && bpf_program__type(prog) == BPF_PROG_TYPE_SK_SKB &&
		    bpf_program__expected_attach_type(prog) == BPF_SK_SKB_STREAM_PARSER)
			parser = prog;
		else
			bpf_program__set_autoload(prog, false);
	}
	if (!parser) {
		err = kcm_fail(-ENOENT, "%s has no stream parser", path);
		goto out;
	}
	/* the mux's ring buffer rather than 256 KiB of its own: with no transport of its
	 * own the copy never writes to it */
	m = bpf_object__find_map_by_name(obj, "kcm_events");
	if (m && bpf_map__reuse_fd(m, mux->map_fd[KCM_MAP_EVENTS])) {
		err = kcm_fail(-errno, "failed to share the event ring with %s", path);
		goto out;
	}
	bpf_program__set_type(parser, BPF_PROG_TYPE_SCHED_CLS);
	bpf_program__set_expected_attach_type(parser, 0);
	if (bpf_object__load(obj)) {
		err = kcm_fail(-errno, "failed to load parser %s as its own splitter (a tc "
			       "classifier the kernel can test-run; a parser that reads socket "
			       "fields needs a shipped splitter or UDP FIONREAD)", path);
		goto out;
	}
	err = copy_config(mux, obj);
	if (!err) {
		mux->split_prog = fcntl(bpf_program__fd(parser), F_DUPFD_CLOEXEC, 0);
		if (mux->split_prog < 0)
			err = -errno;
	}
out:
	bpf_object__close(obj); /* the program holds its maps */
	return err;
}

int kcm_split_prog_pin(struct kcm_mux *mux)
{
	char path[256];
	int err = kcm_pin_path(path, sizeof(path), mux->name, KCM_SPLIT_PROG_PIN);

	if (!err && (bpf_obj_pin(mux->split_prog, path) || chmod(path, 0600)))
		err = kcm_fail(-errno, "failed to pin %s", path);
	return err;
}

int kcm_split_prog_open(struct kcm_mux *mux)
{
	char path[256];
	int err = kcm_pin_path(path, sizeof(path), mux->name, KCM_SPLIT_PROG_PIN);

	if (err)
		return err;
	mux->split_prog = bpf_obj_get(path);
	if (mux->split_prog < 0)
		return kcm_fail(-errno, "failed to open %s", path);
	return 0;
}

int64_t kcm_split_prog_run(const struct kcm_mux *mux, const void *buf, size_t len)
{
	unsigned char pad[RUN_MIN] = { 0 };
	LIBBPF_OPTS(bpf_test_run_opts, run, .repeat = 1);

	if (len > RUN_MAX)
		len = RUN_MAX;
	if (len < RUN_MIN) { /* only whole messages are queued: what follows is not read */
		memcpy(pad, buf, len);
		buf = pad;
	}
	run.data_in = buf;
	run.data_size_in = len < RUN_MIN ? RUN_MIN : len;
	if (bpf_prog_test_run_opts(mux->split_prog, &run))
		return -errno;
	return (int32_t)run.retval;
}
