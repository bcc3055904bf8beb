// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* kcm-loader create, destroy and clean: the life of a pinned mux. */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <linux/bpf.h>

#include "kcm.h"
#include "kcm_shared.h"
#include "json.h"
#include "loader.h"
#include "output.h"
#include "mux_args.h"

static void create_help(FILE *f)
{
	fprintf(f,
		"Usage: kcm-loader create NAME [OPTIONS]\n\n"
		"Load the data plane and pin it under /sys/fs/bpf/kcm/NAME/.\n\n");
	mux_args_help(f);
	fprintf(f,
		"  -j, --json            print the result as JSON\n"
		"  -h, --help            this text\n");
	if (f == stdout)
		help_docs();
}

int cmd_create(int argc, char **argv)
{
	static const struct option opts[] = {
		MUX_ARGS_OPTIONS,
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{},
	};
	struct mux_args a;
	struct kcm_mux *mux;
	char spec[PATH_MAX + 16], path[300];
	int c, err;

	mux_args_init(&a);
	optind = 0;
	while ((c = getopt_long(argc, argv, ":jh", opts, NULL)) != -1) {
		switch (c) {
		case 'j':
			env.json = true;
			break;
		case 'h':
			create_help(stdout);
			return EXIT_OK;
		default:
			err = mux_args_take("create", c, optarg, &a);
			if (err >= 0) {
				if (err)
					return err;
				break;
			}
			return bad_option("create", c, argv);
		}
	}
	if (optind != argc - 1)
		return usage_error("create", "expected one NAME");
	err = mux_args_check("create", &a, argv[optind]);
	if (err)
		return err;
	mux = kcm_mux_create(&a.o);
	if (!mux) {
		char what[128];

		snprintf(what, sizeof(what), "failed to create mux '%s'", a.o.pin_name);
		return fail_lib(what, errno);
	}
	kcm_mux_close(mux);
	mux_args_describe(&a, spec, sizeof(spec));
	snprintf(path, sizeof(path), "%s/%s", kcm_pin_root(), a.o.pin_name);
	open_json_object(NULL);
	print_string(PRINT_ANY, "name", "created mux '%s'", a.o.pin_name);
	print_string(PRINT_JSON, "framing", NULL, a.o.parser ? "parsers" : spec);
	if (a.o.parser)
		print_string(PRINT_JSON, "parser", NULL, a.parser);
	print_string(PRINT_FP, NULL, " (framing %s)", spec);
	print_string(PRINT_ANY, "path", " at %s", path);
	close_json_object();
	end_record();
	return EXIT_OK;
}

int cmd_destroy(int argc, char **argv)
{
	int c = json_help_options("destroy", argc, argv,
		"Usage: kcm-loader destroy NAME [--json]\n\n"
		"Remove the pins of a mux. Its programs and maps are freed once no process\n"
		"holds them; attached TCP sockets then return to plain TCP. With --json it\n"
		"prints null, or {\"error\": ...}.\n");

	if (c >= 0)
		return c;
	if (optind != argc - 1)
		return usage_error("destroy", "expected one NAME");
	if (kcm_name_check(argv[optind]))
		return usage_error("destroy", "invalid name '%s'", argv[optind]);
	if (kcm_mux_unpin(argv[optind])) {
		if (errno == ENOENT)
			return fail("failed to destroy mux '%s': no such mux under %s", argv[optind],
				    kcm_pin_root());
		return fail("failed to destroy mux '%s': %s", argv[optind], strerror(errno));
	}
	if (env.json)
		json_nothing();
	else
		printf("destroyed mux '%s'\n", argv[optind]);
	return EXIT_OK;
}

/* Why a mux folder should go, or NULL when it is healthy (or only broken: status). */
static const char *clean_reason(const char *name, char *buf, size_t len)
{
	struct kcm_mux_open_opts oo = { .sz = sizeof(oo), .inspect = true };
	struct kcm_mux_state st = { .sz = sizeof(st) };
	struct kcm_mux *mux = kcm_mux_open_opts(name, &oo);

	if (!mux || kcm_mux_state(mux, &st)) {
		snprintf(buf, len, "unreadable: %s", strerror(errno));
		kcm_mux_close(mux);
		return buf;
	}
	kcm_mux_close(mux);
	if (st.health == KCM_MUX_INCOMPLETE)
		snprintf(buf, len, "incomplete: no %s (a create that crashed)", st.missing);
	else if (st.health == KCM_MUX_OTHER_VERSION && st.config_version)
		snprintf(buf, len, "made by another kcm-bpf version (config version %u)",
			 st.config_version);
	else if (st.health == KCM_MUX_OTHER_VERSION)
		snprintf(buf, len, "unreadable config");
	else if (st.health == KCM_MUX_ORPHANED)
		snprintf(buf, len, "owner pid %u exited without destroying it", st.owner_pid);
	else
		return NULL;
	return buf;
}

