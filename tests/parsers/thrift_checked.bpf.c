// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * A second Thrift parser, a different program from bpf/parsers/thrift.bpf.c: it also
 * refuses frames too short for a message header. Tests attach it next to the shipped
 * one to show two parsers feeding one group.
 */
#include "kcm_parser.h"

KCM_PARSER(thrift_checked)
{
	__u32 size = kcm_load_be32(ctx, 0);

	if (size < 8)
		return -EBADMSG;
	return (__s64)size + 4;
}
