// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Unit tests of libkcm's framing: kcm_frame_length(), kcm_framing_parse() and
 * kcm_framing_format(). No root, no BPF: pure arithmetic and parsing.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kcm.h"
#include "harness.h"

/* Store @v in @size bytes at @buf in the given byte order. */
static void put_field(uint8_t *buf, unsigned int size, bool be, uint64_t v)
{
	for (unsigned int i = 0; i < size; i++) {
		uint8_t byte = (uint8_t)(v >> (8 * i));

		buf[be ? size - 1 - i : i] = byte;
	}
}

static const char *spec_of(const struct kcm_framing *f)
{
	static char s[64];

	kcm_framing_format(f, s, sizeof(s));
	return s;
}

static bool framing_eq(const struct kcm_framing *a, const struct kcm_framing *b)
{
	/* Byte order means nothing for a one-byte field. */
	bool order_eq = a->len_size == 1 || a->big_endian == b->big_endian;

	return a->len_offset == b->len_offset && a->len_size == b->len_size && order_eq &&
	       a->len_adjust == b->len_adjust;
}

static const unsigned int widths[] = { 1, 2, 3, 4, 8 };

/* Every width in both orders: the field is read with the right bytes in the right order. */
static void test_widths(void)
{
	uint8_t buf[64];

	for (size_t w = 0; w < sizeof(widths) / sizeof(widths[0]); w++) {
		for (int be = 0; be <= 1; be++) {
			unsigned int size = widths[w];
			struct kcm_framing f = { 0, size, be, (int64_t)size };
			/* distinct bytes in every position, within the width */
			uint64_t v = size == 1 ? 0x2a : size == 2 ? 0x1234 : size == 3 ? 0x012345 :
				     size == 4 ? 0x00012345 : 0x000000000102a3b4ull;

			memset(buf, 0xee, sizeof(buf));
			put_field(buf, size, be, v);
			CHECK_EQ(kcm_frame_length(&f, buf, sizeof(buf), 1ull << 32), v + size,
				 "u%u%s field 0x%" PRIx64, size * 8, be ? "be" : "le", v);
			/* the wrong order must give a different answer (except one byte) */
			if (size > 1) {
				struct kcm_framing g = f;
				int64_t r;

				g.big_endian = !be;
				r = kcm_frame_length(&g, buf, sizeof(buf), 1ull << 40);
				if (r == (int64_t)(v + size)) {
					printf("  %s: u%u read in the other order gave the same %" PRId64
					       "\n", cur_name, size * 8, r);
					cur_failed = true;
				}
			}
		}
	}
}

/* The largest value of every width that fits under max, and the smallest that does not. */
static void test_width_limits(void)
{
	uint8_t buf[16] = { 0 };

	for (size_t w = 0; w < sizeof(widths) / sizeof(widths[0]); w++) {
		unsigned int size = widths[w];
		uint64_t all = size == 8 ? UINT64_MAX : (1ull << (8 * size)) - 1;

		for (int be = 0; be <= 1; be++) {
			struct kcm_framing f = { 0, size, be, 0 };

			put_field(buf, size, be, all);
			if (size <= 4)
				CHECK_EQ(kcm_frame_length(&f, buf, size, 1ull << 33), all,
					 "u%u%s all ones", size * 8, be ? "be" : "le");
			else
				CHECK_EQ(kcm_frame_length(&f, buf, size, 1ull << 33), -EMSGSIZE,
					 "u64%s all ones", be ? "be" : "le");
		}
	}
}

static void test_offsets(void)
{
	static const uint32_t offs[] = { 0, 1, 3, 7, 100, 4096 };
	static uint8_t buf[4096 + 64];

	for (size_t o = 0; o < sizeof(offs) / sizeof(offs[0]); o++) {
		for (size_t w = 0; w < sizeof(widths) / sizeof(widths[0]); w++) {
			unsigned int size = widths[w];
			uint64_t hdr_end = offs[o] + size;
			/* the adjust covers the header, so even a u8 field reaches past it */
			struct kcm_framing f = { offs[o], size, true, (int64_t)hdr_end };

			memset(buf, 0xff, sizeof(buf)); /* junk around the field must not count */
			put_field(buf + offs[o], size, true, 50);
			CHECK_EQ(kcm_frame_length(&f, buf, sizeof(buf), 1 << 20), hdr_end + 50,
				 "u%ube at %u", size * 8, offs[o]);
			CHECK_EQ(kcm_frame_length(&f, buf, hdr_end, 1 << 20), hdr_end + 50,
				 "u%ube at %u, exactly the header present", size * 8, offs[o]);
			CHECK_EQ(kcm_frame_length(&f, buf, hdr_end - 1, 1 << 20), 0,
				 "u%ube at %u, one byte short", size * 8, offs[o]);
		}
	}
}

