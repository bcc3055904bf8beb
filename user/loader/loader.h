/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* kcm-loader: shared declarations of the command table. */
#ifndef KCM_LOADER_H
#define KCM_LOADER_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#define EXIT_OK 0
#define EXIT_FAIL 1
#define EXIT_USAGE 2

#define U(x) ((unsigned long long)(x)) /* for %llu */

struct env {
	bool json;
	bool verbose;
};

extern struct env env;

/* "kcm-loader: <message>" on stderr; returns EXIT_FAIL. */
int fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* "kcm-loader <cmd>: <message>" and a pointer to --help; returns EXIT_USAGE. */
int usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Explain a libkcm failure: its own description, a hint for the errno, the libbpf log. */
int fail_lib(const char *what, int err);
/* A getopt_long() answer @c of ':' (missing argument) or '?' (unknown option) as a usage
 * error that names the option. */
int bad_option(const char *cmd, int c, char *const argv[]);
/* With -j: "null", for a command that has nothing to say (as bpftool does). */
void json_nothing(void);
/* Options of a command that takes only -j/--json and -h/--help (which prints @help):
 * -1 to go on (optind at the first argument), else the exit status to return. */
int json_help_options(const char *cmd, int argc, char **argv, const char *help);
/* Strict integers: whole string, in [min, max]. Sizes accept K, M, G suffixes. */
int parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out);
int parse_size(const char *s, uint64_t min, uint64_t max, uint64_t *out);

/* paths.c: the folder of the running kcm-loader; the folder of kcm-bpf's documents
 * (installed beside it, or the tree's docs/); help_docs() says where they are, after a
 * help text that names some. */
int exe_dir(char *buf, size_t len);
const char *doc_dir(void);
void help_docs(void);

/* flow_show.c: a mux's flow-control state (status, stats) */
struct kcm_mux;
void show_flow(struct kcm_mux *mux);

int cmd_create(int argc, char **argv);
int cmd_destroy(int argc, char **argv);
int cmd_clean(int argc, char **argv);
int cmd_attach(int argc, char **argv);
int cmd_unattach(int argc, char **argv);
int cmd_status(int argc, char **argv);
int cmd_parsers(int argc, char **argv);
int cmd_stats(int argc, char **argv);
int cmd_connect(int argc, char **argv);
int cmd_monitor(int argc, char **argv);
int cmd_check(int argc, char **argv);
int cmd_serve(int argc, char **argv);

/* The path of shipped parser NAME (--frame NAME): 0, -ENOENT or -EINVAL. */
int parser_resolve(const char *name, char *out, size_t len);
/* --prog PATH or --frame NAME into @out; EXIT_OK or a usage/failure exit code. */
int parser_option(const char *cmd, int opt, const char *arg, char *out, size_t len);

#endif /* KCM_LOADER_H */
