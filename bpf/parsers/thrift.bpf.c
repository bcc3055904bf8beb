// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Thrift framed transport (TFramedTransport): a u32 big-endian frame size, then the frame. */
#include "kcm_parser.h"

KCM_PARSER(thrift)
{
	/* 64-bit sum: in u32, sizes near 4 GiB would wrap to a length of 0..3 */
	__s64 size = kcm_load_be32(ctx, 0);

	/* Apache Thrift reads the size as an i32: "Read a negative frame size" (CORRUPTED_DATA) */
	if (size > 0x7fffffff)
		return -EBADMSG;
	/*
	 * Size 0 is delivered, as a 4-byte message. It frames unambiguously (the stream stays
	 * in sync), Thrift's frame readers refuse only negative and oversized frames, and the
	 * Java TFramedTransport writes one when flush() finds nothing written. Whether an empty
	 * request is an error is the member's call: -EBADMSG would end the connection and
	 * every request in flight on it.
	 */
	return size + 4;
}