static void test_adjust(void)
{
	uint8_t buf[8];
	struct kcm_framing f = { 0, 4, true, 0 };

	put_field(buf, 4, true, 100);
	f.len_adjust = 4;
	CHECK_EQ(kcm_frame_length(&f, buf, 4, 1 << 20), 104, "u32be+4, field 100");
	f.len_adjust = 0;
	CHECK_EQ(kcm_frame_length(&f, buf, 4, 1 << 20), 100, "u32be+0, field 100");
	f.len_adjust = -4;
	CHECK_EQ(kcm_frame_length(&f, buf, 4, 1 << 20), 96, "u32be-4, field 100");
	f.len_adjust = -96;
	CHECK_EQ(kcm_frame_length(&f, buf, 4, 1 << 20), 4, "u32be-96, field 100: header only");
	f.len_adjust = 1ll << 20;
	CHECK_EQ(kcm_frame_length(&f, buf, 4, 1 << 21), (1 << 20) + 100, "u32be+2^20");
	/* HTTP/2: u24 length of the payload, 9-byte header */
	f = KCM_FRAMING_HTTP2;
	put_field(buf, 3, true, 0);
	CHECK_EQ(kcm_frame_length(&f, buf, 3, 1 << 20), 9, "http2 empty payload");
	put_field(buf, 3, true, 16384);
	CHECK_EQ(kcm_frame_length(&f, buf, 3, 1 << 20), 16384 + 9, "http2 16 KiB payload");
}

static void test_header_incomplete(void)
{
	uint8_t buf[16] = { 0, 0, 0, 10 };
	struct kcm_framing f = KCM_FRAMING_THRIFT;

	for (size_t len = 0; len < 4; len++)
		CHECK_EQ(kcm_frame_length(&f, buf, len, 1 << 20), 0, "thrift, %zu header bytes", len);
	CHECK_EQ(kcm_frame_length(&f, buf, 4, 1 << 20), 14, "thrift, whole header");
	f = (struct kcm_framing){ 5, 8, false, 0 };
	CHECK_EQ(kcm_frame_length(&f, buf, 12, 1 << 20), 0, "u64le@5, 12 of 13 bytes");
	/* a short header is "need more", even when what is there would be invalid */
	memset(buf, 0xff, sizeof(buf));
	f = KCM_FRAMING_THRIFT;
	CHECK_EQ(kcm_frame_length(&f, buf, 3, 16), 0, "thrift, 3 bytes of 0xff");
}

static void test_below_header(void)
{
	uint8_t buf[16];
	struct kcm_framing f = { 0, 4, true, 0 };

	put_field(buf, 4, true, 3);
	CHECK_EQ(kcm_frame_length(&f, buf, 4, 1 << 20), -EBADMSG, "u32be+0, field 3 < header 4");
	put_field(buf, 4, true, 0);
	CHECK_EQ(kcm_frame_length(&f, buf, 4, 1 << 20), -EBADMSG, "u32be+0, field 0");
	put_field(buf, 4, true, 4);
	CHECK_EQ(kcm_frame_length(&f, buf, 4, 1 << 20), 4, "u32be+0, field 4 == header");
	f.len_adjust = -10;
	put_field(buf, 4, true, 5);
	CHECK_EQ(kcm_frame_length(&f, buf, 4, 1 << 20), -EBADMSG, "u32be-10, field 5: negative");
	f = (struct kcm_framing){ 6, 2, true, 0 };
	put_field(buf + 6, 2, true, 7);
	CHECK_EQ(kcm_frame_length(&f, buf, 8, 1 << 20), -EBADMSG, "u16be@6, field 7 < header 8");
	put_field(buf + 6, 2, true, 8);
	CHECK_EQ(kcm_frame_length(&f, buf, 8, 1 << 20), 8, "u16be@6, field 8 == header");
}

static void test_zero_body(void)
{
	uint8_t buf[4] = { 0 };
	struct kcm_framing f = KCM_FRAMING_THRIFT;

	CHECK_EQ(kcm_frame_length(&f, buf, 4, 1 << 20), 4, "thrift, empty body");
	f = KCM_FRAMING_DNS;
	CHECK_EQ(kcm_frame_length(&f, buf, 2, 1 << 20), 2, "dns, empty body");
}

