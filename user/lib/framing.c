// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Length-prefix framing: the same arithmetic as the BPF parser, plus a spec syntax. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kcm.h"

/* Mirrors kcm_frame_len() in bpf/kcm.bpf.c; tests/unit checks them against each other. */
int64_t kcm_frame_length(const struct kcm_framing *f, const void *buf, size_t len, uint64_t max)
{
	const uint8_t *b = buf;
	uint64_t hdr_end = (uint64_t)f->len_offset + f->len_size, v = 0;
	int64_t total;

	if (len < hdr_end)
		return 0;
	for (uint32_t i = 0; i < f->len_size; i++) {
		uint8_t c = b[f->len_offset + i];

		if (f->big_endian)
			v = (v << 8) | c;
		else
			v |= (uint64_t)c << (8 * i);
	}
	if (v > (1ULL << 40))
		return -EMSGSIZE;
	total = (int64_t)v + f->len_adjust;
	if (total > 0 && (uint64_t)total > max)
		return -EMSGSIZE;
	if (total < (int64_t)hdr_end || total <= 0)
		return -EBADMSG;
	return total;
}

static const struct {
	const char *name;
	const char *spec;
} presets[] = {
	{ "thrift", "u32be+4" },
	{ "dns", "u16be+2" },
	{ "http2", "u24be+9" },
	{ "kafka", "u32be+4" },
};

static int framing_parse(const char *spec, struct kcm_framing *out);

int kcm_framing_parse(const char *spec, struct kcm_framing *out)
{
	int err = framing_parse(spec, out);

	if (err)
		errno = -err;
	return err ? -1 : 0;
}

static int framing_parse(const char *spec, struct kcm_framing *out)
{
	struct kcm_framing f = { 0 };
	const char *p = spec;
	char *end;
	long bits;

	if (!spec || !out)
		return -EINVAL;
	for (size_t i = 0; i < sizeof(presets) / sizeof(presets[0]); i++)
		if (!strcmp(spec, presets[i].name))
			return framing_parse(presets[i].spec, out);
	if (*p++ != 'u')
		return -EINVAL;
	if (*p < '0' || *p > '9')
		return -EINVAL;
	bits = strtol(p, &end, 10);
	p = end;
	if (bits != 8 && bits != 16 && bits != 24 && bits != 32 && bits != 64)
		return -EINVAL;
	f.len_size = bits / 8;
	f.big_endian = true;
	if (!strncmp(p, "be", 2)) {
		p += 2;
	} else if (!strncmp(p, "le", 2)) {
		f.big_endian = false;
		p += 2;
	} else if (bits != 8) {
		return -EINVAL; /* byte order is not optional for wider fields */
	}
	if (*p == '+' || *p == '-') {
		long long adj;

		if (p[1] < '0' || p[1] > '9')
			return -EINVAL;
		errno = 0;
		adj = strtoll(p, &end, 10);
		if (errno || adj > (1LL << 32) || adj < -(1LL << 32))
			return -EINVAL;
		f.len_adjust = adj;
		p = end;
	}
	if (*p == '@') {
		unsigned long off;

		if (p[1] < '0' || p[1] > '9')
			return -EINVAL;
		errno = 0;
		off = strtoul(p + 1, &end, 10);
		if (errno || off > 4096)
			return -EINVAL;
		f.len_offset = off;
		p = end;
	}
	if (*p)
		return -EINVAL;
	*out = f;
	return 0;
}

int kcm_framing_format(const struct kcm_framing *f, char *buf, size_t len)
{
	const char *order = f->len_size == 1 ? "" : f->big_endian ? "be" : "le";

	return snprintf(buf, len, "u%u%s%+lld@%u", f->len_size * 8, order,
			(long long)f->len_adjust, f->len_offset);
}
