// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* One output path for text and JSON (output.h), over the JSON writer (json.c). */
#include <stdio.h>

#include "json.h"
#include "loader.h"
#include "output.h"

static bool to_json(enum print_kind kind)
{
	return env.json && kind != PRINT_FP;
}

static bool to_text(enum print_kind kind, const char *fmt)
{
	return !env.json && kind != PRINT_JSON && fmt;
}

void print_uint(enum print_kind kind, const char *key, const char *fmt, uint64_t v)
{
	if (to_json(kind))
		json_uint(key, v);
	else if (to_text(kind, fmt))
		printf(fmt, (unsigned long long)v);
}

void print_int(enum print_kind kind, const char *key, const char *fmt, int64_t v)
{
	if (to_json(kind))
		json_int(key, v);
	else if (to_text(kind, fmt))
		printf(fmt, (long long)v);
}

void print_string(enum print_kind kind, const char *key, const char *fmt, const char *s)
{
	if (to_json(kind))
		json_string(key, s);
	else if (to_text(kind, fmt))
		printf(fmt, s);
}

void print_bool(enum print_kind kind, const char *key, const char *fmt, bool v)
{
	if (to_json(kind))
		json_bool(key, v);
	else if (to_text(kind, fmt))
		printf(fmt, v ? "yes" : "no");
}

void print_null(enum print_kind kind, const char *key, const char *fmt)
{
	if (to_json(kind))
		json_null(key);
	else if (to_text(kind, fmt))
		fputs(fmt, stdout);
}

void print_nl(void)
{
	if (!env.json)
		putchar('\n');
}

void end_record(void)
{
	if (env.json)
		json_done();
	else
		putchar('\n');
	fflush(stdout);
}

void open_json_object(const char *key)
{
	if (env.json)
		json_start_object(key);
}

void close_json_object(void)
{
	if (env.json)
		json_end_object();
}

void open_json_array(const char *key)
{
	if (env.json)
		json_start_array(key);
}

void close_json_array(void)
{
	if (env.json)
		json_end_array();
}
