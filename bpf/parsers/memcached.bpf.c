// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * memcached binary protocol: a 24-byte header (magic, opcode, key length, extras length,
 * data type, vbucket/status, total body length, opaque, CAS), then extras, key, value.
 */
#include "kcm_parser.h"

#define MC_HEADER_LEN 24
#define MC_MAGIC_REQUEST 0x80
#define MC_MAGIC_RESPONSE 0x81

KCM_PARSER(memcached)
{
	__u32 magic = kcm_load_u8(ctx, 0);
	__s64 key_len, extras_len, body;

	/* judged on the first byte: a text-protocol client ("get k\r\n") fails at once */
	if (magic != MC_MAGIC_REQUEST && magic != MC_MAGIC_RESPONSE)
		return -EBADMSG;
	key_len = kcm_load_be16(ctx, 2);
	extras_len = kcm_load_u8(ctx, 4);
	body = kcm_load_be32(ctx, 8);
	/* the value is what is left of the body: it cannot be negative */
	if (key_len + extras_len > body)
		return -EBADMSG;
	return body + MC_HEADER_LEN;
}
