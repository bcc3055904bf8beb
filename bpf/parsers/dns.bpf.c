// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* DNS over TCP (RFC 1035 4.2.2, RFC 7766): a u16 big-endian length, then the message. */
#include "kcm_parser.h"

/* Every DNS message starts with the 12-byte header (ID, flags, four counts). */
#define DNS_HEADER_LEN 12

KCM_PARSER(dns)
{
	__s64 len = kcm_load_be16(ctx, 0);

	/* length 0 included: no message fits, so the stream is not DNS or lost sync */
	if (len < DNS_HEADER_LEN)
		return -EBADMSG;
	return len + 2;
}
