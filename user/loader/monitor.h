/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* kcm-loader monitor: options and the run loop (cmd_monitor.c) over libkcm's
 * kcm_monitor_open/poll/close; records (monitor_print.c). */
#ifndef KCM_LOADER_MONITOR_H
#define KCM_LOADER_MONITOR_H

#include <stdint.h>

#include "kcm.h"
#include "format.h"


struct monitor {
	const char *name;
	struct kcm_mux *mux;
	struct kcm_monitor *mon;
	uint64_t events;			/* printed */
	uint64_t max_events;			/* --count */
};

/* monitor_print.c */
void monitor_print_event(const struct kcm_monitor_event *e);
/* "brake" when the mux starts closing windows, "release" when every window is open. */
void monitor_print_brake(const struct monitor *m, const struct kcm_monitor_event *e);

#endif /* KCM_LOADER_MONITOR_H */
