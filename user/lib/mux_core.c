// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* The bottom of a mux: its lock (a mutex, and flock() on bpffs when pinned) and its
 * config map, which every layer above reads or bumps. */
#include <errno.h>
#include <bpf/bpf.h>

#include "internal.h"

int kcm_mux_lock(struct kcm_mux *mux)
{
	int fd;

	pthread_mutex_lock(&mux->lock);
	if (!mux->name[0])
		return 0;
	fd = kcm_pins_lock();
	if (fd < 0) {
		pthread_mutex_unlock(&mux->lock);
		return fd;
	}
	mux->lock_fd = fd;
	return 0;
}

void kcm_mux_unlock(struct kcm_mux *mux)
{
	kcm_pins_unlock(mux->lock_fd);
	mux->lock_fd = -1;
	pthread_mutex_unlock(&mux->lock);
}

int kcm_config_read(struct kcm_mux *mux)
{
	__u32 key = 0;

	if (bpf_map_lookup_elem(mux->map_fd[KCM_MAP_CONFIG], &key, &mux->cfg))
		return -errno;
	return 0;
}

/* Changes on every attach and unattach; a plain load from the mmapped map. */
uint32_t kcm_config_generation(struct kcm_mux *mux)
{
	if (mux->cfg_map)
		return __atomic_load_n(&mux->cfg_map->generation, __ATOMIC_ACQUIRE);
	return kcm_config_read(mux) ? mux->tx_generation : mux->cfg.generation;
}

/* Caller holds the mux lock. */
int kcm_config_bump(struct kcm_mux *mux)
{
	__u32 key = 0;
	int err = kcm_config_read(mux);

	if (err)
		return err;
	mux->cfg.generation++;
	if (bpf_map_update_elem(mux->map_fd[KCM_MAP_CONFIG], &key, &mux->cfg, BPF_ANY))
		return -errno;
	return 0;
}
