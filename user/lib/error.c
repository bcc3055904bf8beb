// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* A per-thread description of the last failure, for messages a person can act on. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <bpf/libbpf.h>

#include "internal.h"

static __thread char last_error[512];
static kcm_print_fn print_fn;

static int print_forward(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	kcm_print_fn fn = __atomic_load_n(&print_fn, __ATOMIC_ACQUIRE);

	if (!fn)
		return 0;
	return fn(level == LIBBPF_WARN ? KCM_PRINT_WARN :
		  level == LIBBPF_INFO ? KCM_PRINT_INFO : KCM_PRINT_DEBUG, fmt, ap);
}

kcm_print_fn kcm_set_print(kcm_print_fn fn)
{
	kcm_print_fn old = __atomic_exchange_n(&print_fn, fn, __ATOMIC_ACQ_REL);

	libbpf_set_print(print_forward);
	return old;
}

const char *kcm_last_error(void)
{
	return last_error;
}

int kcm_fail(int err, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(last_error, sizeof(last_error), fmt, ap);
	va_end(ap);
	if (n >= 0 && (size_t)n < sizeof(last_error)) {
		int e = err < 0 ? -err : err;
		char lib[128];

		/* libbpf's own codes (4000 and up: not ELF, bad format...) have its words */
		if (e >= 4000 && e < 4100 && !libbpf_strerror(e, lib, sizeof(lib)))
			snprintf(last_error + n, sizeof(last_error) - n, ": %s", lib);
		else
			snprintf(last_error + n, sizeof(last_error) - n, ": %s", strerror(e));
	}
	return err;
}

int kcm_fail_text(int err, const char *text)
{
	snprintf(last_error, sizeof(last_error), "%s", text);
	return err;
}
