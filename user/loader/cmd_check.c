// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* kcm-loader check: what of kcm-bpf works on this kernel, and what to do about the rest. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>

#include "json.h"
#include "kcm.h"
#include "loader.h"
#include "output.h"

static const char *state_name(enum kcm_check_state s)
{
	switch (s) {
	case KCM_CHECK_OK:
		return "ok";
	case KCM_CHECK_MISSING:
		return "missing";
	case KCM_CHECK_UNKNOWN:
		return "unknown";
	default:
		return "info";
	}
}

static void print_check(const struct kcm_check *c, void *ctx)
{
	bool problem = c->state == KCM_CHECK_MISSING || c->state == KCM_CHECK_UNKNOWN;

	(void)ctx;
	open_json_object(NULL);
	print_string(PRINT_ANY, "name", "%-14s", c->name);
	print_string(PRINT_ANY, "state", " %-8s", state_name(c->state));
	print_string(PRINT_JSON, "needed_for", NULL, c->needed_for);
	print_string(PRINT_ANY, "seen", " %s\n", c->seen);
	if (problem)
		print_string(PRINT_FP, NULL, "%-23s needed for ", "");
	if (problem)
		print_string(PRINT_FP, NULL, "%s", c->needed_for);
	if (c->fix)
		print_string(problem ? PRINT_ANY : PRINT_JSON, "fix", "; %s", c->fix);
	if (problem)
		print_nl();
	close_json_object();
}

int cmd_check(int argc, char **argv)
{
	int missing, ret;

	ret = json_help_options("check", argc, argv,
		"Usage: kcm-loader check [--json]\n\n"
		"Check what kcm-bpf needs from this kernel and process: privileges, bpffs, BTF,\n"
		"sockmap, stream parser, sk_msg, the socket types KCM sockets use, the data\n"
		"plane itself, and monitor's sock_ops and arming. Each check does the real\n"
		"thing (creates the map, loads and attaches the program) and says what to do\n"
		"when it fails. Exit status: 0 all needed checks passed, 1 something is\n"
		"missing or could not be checked, 2 usage error.\n");
	if (ret >= 0)
		return ret;
	if (optind != argc)
		return usage_error("check", "takes no arguments");
	if (env.json)
		json_start_array(NULL);
	missing = kcm_check_system(print_check, NULL);
	if (env.json) {
		json_end_array();
		json_done();
	} else {
		printf("%s\n", missing ? "kcm-bpf cannot do all it does on this system" :
		       "kcm-bpf can do all it does on this system");
	}
	return missing ? EXIT_FAIL : EXIT_OK;
}
