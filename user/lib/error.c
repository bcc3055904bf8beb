// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* A per-thread description of the last failure, for messages a person can act on. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <bpf/libbpf.h>

#include "internal.h"

static __thread char last_error[512];

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
