// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* kcm-loader parsers, and --frame NAME: the parser objects shipped with kcm-bpf. */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "json.h"
#include "loader.h"
#include "output.h"

static const struct {
	const char *name, *framing;
} known[] = {
	{ "thrift", "Thrift framed transport: u32be size + 4" },
	{ "dns", "DNS over TCP: u16be length + 2, at least a 12-byte header" },
	{ "http2", "HTTP/2: the 24-byte client preface, then frames of u24be length + 9" },
	{ "kafka", "Kafka requests and responses: i32be size + 4" },
	{ "memcached", "memcached binary protocol: 24-byte header, body length at offset 8" },
	{ "mqtt", "MQTT: fixed header with a remaining-length varint" },
};

/* Folders searched for NAME.bpf.o, in order. */
static int parser_dirs(char dirs[][PATH_MAX], int max)
{
	char exe[PATH_MAX];
	const char *env_dir = getenv("KCM_PARSER_DIR");
	int k = 0;

	if (env_dir && *env_dir && k < max)
		snprintf(dirs[k++], PATH_MAX, "%s", env_dir);
	if (!exe_dir(exe, sizeof(exe))) {
		if (k < max) /* the build tree: build/kcm-loader, build/parsers/ */
			snprintf(dirs[k++], PATH_MAX, "%.*s/parsers", PATH_MAX - 9, exe);
		if (k < max) /* installed: PREFIX/bin, PREFIX/lib/kcm-bpf/parsers */
			snprintf(dirs[k++], PATH_MAX, "%.*s/../lib/kcm-bpf/parsers", PATH_MAX - 25,
				 exe);
	}
	return k;
}

int parser_resolve(const char *name, char *out, size_t len)
{
	char dirs[3][PATH_MAX];
	int n = parser_dirs(dirs, 3);

	if (!*name || strchr(name, '/') || !strcmp(name, ".") || !strcmp(name, ".."))
		return -EINVAL;
	for (int i = 0; i < n; i++) {
		snprintf(out, len, "%.*s/%s.bpf.o", PATH_MAX - 64, dirs[i], name);
		if (!access(out, R_OK))
			return 0;
	}
	return -ENOENT;
}

int parser_option(const char *cmd, int opt, const char *arg, char *out, size_t len)
{
	int err;

	if (*out)
		return usage_error(cmd, "give one of --prog and --frame, once");
	if (opt == 'P') {
		snprintf(out, len, "%s", arg);
		return EXIT_OK;
	}
	err = parser_resolve(arg, out, len);
	if (err == -EINVAL)
		return usage_error(cmd, "invalid --frame '%s': a parser name", arg);
	if (err)
		return fail("no parser named '%s' (`kcm-loader parsers` lists them)", arg);
	return EXIT_OK;
}

static const char *describe(const char *name)
{
	for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
		if (!strcmp(known[i].name, name))
			return known[i].framing;
	return "(not shipped with kcm-bpf)";
}

int cmd_parsers(int argc, char **argv)
{
	char dirs[3][PATH_MAX], seen[64][64];
	int ndirs, nseen = 0, ret;

	ret = json_help_options("parsers", argc, argv,
		"Usage: kcm-loader parsers [--json]\n\n"
		"List the parser programs `--frame NAME` can select, with the folder\n"
		"each was found in ($KCM_PARSER_DIR, then next to kcm-loader).\n");
	if (ret >= 0)
		return ret;
	if (optind != argc)
		return usage_error("parsers", "takes no arguments");
	ndirs = parser_dirs(dirs, 3);
	if (env.json)
		json_start_array(NULL);
	for (int i = 0; i < ndirs; i++) {
		DIR *d = opendir(dirs[i]);
		struct dirent *de;

		while (d && (de = readdir(d))) {
			size_t l = strlen(de->d_name);
			char name[64], path[PATH_MAX + 80];
			bool dup = false;

			if (l <= 6 || l - 6 >= sizeof(name) || strcmp(de->d_name + l - 6, ".bpf.o"))
				continue;
			snprintf(name, sizeof(name), "%.*s", (int)(l - 6), de->d_name);
			for (int s = 0; s < nseen; s++)
				dup |= !strcmp(seen[s], name);
			if (dup || nseen == 64)
				continue;
			snprintf(seen[nseen++], sizeof(seen[0]), "%s", name);
			snprintf(path, sizeof(path), "%.*s/%s", PATH_MAX - 1, dirs[i], name);
			strncat(path, ".bpf.o", sizeof(path) - strlen(path) - 1);
			open_json_object(NULL);
			print_string(PRINT_ANY, "name", "%-10s", name);
			print_string(PRINT_ANY, "framing", " %s", describe(name));
			print_string(PRINT_ANY, "object", "\n           %s", path);
			print_nl();
			close_json_object();
		}
		if (d)
			closedir(d);
	}
	if (env.json) {
		json_end_array();
		json_done();
	} else if (!nseen) {
		printf("no parser objects found (build them with make, or set KCM_PARSER_DIR)\n");
	}
	return EXIT_OK;
}
