/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The unit tests' harness: named subtests run with run(), CHECK_EQ/CHECK_STR inside
 * them, one PASS/FAIL line per subtest and a summary from unit_done() (its exit code).
 * No root, no BPF: what is tested here is arithmetic, parsing and state.
 */
#ifndef KCM_UNIT_HARNESS_H
#define KCM_UNIT_HARNESS_H

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

static int n_pass, n_fail;
static bool cur_failed;
static const char *cur_name;

#define CHECK_EQ(got, exp, fmt, ...)                                                    \
	do {                                                                            \
		long long __g = (long long)(got), __e = (long long)(exp);               \
		if (__g != __e) {                                                       \
			printf("  %s: " fmt ": expected %lld, got %lld\n", cur_name,    \
			       ##__VA_ARGS__, __e, __g);                                \
			cur_failed = true;                                              \
		}                                                                       \
	} while (0)

#define CHECK_STR(got, exp, fmt, ...)                                                   \
	do {                                                                            \
		if (strcmp((got), (exp))) {                                             \
			printf("  %s: " fmt ": expected \"%s\", got \"%s\"\n", cur_name, \
			       ##__VA_ARGS__, (exp), (got));                            \
			cur_failed = true;                                              \
		}                                                                       \
	} while (0)

static void run(const char *name, void (*fn)(void))
{
	cur_name = name;
	cur_failed = false;
	fn();
	printf("%s %s\n", cur_failed ? "FAIL" : "PASS", name);
	if (cur_failed)
		n_fail++;
	else
		n_pass++;
}

static inline int unit_done(const char *prog)
{
	printf("%s: %d passed, %d failed\n", prog, n_pass, n_fail);
	return n_fail ? 1 : 0;
}

#endif /* KCM_UNIT_HARNESS_H */
