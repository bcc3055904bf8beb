/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* The options that say how a mux is made: create and serve take the same ones. */
#ifndef KCM_LOADER_MUX_ARGS_H
#define KCM_LOADER_MUX_ARGS_H

#include <limits.h>
#include <stdbool.h>
#include <stdio.h>

#include "kcm.h"

struct mux_args {
	struct kcm_mux_opts o;
	char parser[PATH_MAX];	/* --prog or --frame's object */
	bool have_framing;
};

/* getopt_long entries (values 0x100 and up) */
#define MUX_ARGS_OPTIONS                                                   \
	{ "framing", required_argument, NULL, 0x100 },                     \
	{ "prog", required_argument, NULL, 0x101 },                        \
	{ "frame", required_argument, NULL, 0x102 },                       \
	{ "split", required_argument, NULL, 0x103 },                       \
	{ "window", required_argument, NULL, 0x104 },                      \
	{ "max", required_argument, NULL, 0x105 },                         \
	{ "batch", required_argument, NULL, 0x106 },                       \
	{ "policy", required_argument, NULL, 0x107 },                      \
	{ "transport-rcvbuf", required_argument, NULL, 0x108 },            \
	{ "member-rcvbuf", required_argument, NULL, 0x109 }

void mux_args_init(struct mux_args *a);
/* Take option @c (one of MUX_ARGS_OPTIONS): 0, or a usage error's exit code; -1 when
 * @c is not one of them. */
int mux_args_take(const char *cmd, int c, const char *arg, struct mux_args *a);
/* The combination, and NAME: 0 or a usage error's exit code. */
int mux_args_check(const char *cmd, struct mux_args *a, const char *name);
/* Their lines of --help. */
void mux_args_help(FILE *f);
/* "u32be+4" or "parser OBJ" */
void mux_args_describe(const struct mux_args *a, char *buf, size_t len);

#endif /* KCM_LOADER_MUX_ARGS_H */