static void test_over_max(void)
{
	uint8_t buf[4];
	struct kcm_framing f = KCM_FRAMING_THRIFT;

	put_field(buf, 4, true, 65536 - 4);
	CHECK_EQ(kcm_frame_length(&f, buf, 4, 65536), 65536, "thrift, exactly max");
	put_field(buf, 4, true, 65536 - 3);
	CHECK_EQ(kcm_frame_length(&f, buf, 4, 65536), -EMSGSIZE, "thrift, max + 1");
	put_field(buf, 4, true, 0);
	CHECK_EQ(kcm_frame_length(&f, buf, 4, 4), 4, "thrift, empty body with max 4");
	CHECK_EQ(kcm_frame_length(&f, buf, 4, 3), -EMSGSIZE, "thrift, empty body with max 3");
	/* the adjust counts towards max */
	f.len_adjust = 1000;
	put_field(buf, 4, true, 100);
	CHECK_EQ(kcm_frame_length(&f, buf, 4, 1099), -EMSGSIZE, "u32be+1000, field 100, max 1099");
	CHECK_EQ(kcm_frame_length(&f, buf, 4, 1100), 1100, "u32be+1000, field 100, max 1100");
}

/* Field values that overflow a signed 64-bit length must not wrap into valid ones. */
static void test_huge(void)
{
	static const uint64_t vals[] = {
		UINT64_MAX, 1ull << 63, (1ull << 63) - 1, (1ull << 63) + 4, 1ull << 41,
		(1ull << 40) + 1, UINT32_MAX, (uint64_t)UINT32_MAX + 1,
	};
	uint8_t buf[8];

	for (size_t i = 0; i < sizeof(vals) / sizeof(vals[0]); i++) {
		for (int be = 0; be <= 1; be++) {
			struct kcm_framing f = { 0, 8, be, 4 };

			put_field(buf, 8, be, vals[i]);
			CHECK_EQ(kcm_frame_length(&f, buf, 8, 256u << 20), -EMSGSIZE,
				 "u64%s+4 field 0x%" PRIx64, be ? "be" : "le", vals[i]);
			/* a negative adjust must not bring a wrapped value back into range */
			f.len_adjust = -(1ll << 32);
			CHECK_EQ(kcm_frame_length(&f, buf, 8, 256u << 20),
				 vals[i] == (uint64_t)UINT32_MAX || vals[i] == (uint64_t)UINT32_MAX + 1 ?
					 -EBADMSG : -EMSGSIZE,
				 "u64%s-2^32 field 0x%" PRIx64, be ? "be" : "le", vals[i]);
		}
	}
	{
		struct kcm_framing f = { 0, 4, true, 4 };

		put_field(buf, 4, true, UINT32_MAX);
		CHECK_EQ(kcm_frame_length(&f, buf, 4, 256u << 20), -EMSGSIZE, "u32be+4 0xffffffff");
		CHECK_EQ(kcm_frame_length(&f, buf, 4, 1ull << 33), (int64_t)UINT32_MAX + 4,
			 "u32be+4 0xffffffff, max 2^33");
	}
}

/* @max is a uint64_t: no limit in range must reject a small frame. */
static void test_max_range(void)
{
	uint8_t buf[4];
	struct kcm_framing f = KCM_FRAMING_THRIFT;

	put_field(buf, 4, true, 96);
	CHECK_EQ(kcm_frame_length(&f, buf, 4, (uint64_t)INT64_MAX), 100, "max INT64_MAX");
	CHECK_EQ(kcm_frame_length(&f, buf, 4, UINT64_MAX), 100, "max UINT64_MAX");
	CHECK_EQ(kcm_frame_length(&f, buf, 4, (uint64_t)INT64_MAX + 1), 100, "max 2^63");
}

static void test_presets(void)
{
	static const struct {
		const char *name;
		struct kcm_framing want;
	} presets[] = {
		{ "thrift", KCM_FRAMING_THRIFT },
		{ "dns", KCM_FRAMING_DNS },
		{ "http2", KCM_FRAMING_HTTP2 },
		{ "kafka", KCM_FRAMING_THRIFT }, /* Kafka: int32 size, big-endian, excluding itself */
	};

	for (size_t i = 0; i < sizeof(presets) / sizeof(presets[0]); i++) {
		struct kcm_framing got;
		char want_s[64];

		memset(&got, 0x5a, sizeof(got));
		CHECK_EQ(kcm_framing_parse(presets[i].name, &got), 0, "parse \"%s\"", presets[i].name);
		snprintf(want_s, sizeof(want_s), "%s", spec_of(&presets[i].want));
		CHECK_STR(spec_of(&got), want_s, "preset \"%s\"", presets[i].name);
	}
}

