/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The C tests' one harness (the unit tests, api_check): named subtests in a
 * table, CHECK_* inside them, one "PASS name" or "FAIL name" line per subtest (after
 * lines saying what was expected and what came), and a summary "PROG: N passed, M
 * failed". harness_main() runs the table: all subtests, those whose names contain an
 * argument, or with -l only lists them; each is cut off after a time limit.
 */
#ifndef KCM_TEST_HARNESS_H
#define KCM_TEST_HARNESS_H

#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct harness_test {
	const char *name;
	void (*fn)(void);
};

static int n_pass, n_fail;
static bool cur_failed;
static const char *cur_name = "setup";

static inline const char *ename(int e)
{
	const char *n = e ? strerrorname_np(e) : "0";

	return n ? n : "?";
}

#define FAILF(fmt, ...)                                                         \
	do {                                                                    \
		printf("  %s: " fmt "\n", cur_name, ##__VA_ARGS__);             \
		cur_failed = true;                                              \
	} while (0)

#define CHECK_EQ(got, exp, fmt, ...)                                                    \
	do {                                                                            \
		long long __g = (long long)(got), __e = (long long)(exp);               \
		if (__g != __e)                                                         \
			FAILF(fmt ": expected %lld, got %lld", ##__VA_ARGS__, __e, __g); \
	} while (0)

#define CHECK_STR(got, exp, fmt, ...)                                                   \
	do {                                                                            \
		if (strcmp((got), (exp)))                                               \
			FAILF(fmt ": expected \"%s\", got \"%s\"", ##__VA_ARGS__, (exp), (got)); \
	} while (0)

/* @expr must fail with -1 and errno @err. */
#define CHECK_ERR(expr, err, fmt, ...)                                                  \
	do {                                                                            \
		long long __r;                                                          \
		int __e;                                                                \
		errno = 0;                                                              \
		__r = (long long)(expr);                                                \
		__e = errno;                                                            \
		if (__r != -1 || __e != (err))                                          \
			FAILF(fmt ": expected -1/%s, got %lld/%s", ##__VA_ARGS__,       \
			      ename(err), __r, __r == -1 ? ename(__e) : "-");           \
	} while (0)

/* @expr must return 0. */
#define CHECK_OK(expr, fmt, ...)                                                        \
	do {                                                                            \
		long long __r;                                                          \
		errno = 0;                                                              \
		__r = (long long)(expr);                                                \
		if (__r != 0)                                                           \
			FAILF(fmt ": expected 0, got %lld/%s", ##__VA_ARGS__, __r,      \
			      ename(errno));                                            \
	} while (0)

static inline void harness_on_alarm(int sig)
{
	char msg[160];
	int n = snprintf(msg, sizeof(msg), "  %s: timed out (a call hung)\nFAIL %s\n", cur_name,
			 cur_name);

	(void)sig;
	if (write(STDOUT_FILENO, msg, n) < 0)
		_exit(1);
	_exit(1);
}

/* Run the subtests of @t wanted by argv (see above), each cut off after @limit_s seconds
 * (0: none). Returns the exit code: 1 when any failed. */
static inline int harness_main(const char *prog, const struct harness_test *t, size_t n,
			       unsigned int limit_s, int argc, char **argv)
{
	bool list = argc > 1 && !strcmp(argv[1], "-l");

	setvbuf(stdout, NULL, _IOLBF, 0);
	signal(SIGALRM, harness_on_alarm);
	for (size_t i = 0; i < n; i++) {
		bool want = argc < 2 || list;

		for (int a = 1; a < argc && !want; a++)
			want = strstr(t[i].name, argv[a]) != NULL;
		if (!want)
			continue;
		if (list) {
			printf("%s\n", t[i].name);
			continue;
		}
		cur_name = t[i].name;
		cur_failed = false;
		alarm(limit_s);
		t[i].fn();
		alarm(0);
		printf("%s %s\n", cur_failed ? "FAIL" : "PASS", cur_name);
		if (cur_failed)
			n_fail++;
		else
			n_pass++;
	}
	if (!list)
		printf("%s: %d passed, %d failed\n", prog, n_pass, n_fail);
	return n_fail ? 1 : 0;
}

#endif /* KCM_TEST_HARNESS_H */
