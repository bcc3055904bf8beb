/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* A minimal streaming JSON writer (one document on stdout). */
#ifndef KCM_JSON_H
#define KCM_JSON_H

#include <stdbool.h>
#include <stdint.h>

void json_start_object(const char *key);
void json_end_object(void);
void json_start_array(const char *key);
void json_end_array(void);
void json_string(const char *key, const char *val);
void json_uint(const char *key, uint64_t val);
void json_int(const char *key, int64_t val);
void json_bool(const char *key, bool val);
void json_null(const char *key);
/* -p: one member per line, indented */
void json_set_pretty(bool on);
/* Finish the document with a newline. */
void json_done(void);

#endif /* KCM_JSON_H */
