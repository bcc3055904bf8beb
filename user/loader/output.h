/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * One output path for text and JSON, as iproute2 writes it: each field is printed once,
 * with its JSON key and its text format, and goes to whichever output -j chose.
 *	print_uint(PRINT_ANY, "slot", "    slot %-4llu", slot);
 * PRINT_JSON fields appear only in JSON, PRINT_FP ones only in text. The open/close
 * calls shape the JSON and print nothing in text; print_nl() ends a text line.
 */
#ifndef KCM_LOADER_OUTPUT_H
#define KCM_LOADER_OUTPUT_H

#include <stdbool.h>
#include <stdint.h>

enum print_kind { PRINT_ANY, PRINT_JSON, PRINT_FP };

/* @fmt takes the value with %llu / %lld / %s (text only; NULL: nothing in text) */
void print_uint(enum print_kind kind, const char *key, const char *fmt, uint64_t v);
void print_int(enum print_kind kind, const char *key, const char *fmt, int64_t v);
void print_string(enum print_kind kind, const char *key, const char *fmt, const char *s);
/* JSON true/false; text prints @fmt with "yes" or "no" */
void print_bool(enum print_kind kind, const char *key, const char *fmt, bool v);
/* JSON null; text prints @fmt as it is */
void print_null(enum print_kind kind, const char *key, const char *fmt);
void print_nl(void);
/* The end of one record of a stream (an event): a newline in both outputs, flushed. */
void end_record(void);
void open_json_object(const char *key);
void close_json_object(void);
void open_json_array(const char *key);
void close_json_array(void);

#endif /* KCM_LOADER_OUTPUT_H */
