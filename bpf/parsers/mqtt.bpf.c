// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * MQTT 3.1.1 and 5.0 control packets: a fixed header of one type/flags byte and the
 * "remaining length", a variable byte integer of 1 to 4 bytes (7 bits each, least
 * significant first, 0x80 = another byte follows), then that many bytes.
 */
#include "kcm_parser.h"

#define MQTT_VARINT_MAX 4

KCM_PARSER(mqtt)
{
	__s64 remaining = 0;
	__u32 i, b;

	/* packet type 0 is forbidden in both versions: a zeroed or desynced stream */
	if (!(kcm_load_u8(ctx, 0) >> 4))
		return -EBADMSG;
	for (i = 0; i < MQTT_VARINT_MAX; i++) {
		b = kcm_load_u8(ctx, 1 + i);
		remaining |= (__s64)(b & 0x7f) << (7 * i);
		/* remaining length 0 is valid: PINGREQ, PINGRESP, DISCONNECT */
		if (!(b & 0x80))
			return 1 + (i + 1) + remaining;
	}
	/* the 4th byte asked for a 5th: above the 268,435,455 the encoding can hold */
	return -EBADMSG;
}
