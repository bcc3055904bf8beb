// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* The kernel's HZ where no kernel config file tells it: the health programs' rto_us needs it. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <unistd.h>

#include "internal.h"

/* One sample of /proc/timer_list (root only): the clock in ns and jiffies. */
static int timer_list_sample(uint64_t *ns, uint64_t *jiffies)
{
	FILE *f = fopen("/proc/timer_list", "re");
	char line[256];
	int have = 0;

	if (!f)
		return -errno;
	while (have != 3 && fgets(line, sizeof(line), f)) {
		unsigned long long v;

		if (!(have & 1) && sscanf(line, "now at %llu nsecs", &v) == 1) {
			*ns = v;
			have |= 1;
		} else if (!(have & 2) && sscanf(line, "jiffies: %llu", &v) == 1) {
			*jiffies = v;
			have |= 2;
		}
	}
	fclose(f);
	return have == 3 ? 0 : -ENOENT;
}

/* The kernel's HZ from two samples 100 ms apart, rounded to a value kernels are built
 * with; 0 when it cannot be told. */
unsigned int kcm_estimate_hz(void)
{
	static const unsigned int known[] = { 100, 250, 300, 1000 };
	static int cached = -1; /* the health programs are opened up to four times a run */
	uint64_t ns0, j0, ns1, j1;
	unsigned int best = 0;
	double hz;

	if (cached >= 0)
		return cached;
	cached = 0;
	if (timer_list_sample(&ns0, &j0))
		return 0;
	usleep(100000);
	if (timer_list_sample(&ns1, &j1) || ns1 <= ns0 || j1 < j0)
		return 0;
	hz = (double)(j1 - j0) * 1e9 / (double)(ns1 - ns0);
	for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
		if (hz > known[i] * 0.8 && hz < known[i] * 1.2)
			best = known[i];
	cached = best;
	return best;
}
