// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * HTTP/2 (RFC 9113): frames of a 9-byte header (u24 big-endian payload length, type,
 * flags, stream id) and the payload. A client stream starts with the 24-byte connection
 * preface, which is not a frame: it is delivered as a message of its own.
 */
#include "kcm_parser.h"

#define H2_FRAME_HEADER_LEN 9
#define H2_PREFACE_LEN 24

/* "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" as three big-endian words, and its first 3 bytes. */
#define H2_PREFACE_0 0x505249202a204854ULL /* "PRI * HT" */
#define H2_PREFACE_1 0x54502f322e300d0aULL /* "TP/2.0\r\n" */
#define H2_PREFACE_2 0x0d0a534d0d0a0d0aULL /* "\r\nSM\r\n\r\n" */
#define H2_PREFACE_PRI 0x505249		   /* "PRI" */

KCM_PARSER(http2)
{
	__s64 len = kcm_load_be24(ctx, 0);

	/*
	 * A frame starting with "PRI" would carry a 5 MB payload (0x505249), so waiting for
	 * all 24 bytes before deciding never stalls a real frame. Any message offset is
	 * accepted: the parser cannot tell the first message of the stream from the others.
	 */
	if (len == H2_PREFACE_PRI && kcm_load_be64(ctx, 0) == H2_PREFACE_0 &&
	    kcm_load_be64(ctx, 8) == H2_PREFACE_1 && kcm_load_be64(ctx, 16) == H2_PREFACE_2)
		return H2_PREFACE_LEN;
	/* zero-length frames are valid (SETTINGS ACK, an empty DATA with END_STREAM) */
	return len + H2_FRAME_HEADER_LEN;
}