static void test_parse_ok(void)
{
	static const struct {
		const char *spec;
		struct kcm_framing want;
	} cases[] = {
		{ "u32be+4", { 0, 4, true, 4 } },
		{ "u16be+2@0", { 0, 2, true, 2 } },
		{ "u24be+9", { 0, 3, true, 9 } },
		{ "u8+1@3", { 3, 1, true, 1 } },
		{ "u8", { 0, 1, true, 0 } },
		{ "u8le+0", { 0, 1, false, 0 } },
		{ "u64le-8", { 0, 8, false, -8 } },
		{ "u64be+0@4096", { 4096, 8, true, 0 } },
		{ "u32le", { 0, 4, false, 0 } },
		{ "u16le@2", { 2, 2, false, 0 } },
		{ "u32be-4294967296", { 0, 4, true, -(1ll << 32) } },
		{ "u32be+4294967296", { 0, 4, true, 1ll << 32 } },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct kcm_framing got;
		char want_s[64];
		int r;

		memset(&got, 0x5a, sizeof(got));
		r = kcm_framing_parse(cases[i].spec, &got);
		CHECK_EQ(r, 0, "parse \"%s\"", cases[i].spec);
		if (r)
			continue;
		snprintf(want_s, sizeof(want_s), "%s", spec_of(&cases[i].want));
		CHECK_STR(spec_of(&got), want_s, "parse \"%s\"", cases[i].spec);
		CHECK_EQ(got.big_endian, cases[i].want.big_endian, "parse \"%s\" byte order",
			 cases[i].spec);
	}
}

/* Accept either convention for the error (see the report): -EINVAL, or -1 with errno. */
static int parse_err(const char *spec, struct kcm_framing *out)
{
	int r;

	errno = 0;
	r = kcm_framing_parse(spec, out);
	if (r == -1 && errno)
		return -errno;
	return r;
}

static void test_parse_errors(void)
{
	static const char *const bad[] = {
		"u12", "u32", "u32xx", "u32be+", "u32be@", "u32be+4junk", "u32be+4@0x", "u32be+4@",
		"u32be-", "u32be++4", "u32be+-4", "u32be@-1", "u32be@4097", "u32be+4294967297",
		"u32be-4294967297", "u32be+99999999999999999999", "u32be@99999999999999999999",
		"", "u", "ube", "U32be+4", "i32be+4", "32be+4", "u0", "u7", "u9", "u128be",
		"u32BE+4", "u32be +4", " u32be+4", "u32be+4 ", "u32be@1+4", "u-32be", "u16be+2@0@0",
		"Thrift", "thrift ", "u32le+4x", "u24",
	};
	struct kcm_framing out, untouched;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		memset(&out, 0x5a, sizeof(out));
		untouched = out;
		CHECK_EQ(parse_err(bad[i], &out), -EINVAL, "parse \"%s\"", bad[i]);
		CHECK_EQ(memcmp(&out, &untouched, sizeof(out)), 0, "\"%s\" left the output alone",
			 bad[i]);
	}
	CHECK_EQ(parse_err(NULL, &out), -EINVAL, "parse NULL");
	CHECK_EQ(parse_err("u32be+4", NULL), -EINVAL, "parse into NULL");
}

static void test_format(void)
{
	struct kcm_framing f = KCM_FRAMING_THRIFT;
	char s[64];
	int n;

	n = kcm_framing_format(&f, s, sizeof(s));
	CHECK_STR(s, "u32be+4@0", "thrift");
	CHECK_EQ(n, strlen(s), "thrift return value");
	f = (struct kcm_framing){ 3, 1, true, 1 };
	kcm_framing_format(&f, s, sizeof(s));
	CHECK_STR(s, "u8+1@3", "u8 has no byte order");
	f = (struct kcm_framing){ 12, 8, false, -8 };
	kcm_framing_format(&f, s, sizeof(s));
	CHECK_STR(s, "u64le-8@12", "u64le-8@12");
	/* snprintf semantics: a short buffer is terminated and the full length is returned */
	f = KCM_FRAMING_HTTP2;
	n = kcm_framing_format(&f, s, 4);
	CHECK_STR(s, "u24", "short buffer");
	CHECK_EQ(n, strlen("u24be+9@0"), "short buffer return value");
}

