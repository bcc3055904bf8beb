// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Opening a pinned mux: whole (to use it), or as it is (to inspect it). */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <bpf/bpf.h>

#include "internal.h"

/* Options of kcm_mux_open_opts() from a program built against an older kcm.h. */
#define OPEN_OPTS_V1_SIZE (offsetof(struct kcm_mux_open_opts, inspect) + sizeof(bool))

struct kcm_mux *kcm_mux_open_opts(const char *name, const struct kcm_mux_open_opts *opts)
{
	bool inspect = opts && opts->sz >= OPEN_OPTS_V1_SIZE && opts->inspect;
	struct kcm_mux *mux;
	char path[256];
	int err;

	if (opts && opts->sz < OPEN_OPTS_V1_SIZE) {
		errno = EINVAL;
		return NULL;
	}
	err = kcm_name_check(name);
	if (err)
		goto fail;
	mux = kcm_mux_alloc();
	if (!mux) {
		err = -ENOMEM;
		goto fail;
	}
	snprintf(mux->name, sizeof(mux->name), "%s", name);
	mux->inspect = inspect;
	/* inspecting: the folder must be there, any pin in it may be missing */
	if (inspect && !kcm_pin_path(path, sizeof(path), name, NULL) && access(path, F_OK))
		err = errno == ENOENT ? kcm_fail(-errno, "no mux named '%s' (no %s)", name, path) :
		      kcm_fail(-errno, "failed to read %s", path);
	for (int i = 0; !err && i < KCM_PIN_COUNT; i++) {
		const char *file = kcm_pin_file(i);
		int fd;

		err = kcm_pin_path(path, sizeof(path), name, file);
		if (err)
			break;
		fd = bpf_obj_get(path);
		if (fd < 0 && inspect && errno == ENOENT) {
			if (!mux->missing[0])
				snprintf(mux->missing, sizeof(mux->missing), "%s", file);
			continue;
		}
		if (fd < 0) {
			err = errno == ENOENT && i == 0 ?
				kcm_fail(-errno, "no mux named '%s' (no %s)", name, path) :
				kcm_fail(-errno, "failed to open %s", path);
			break;
		}
		*kcm_mux_pin_fd(mux, i) = fd;
	}
	if (err) {
		mux->name[0] = '\0';
		kcm_mux_close(mux);
		goto fail;
	}
	if (inspect) {
		if (mux->map_fd[KCM_MAP_CONFIG] < 0 || kcm_config_read(mux))
			memset(&mux->cfg, 0, sizeof(mux->cfg));
		kcm_mux_framing_from_cfg(mux);
		/* read only: no splitting program; the flow maps for kcm_mux_flow() when
		 * the mux is whole and of this version */
		if (!mux->missing[0] && mux->cfg.version == KCM_CONFIG_VERSION)
			kcm_credits_map(mux);
		return mux;
	}
	err = kcm_config_read(mux);
	if (!err && mux->cfg.version != KCM_CONFIG_VERSION)
		err = kcm_fail(-EPROTO, "mux '%s' was made by another kcm-bpf version (%u, want %u)",
			       name, mux->cfg.version, KCM_CONFIG_VERSION);
	if (!err && !strcmp(mux->cfg.splitter, KCM_SPLIT_PROG))
		err = kcm_split_prog_open(mux);
	if (err) {
		mux->name[0] = '\0';
		kcm_mux_close(mux);
		goto fail;
	}
	kcm_mux_framing_from_cfg(mux);
	kcm_mux_config_mmap(mux);
	err = kcm_stats_map(mux);
	if (!err)
		err = kcm_credits_map(mux);
	if (err) {
		mux->name[0] = '\0';
		kcm_mux_close(mux);
		goto fail;
	}
	mux->tx_generation = mux->cfg.generation - 1; /* import transports on first send */
	return mux;
fail:
	errno = -err;
	return NULL;
}

struct kcm_mux *kcm_mux_open(const char *name)
{
	return kcm_mux_open_opts(name, NULL);
}
