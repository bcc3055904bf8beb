// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Kafka wire protocol: an i32 big-endian size, then the request or response
 * (https://kafka.apache.org/protocol#protocol_common).
 */
#include "kcm_parser.h"

/* Requests and responses both start with a correlation_id (4 bytes). */
#define KAFKA_MIN_SIZE 4

KCM_PARSER(kafka)
{
	__s32 size = (__s32)kcm_load_be32(ctx, 0);

	/* Negative sizes included. A request has 8 bytes of header at least, but a v0
	 * Heartbeat response is 6: the parser serves request and response streams. */
	if (size < KAFKA_MIN_SIZE)
		return -EBADMSG;
	return (__s64)size + 4;
}
