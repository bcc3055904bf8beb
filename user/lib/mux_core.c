// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* The bottom of a mux: the handle itself, its lock (a mutex, and flock() on bpffs when
 * pinned) and its config map, which every layer above reads or bumps. */
#include <errno.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>
#include <bpf/bpf.h>

#include "internal.h"

int kcm_mux_lock(struct kcm_mux *mux)
{
	int fd;

	pthread_mutex_lock(&mux->lock);
	if (!mux->name[0])
		return 0;
	fd = kcm_pins_lock(false);
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

struct kcm_mux *kcm_mux_alloc(void)
{
	struct kcm_mux *mux = calloc(1, sizeof(*mux));

	if (!mux)
		return NULL;
	for (int i = 0; i < KCM_MAP_COUNT; i++)
		mux->map_fd[i] = -1;
	for (int i = 0; i < KCM_PROG_COUNT; i++)
		mux->prog_fd[i] = -1;
	for (int i = 0; i < KCM_MAX_PARSERS; i++)
		mux->parser_map[i] = -1;
	mux->lock_fd = -1;
	mux->split_prog = -1;
	mux->remote_fd = -1;
	pthread_mutex_init(&mux->lock, NULL);
	pthread_mutex_init(&mux->remote_lock, NULL);
	pthread_rwlock_init(&mux->tx_lock, NULL);
	return mux;
}

/* The fd of pin @i (see kcm_pin_file()). */
int *kcm_mux_pin_fd(struct kcm_mux *mux, int i)
{
	return i < KCM_MAP_COUNT ? &mux->map_fd[i] : &mux->prog_fd[i - KCM_MAP_COUNT];
}

void kcm_mux_config_mmap(struct kcm_mux *mux)
{
	void *p = mmap(NULL, sysconf(_SC_PAGESIZE), PROT_READ, MAP_SHARED,
		       mux->map_fd[KCM_MAP_CONFIG], 0);

	mux->cfg_map = p == MAP_FAILED ? NULL : p; /* NULL: read it with a syscall */
}
