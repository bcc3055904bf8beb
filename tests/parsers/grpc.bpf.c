// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * gRPC length-prefixed messages (PROTOCOL-HTTP2.md "Length-Prefixed-Message"): a
 * compressed-flag byte, a u32 big-endian length, the message. Over HTTP/2 these sit inside
 * DATA frames; this parser is for a stream that carries them bare (a deframed tunnel).
 */
#include "kcm_parser.h"

#define GRPC_PREFIX_LEN 5

KCM_PARSER(grpc)
{
	__u32 compressed = kcm_load_u8(ctx, 0);
	__s64 len = kcm_load_be32(ctx, 1);

	/* the flag is 0 or 1; anything else means the stream is not gRPC or lost sync */
	if (compressed > 1)
		return -EBADMSG;
	/* length 0 is valid: an empty protobuf message encodes to no bytes */
	return len + GRPC_PREFIX_LEN;
}
