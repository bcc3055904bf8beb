// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Open a pinned mux map by map (status, stats and monitor read it this way). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <bpf/bpf.h>

#include "kcm.h"
#include "loader.h"
#include "pinned.h"

void pinned_open(const char *name, struct pinned *p)
{
	char path[256];

	p->missing = 0;
	for (int i = 0; i < KCM_PIN_COUNT; i++) {
		bool is_map = i < KCM_MAP_COUNT;
		const char *f = kcm_pin_file(i);
		int fd;

		kcm_pin_path(path, sizeof(path), name, f);
		fd = bpf_obj_get(path);
		if (fd < 0 && !p->missing++)
			snprintf(p->first_missing, sizeof(p->first_missing), "%s", f);
		if (is_map)
			p->map[i] = fd;
		else
			p->prog[i - KCM_MAP_COUNT] = fd;
	}
	p->parser_map[0] = p->map[KCM_MAP_TRANSPORTS];
	for (__u32 id = 0; id < KCM_MAX_PARSERS; id++) {
		char file[32];

		if (id)
			p->parser_map[id] = -1;
		if (p->map[KCM_MAP_PARSERS] < 0 ||
		    bpf_map_lookup_elem(p->map[KCM_MAP_PARSERS], &id, &p->parser[id]))
			memset(&p->parser[id], 0, sizeof(p->parser[id]));
		if (!id || !p->parser[id].prog_id)
			continue;
		snprintf(file, sizeof(file), KCM_PARSER_MAP_FMT, id);
		kcm_pin_path(path, sizeof(path), name, file);
		p->parser_map[id] = bpf_obj_get(path);
	}
}

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

/* Safe to call twice: every fd is -1 afterwards. */
void pinned_close(struct pinned *p)
{
	for (int i = 0; i < KCM_MAP_COUNT; i++)
		close_fd(&p->map[i]);
	for (int i = 0; i < KCM_PROG_COUNT; i++)
		close_fd(&p->prog[i]);
	for (int i = 1; i < KCM_MAX_PARSERS; i++)
		close_fd(&p->parser_map[i]);
	p->parser_map[0] = -1; /* map[KCM_MAP_TRANSPORTS], closed above */
}

/* Sum of the data plane's per-CPU counters. */
struct kcm_counters pinned_counters(struct pinned *p, int ncpu)
{
	struct kcm_counters *pc = calloc(ncpu, sizeof(*pc)), t = { 0 };
	__u32 key = 0;

	if (pc && !bpf_map_lookup_elem(p->map[KCM_MAP_COUNTERS], &key, pc))
		for (int c = 0; c < ncpu; c++) {
			t.rx_msgs += pc[c].rx_msgs;
			t.rx_bytes += pc[c].rx_bytes;
			t.rx_redirects += pc[c].rx_redirects;
			t.rx_drops += pc[c].rx_drops;
			t.err_too_big += pc[c].err_too_big;
			t.err_bad_len += pc[c].err_bad_len;
			t.need_more_hdr += pc[c].need_more_hdr;
			t.requeued_msgs += pc[c].requeued_msgs;
		}
	free(pc);
	return t;
}

int pinned_name_arg(const char *cmd, const char *name, char *path, size_t len)
{
	if (kcm_name_check(name))
		return usage_error(cmd, "invalid name '%s'", name);
	kcm_pin_path(path, len, name, NULL);
	if (access(path, F_OK))
		return errno == ENOENT ? fail("no mux named '%s' (no %s)", name, path) :
		       fail("failed to read %s: %s", path, strerror(errno));
	return EXIT_OK;
}

int pinned_open_whole(const char *name, struct pinned *p)
{
	char path[256];

	pinned_open(name, p);
	if (!p->missing)
		return EXIT_OK;
	pinned_close(p);
	kcm_pin_path(path, sizeof(path), name, NULL);
	if (access(path, F_OK))
		return fail("no mux named '%s' (no %s)", name, path);
	return fail("mux '%s' is incomplete (no %s): `kcm-loader clean` removes it", name,
		    p->first_missing);
}
