// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Where kcm-loader's own files are: next to the binary, installed or in the build tree. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "loader.h"

int exe_dir(char *buf, size_t len)
{
	ssize_t n = readlink("/proc/self/exe", buf, len - 1);
	char *slash;

	if (n <= 0)
		return -1;
	buf[n] = '\0';
	slash = strrchr(buf, '/');
	if (!slash)
		return -1;
	*slash = '\0';
	return 0;
}

const char *doc_dir(void)
{
	static char dir[PATH_MAX];
	char exe[PATH_MAX - 64], probe[PATH_MAX];
	/* installed: PREFIX/bin and PREFIX/share/doc/kcm-bpf; the tree: build/ and docs/ */
	static const char *const rel[] = { "../share/doc/kcm-bpf", "../docs" };

	if (dir[0])
		return dir;
	snprintf(dir, sizeof(dir), "kcm-bpf's docs");
	if (exe_dir(exe, sizeof(exe)))
		return dir;
	for (size_t i = 0; i < sizeof(rel) / sizeof(rel[0]); i++) {
		snprintf(probe, sizeof(probe), "%.*s/%s/flow-control.md", PATH_MAX - 100, exe, rel[i]);
		if (access(probe, R_OK))
			continue;
		snprintf(probe, sizeof(probe), "%.*s/%s", PATH_MAX - 100, exe, rel[i]);
		if (!realpath(probe, dir))
			snprintf(dir, sizeof(dir), "%s", probe);
		break;
	}
	return dir;
}

void help_docs(void)
{
	printf("\nThe documents named *.md above are in %s.\n", doc_dir());
}
