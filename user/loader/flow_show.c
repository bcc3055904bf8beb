// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* The receive flow-control state of a mux, for status and stats (kcm_mux_flow()). */
#include <errno.h>
#include <stdio.h>

#include "kcm.h"
#include "json.h"
#include "loader.h"

/* "flow": unread, held and charged bytes, braked transports; nothing when unreadable. */
void show_flow(const char *name)
{
	struct kcm_flow f = { .sz = sizeof(f) };
	struct kcm_mux *mux = kcm_mux_open(name);
	int err = mux ? kcm_mux_flow(mux, &f) : -1;

	kcm_mux_close(mux);
	if (err)
		return;
	if (env.json) {
		json_start_object("flow");
		json_uint("window", f.window);
		json_uint("unread_bytes", f.unread_bytes);
		json_uint("held_bytes", f.held_bytes);
		json_int("charged_bytes", (int64_t)f.charged_bytes);
		json_uint("braked", f.braked);
		json_bool("braking", f.braked > 0);
		json_uint("brakes", f.brakes);
		json_uint("releases", f.releases);
		json_uint("saturated", f.saturated);
		json_uint("controller_pid", f.controller);
		json_end_object();
		return;
	}
	printf("  flow: window %u, unread %llu B (held %llu), charged %lld B, %s", f.window,
	       (unsigned long long)f.unread_bytes, (unsigned long long)f.held_bytes,
	       (long long)f.charged_bytes, f.braked ? "braking" : "open");
	if (f.braked)
		printf(" (%u of %u transports)", f.braked, f.transports);
	printf("\n        brakes %llu releases %llu saturated %llu controller %s",
	       (unsigned long long)f.brakes, (unsigned long long)f.releases,
	       (unsigned long long)f.saturated, f.controller ? "" : "none (no process of the "
	       "mux has a KCM socket: messages are dropped, see ");
	if (!f.controller)
		printf("%s/flow-control.md)", doc_dir());
	if (f.controller)
		printf("pid %d", f.controller);
	printf("\n");
}