static int count_closed(const struct kcm_transport_status *t, void *ctx)
{
	*(int *)ctx += t->state == KCM_SLOT_STALE;
	return 0;
}

/* Transport records of mux @name whose sockets are gone from their map. */
static int closed_transports(const char *name)
{
	struct kcm_mux_open_opts oo = { .sz = sizeof(oo), .inspect = true };
	struct kcm_mux *mux = kcm_mux_open_opts(name, &oo);
	int n = 0;

	if (mux)
		kcm_transport_foreach(mux, count_closed, &n);
	kcm_mux_close(mux);
	return n;
}

/* One thing clean did (or, with --dry-run, would do): a line, or an object of its array. */
static void clean_record(const char *mux, const char *action, const char *reason, int n)
{
	open_json_object(NULL);
	print_string(PRINT_JSON, "mux", NULL, mux);
	print_string(PRINT_JSON, "action", NULL, action);
	if (reason) {
		print_string(PRINT_FP, NULL, "%s", strcmp(action, "remove") ? "removed" :
			     "would remove");
		print_string(PRINT_FP, NULL, " mux '%s'", mux);
		print_string(PRINT_ANY, "reason", ": %s", reason);
	} else {
		print_string(PRINT_FP, NULL, "%s", strcmp(action, "forget") ? "forgot" :
			     "would forget");
		print_uint(PRINT_ANY, "transports", " %llu", n);
		print_string(PRINT_FP, NULL, " closed transport%s", n == 1 ? "" : "s");
		print_string(PRINT_FP, NULL, " of mux '%s'", mux);
	}
	print_nl();
	close_json_object();
}

/* Records of transports whose sockets closed (the owner died without unattaching). */
static int prune(const char *name, bool dry)
{
	struct kcm_mux *mux;
	int n;

	if (dry) {
		n = closed_transports(name);
		if (n)
			clean_record(name, "forget", NULL, n);
		return 0;
	}
	mux = kcm_mux_open(name);
	if (!mux)
		return 0;
	n = kcm_mux_prune(mux);
	kcm_mux_close(mux);
	if (n > 0)
		clean_record(name, "forgot", NULL, n);
	return n > 0 ? n : 0;
}

int cmd_clean(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "all", no_argument, NULL, 'a' },
		{ "dry-run", no_argument, NULL, 'n' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{},
	};
	bool all = false, dry = false;
	int c, failed = 0, removed = 0;
	struct dirent *de;
	char why[160];
	DIR *d;

	optind = 0;
	while ((c = getopt_long(argc, argv, ":jh", opts, NULL)) != -1) {
		switch (c) {
		case 'a':
			all = true;
			break;
		case 'j':
			env.json = true;
			break;
		case 'n':
			dry = true;
			break;
		case 'h':
			printf("Usage: kcm-loader clean [--all] [--dry-run] [--json]\n\n"
			       "Remove muxes left by crashed runs: folders missing pins, and muxes\n"
			       "whose owning program exited without destroying them; in the others,\n"
			       "forget transports whose sockets closed without an unattach. --json:\n"
			       "an array of {mux, action (removed, remove, forgot, forget), reason\n"
			       "or transports}.\n\n"
			       "  --all      remove every mux\n"
			       "  --dry-run  only say what would go\n");
			return EXIT_OK;
		default:
			return bad_option("clean", c, argv);
		}
	}
	if (optind != argc)
		return usage_error("clean", "unexpected argument '%s'", argv[optind]);
	d = opendir(kcm_pin_root());
	if (!d) {
		if (errno != ENOENT)
			return fail("failed to read %s: %s", kcm_pin_root(), strerror(errno));
		if (env.json)
			printf("[]\n");
		else
			printf("nothing to clean: no %s\n", kcm_pin_root());
		return EXIT_OK;
	}
	if (env.json)
		json_start_array(NULL);
	while ((de = readdir(d))) {
		const char *reason;

		if (de->d_name[0] == '.')
			continue;
		reason = all ? "--all" : clean_reason(de->d_name, why, sizeof(why));
		if (!reason) {
			removed += prune(de->d_name, dry);
			continue;
		}
		if (dry) {
			clean_record(de->d_name, "remove", reason, 0);
			continue;
		}
		if (kcm_mux_unpin(de->d_name)) {
			failed++;
			if (env.json) {
				json_start_object(NULL);
				json_string("mux", de->d_name);
				json_string("error", strerror(errno));
				json_end_object();
			} else {
				fail("failed to remove mux '%s': %s", de->d_name, strerror(errno));
			}
			continue;
		}
		removed++;
		clean_record(de->d_name, "removed", reason, 0);
	}
	closedir(d);
	if (env.json) {
		json_end_array();
		json_done();
	} else if (!removed && !failed && !dry) {
		printf("nothing to clean\n");
	}
	return failed ? EXIT_FAIL : EXIT_OK;
}
