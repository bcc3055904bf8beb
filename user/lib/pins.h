/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Where a pinned mux lives in bpffs and what it holds (used by libkcm and kcm-loader). */
#ifndef KCM_PINS_H
#define KCM_PINS_H

#include <stdbool.h>

/* bpffs: $KCM_BPFFS when set (an absolute path), else /sys/fs/bpf; muxes in its kcm/ */
#define KCM_BPFFS_DEFAULT "/sys/fs/bpf"
const char *kcm_bpffs(void);
/* kcm_pin_root() (kcm.h): kcm_bpffs() "/kcm" */

enum kcm_map_id {
	KCM_MAP_TRANSPORTS,
	KCM_MAP_GROUP,
	KCM_MAP_STEER,
	KCM_MAP_COUNTERS,
	KCM_MAP_MEMBER_COUNTERS,
	KCM_MAP_CONFIG,
	KCM_MAP_TRANSPORT_INFO,
	KCM_MAP_MEMBER_INFO,
	KCM_MAP_PARSERS,
	KCM_MAP_TRANSPORT_SLOT,
	KCM_MAP_TRANSPORT_STATS,
	KCM_MAP_MEMBER_STATS,
	KCM_MAP_MUX_STATS,
	KCM_MAP_HEALTH_CFG,
	KCM_MAP_EVENTS,
	KCM_MAP_CREDITS,
	KCM_MAP_FLOW,
	KCM_MAP_BRAKE_TARGETS,
	KCM_MAP_BRAKE_SOURCE,
	KCM_MAP_COUNT,
};

enum kcm_prog_id {
	KCM_PROG_PARSER,
	KCM_PROG_VERDICT,
	KCM_PROG_REQUEUE,
	KCM_PROG_BRAKE,
	KCM_PROG_COUNT,
};

/* File names under kcm_pin_root()/<name>/, in enum order. */
extern const char *const kcm_map_names[KCM_MAP_COUNT];
extern const char *const kcm_prog_names[KCM_PROG_COUNT];

/* Every pin of a mux: maps first (0 .. KCM_MAP_COUNT-1), then programs. */
#define KCM_PIN_COUNT (KCM_MAP_COUNT + KCM_PROG_COUNT)
static inline const char *kcm_pin_file(int i)
{
	return i < KCM_MAP_COUNT ? kcm_map_names[i] : kcm_prog_names[i - KCM_MAP_COUNT];
}

/* shared_maps.c: give @obj (an SDK parser: @prefix "kcm_"; the health programs: "")
 * the mux's maps @map_fd (indexed by kcm_map_id) in place of the ones bpf/kcm_mux_maps.h
 * declares in it; @who names @obj in errors. 0 or -errno (kcm_last_error() says why). */
struct bpf_object;
int kcm_shared_maps_reuse(struct bpf_object *obj, const char *prefix, const int *map_fd,
			  const char *who);

/* Transport map of parser @id > 0: "transports_<id>" */
#define KCM_PARSER_MAP_FMT "transports_%u" /* bpffs refuses dots in names */

/* kcm_name_check() is public (kcm.h): [A-Za-z0-9_-], 1..63 chars (bpffs refuses dots). */
/* Create kcm_pin_root() (0700) on bpffs; with @mount, mount bpffs first when it is not
 * there, else a missing bpffs is -ENODEV. */
int kcm_bpffs_prepare(bool mount);
/* kcm_cgroup2_root() is public (kcm.h). */
/* Open kcm_pin_root() and flock() it: one loader or library call changes pins at a time.
 * @mount: kcm_bpffs_prepare()'s. */
int kcm_pins_lock(bool mount);
void kcm_pins_unlock(int fd);
/* Remove kcm_pin_root() when no mux is left in it, so nothing stays in bpffs. */
void kcm_pins_remove_root(void);
/* snprintf kcm_pin_root()/<name>[/<file>] into @buf. */
int kcm_pin_path(char *buf, size_t len, const char *name, const char *file);

#endif /* KCM_PINS_H */