static void test_roundtrip(void)
{
	static const int64_t adjusts[] = { 0, 1, 4, 9, -1, -8, 1ll << 32, -(1ll << 32) };
	static const uint32_t offs[] = { 0, 1, 17, 4096 };
	unsigned int count = 0;

	for (size_t w = 0; w < sizeof(widths) / sizeof(widths[0]); w++)
		for (int be = 0; be <= 1; be++)
			for (size_t a = 0; a < sizeof(adjusts) / sizeof(adjusts[0]); a++)
				for (size_t o = 0; o < sizeof(offs) / sizeof(offs[0]); o++) {
					struct kcm_framing f = { offs[o], widths[w], be, adjusts[a] };
					struct kcm_framing g;
					char s[64], t[64];
					int r;

					kcm_framing_format(&f, s, sizeof(s));
					memset(&g, 0x5a, sizeof(g));
					r = kcm_framing_parse(s, &g);
					CHECK_EQ(r, 0, "parse(format()) of \"%s\"", s);
					if (!r && !framing_eq(&f, &g)) {
						printf("  %s: \"%s\" came back as \"%s\"\n", cur_name, s,
						       spec_of(&g));
						cur_failed = true;
					}
					/* and format(parse()) is a fixed point */
					kcm_framing_format(&g, t, sizeof(t));
					CHECK_STR(t, s, "format(parse(\"%s\"))", s);
					count++;
				}
	CHECK_EQ(count, 5 * 2 * 8 * 4, "cases run");
	/* short specs normalize to the long form and parse back the same */
	{
		static const char *const specs[] = { "u32be+4", "u16be+2@0", "u8", "u64le-8",
						     "dns", "http2", "kafka" };

		for (size_t i = 0; i < sizeof(specs) / sizeof(specs[0]); i++) {
			struct kcm_framing f, g;
			char s[64];

			if (kcm_framing_parse(specs[i], &f)) {
				printf("  %s: \"%s\" did not parse\n", cur_name, specs[i]);
				cur_failed = true;
				continue;
			}
			kcm_framing_format(&f, s, sizeof(s));
			CHECK_EQ(kcm_framing_parse(s, &g), 0, "parse \"%s\" (from \"%s\")", s, specs[i]);
			CHECK_EQ(framing_eq(&f, &g), true, "\"%s\" -> \"%s\" -> same framing",
				 specs[i], s);
		}
	}
}

/* A parsed framing measures real messages the way its name says. */
static void test_parse_then_measure(void)
{
	struct kcm_framing f;
	uint8_t buf[32] = { 0 };

	kcm_framing_parse("u16le+2@3", &f);
	buf[3] = 0x10;
	buf[4] = 0x01; /* 0x0110 little-endian */
	CHECK_EQ(kcm_frame_length(&f, buf, 5, 1 << 20), 0x0110 + 2, "u16le+2@3");
	CHECK_EQ(kcm_frame_length(&f, buf, 4, 1 << 20), 0, "u16le+2@3 with 4 bytes");
	kcm_framing_parse("u24be+9", &f);
	buf[0] = 0x00;
	buf[1] = 0x40;
	buf[2] = 0x00;
	CHECK_EQ(kcm_frame_length(&f, buf, 3, 1 << 20), 0x4000 + 9, "u24be+9 (http2 16 KiB)");
	kcm_framing_parse("u64le-8", &f);
	memset(buf, 0, sizeof(buf));
	buf[0] = 20;
	CHECK_EQ(kcm_frame_length(&f, buf, 8, 1 << 20), 12, "u64le-8, field 20");
	buf[0] = 15;
	CHECK_EQ(kcm_frame_length(&f, buf, 8, 1 << 20), -EBADMSG, "u64le-8, field 15 < 16");
}

static const struct harness_test tests[] = {
	{ "frame_widths_both_orders", test_widths },
	{ "frame_width_limits", test_width_limits },
	{ "frame_offsets", test_offsets },
	{ "frame_adjust", test_adjust },
	{ "frame_header_incomplete", test_header_incomplete },
	{ "frame_below_header_end", test_below_header },
	{ "frame_zero_length_body", test_zero_body },
	{ "frame_over_max", test_over_max },
	{ "frame_huge_values", test_huge },
	{ "frame_max_full_range", test_max_range },
	{ "parse_presets", test_presets },
	{ "parse_valid", test_parse_ok },
	{ "parse_errors", test_parse_errors },
	{ "format", test_format },
	{ "parse_format_roundtrip", test_roundtrip },
	{ "parse_then_measure", test_parse_then_measure },
};

int main(int argc, char **argv)
{
	return harness_main("unit_framing", tests, sizeof(tests) / sizeof(tests[0]), 10, argc, argv);
}
