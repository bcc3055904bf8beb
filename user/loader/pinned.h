/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* A pinned mux opened map by map, for the commands that read it (status, stats, monitor). */
#ifndef KCM_PINNED_H
#define KCM_PINNED_H

#include <stddef.h>
#include <linux/types.h>

#include "kcm_shared.h"
#include "pins.h"
#include "format.h"

struct pinned {
	int map[KCM_MAP_COUNT];
	int prog[KCM_PROG_COUNT];
	int parser_map[KCM_MAX_PARSERS];	/* [0]: map[KCM_MAP_TRANSPORTS]; -1 none */
	struct kcm_parser_info parser[KCM_MAX_PARSERS];
	int missing;
	char first_missing[32];
};

/* Open every pin of mux @name; p->missing counts the ones that are not there (fd -1). */
void pinned_open(const char *name, struct pinned *p);
void pinned_close(struct pinned *p);
/* pinned_open() that fails (EXIT_FAIL, after saying why) unless every pin is there. */
int pinned_open_whole(const char *name, struct pinned *p);
/* The data plane's per-CPU counters of the mux, summed. */
struct kcm_counters pinned_counters(struct pinned *p, int ncpu);
/* The NAME argument of @cmd: EXIT_OK with its folder in @path, else the exit code after
 * saying what is wrong (an invalid name, no such mux). */
int pinned_name_arg(const char *cmd, const char *name, char *path, size_t len);

#endif /* KCM_PINNED_H */
