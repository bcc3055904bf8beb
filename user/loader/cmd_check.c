// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* kcm-loader check: what of kcm-bpf works on this kernel, and what to do about the rest. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>

#include "json.h"
#include "kcm.h"
#include "loader.h"

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
	(void)ctx;
	if (env.json) {
		json_start_object(NULL);
		json_string("name", c->name);
		json_string("state", state_name(c->state));
		json_string("needed_for", c->needed_for);
		json_string("seen", c->seen);
		if (c->fix)
			json_string("fix", c->fix);
		json_end_object();
		return;
	}
	printf("%-14s %-8s %s\n", c->name, state_name(c->state), c->seen);
	if (c->state == KCM_CHECK_MISSING || c->state == KCM_CHECK_UNKNOWN)
		printf("%-14s %-8s needed for %s%s%s\n", "", "", c->needed_for,
		       c->fix ? "; " : "", c->fix ? c->fix : "");
}

/*
 * One of the loader's own checks: @probe fills what it saw and returns 0, -EOPNOTSUPP
 * when the kernel lacks the feature (@fix says what to do), or another -errno.
 */
static int loader_check(const char *name, const char *needed_for,
			int (*probe)(char *seen, size_t len), const char *fix)
{
	struct kcm_check c = { .name = name, .needed_for = needed_for };
	int err = probe(c.seen, sizeof(c.seen));

	c.state = err ? KCM_CHECK_MISSING : KCM_CHECK_OK;
	if (err == -EPERM || err == -EACCES)
		c.state = KCM_CHECK_UNKNOWN;
	if (err)
		c.fix = err == -EOPNOTSUPP ? fix :
			"run `kcm-loader check` as root, with cgroup v2 mounted";
	print_check(&c, NULL);
	return err ? 1 : 0;
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
	missing += loader_check("monitor-arm", "kcm-loader monitor's sock_ops path (without it, "
				"monitor uses tracepoints, machine-wide)", monitor_check_arm,
				"nothing to do: monitor takes its tracing path (or use Linux 6.12)");
	missing += loader_check("monitor-trace", "kcm-loader monitor where monitor-arm is "
				"missing (and --trace)", monitor_check_trace,
				"use Linux 5.19 or later for kcm-loader monitor without monitor-arm");
	if (env.json) {
		json_end_array();
		json_done();
	} else {
		printf("%s\n", missing ? "kcm-bpf cannot do all it does on this system" :
		       "kcm-bpf can do all it does on this system");
	}
	return missing ? EXIT_FAIL : EXIT_OK;
}
