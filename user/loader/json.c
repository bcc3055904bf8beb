// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* A minimal streaming JSON writer: tracks whether a comma is due at each depth. */
#include <inttypes.h>
#include <stdio.h>

#include "json.h"

#define MAX_DEPTH 16

static bool need_comma[MAX_DEPTH];
static int depth;
static bool pretty;

void json_set_pretty(bool on)
{
	pretty = on;
}

static void newline(int level)
{
	if (!pretty)
		return;
	putchar('\n');
	for (int i = 0; i < level; i++)
		fputs("  ", stdout);
}

static void key_prefix(const char *key)
{
	if (need_comma[depth])
		putchar(',');
	if (depth)
		newline(depth);
	need_comma[depth] = true;
	if (key) {
		putchar('"');
		fputs(key, stdout);
		fputs(pretty ? "\": " : "\":", stdout);
	}
}

/* Before a closing bracket: on a line of its own when the scope had members. */
static void close_scope(char c)
{
	if (need_comma[depth] && depth)
		newline(depth - 1);
	putchar(c);
	if (depth)
		depth--;
}

static void open_scope(const char *key, char c)
{
	key_prefix(key);
	putchar(c);
	if (depth < MAX_DEPTH - 1)
		need_comma[++depth] = false;
}

void json_start_object(const char *key)
{
	open_scope(key, '{');
}

void json_start_array(const char *key)
{
	open_scope(key, '[');
}

void json_end_object(void)
{
	close_scope('}');
}

void json_end_array(void)
{
	close_scope(']');
}

void json_string(const char *key, const char *val)
{
	key_prefix(key);
	putchar('"');
	for (const unsigned char *p = (const unsigned char *)val; *p; p++) {
		if (*p == '"' || *p == '\\')
			printf("\\%c", *p);
		else if (*p < 0x20)
			printf("\\u%04x", *p);
		else
			putchar(*p);
	}
	putchar('"');
}

void json_uint(const char *key, uint64_t val)
{
	key_prefix(key);
	printf("%" PRIu64, val);
}

void json_int(const char *key, int64_t val)
{
	key_prefix(key);
	printf("%" PRId64, val);
}

void json_null(const char *key)
{
	key_prefix(key);
	fputs("null", stdout);
}

void json_bool(const char *key, bool val)
{
	key_prefix(key);
	fputs(val ? "true" : "false", stdout);
}

void json_done(void)
{
	putchar('\n');
	depth = 0;
	need_comma[0] = false;
	fflush(stdout);
}
