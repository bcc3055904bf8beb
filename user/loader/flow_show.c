// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* The receive flow-control state of a mux, for status and stats (kcm_mux_flow()). */
#include <errno.h>
#include <stdio.h>

#include "kcm.h"
#include "output.h"
#include "loader.h"

/* "flow": unread, held and charged bytes, braked transports; nothing when unreadable. */
void show_flow(struct kcm_mux *mux)
{
	struct kcm_flow f = { .sz = sizeof(f) };

	if (kcm_mux_flow(mux, &f))
		return;
	open_json_object("flow");
	print_uint(PRINT_ANY, "window", "  flow: window %llu", f.window);
	print_uint(PRINT_ANY, "unread_bytes", ", unread %llu B", f.unread_bytes);
	print_uint(PRINT_ANY, "held_bytes", " (held %llu)", f.held_bytes);
	print_int(PRINT_ANY, "charged_bytes", ", charged %lld B", (int64_t)f.charged_bytes);
	print_string(PRINT_FP, NULL, ", %s", f.braked ? "braking" : "open");
	print_uint(PRINT_JSON, "braked", NULL, f.braked);
	print_bool(PRINT_JSON, "braking", NULL, f.braked > 0);
	if (f.braked) {
		print_uint(PRINT_FP, NULL, " (%llu", f.braked);
		print_uint(PRINT_FP, NULL, " of %llu transports)", f.transports);
	}
	print_uint(PRINT_ANY, "brakes", "\n        brakes %llu", f.brakes);
	print_uint(PRINT_ANY, "releases", " releases %llu", f.releases);
	print_uint(PRINT_ANY, "saturated", " saturated %llu", f.saturated);
	print_uint(PRINT_JSON, "controller_pid", NULL, f.controller);
	if (f.controller)
		print_uint(PRINT_FP, NULL, " controller pid %llu", f.controller);
	else
		print_string(PRINT_FP, NULL, " controller none (no process of the mux has a KCM "
			     "socket: messages are dropped, see %s/flow-control.md)", doc_dir());
	print_nl();
	close_json_object();
}
