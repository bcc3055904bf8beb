// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* How a mux is made, as create and serve take it from the command line. */
#include <getopt.h>
#include <linux/bpf.h>
#include <string.h>

#include "kcm_shared.h"
#include "loader.h"
#include "mux_args.h"

void mux_args_init(struct mux_args *a)
{
	memset(a, 0, sizeof(*a));
	a->o.sz = sizeof(a->o);
	a->o.framing = KCM_FRAMING_THRIFT;
	a->o.mount_bpffs = true;
	a->o.persistent = true;
}

void mux_args_help(FILE *f)
{
	fprintf(f,
		"  --framing SPEC        length prefix: u<bits><be|le>[+-adjust][@offset], e.g.\n"
		"                        u32be+4 (Thrift, default), u16be+2 (DNS), u24be+9@0 (HTTP/2),\n"
		"                        or a preset: thrift, dns, http2, kafka\n"
		"  --prog OBJ            find messages with the stream parser in BPF object OBJ\n"
		"                        (written with kcm_parser.h, see parser-sdk.md);\n"
		"                        transports may then have parsers of their own\n"
		"  --frame NAME          --prog with a shipped parser (`kcm-loader parsers`); its\n"
		"                        user-space build splits batches, so the mux batches\n"
		"  --split NAME          with --prog OBJ that parses like shipped parser NAME:\n"
		"                        batch, and split with NAME's user-space build; 'prog':\n"
		"                        batch, and split by test-running OBJ's parser (the\n"
		"                        default, unbatched, where `kcm-loader check` lacks\n"
		"                        udp-members)\n"
		"  --max SIZE            largest message (default 64K; K, M suffixes)\n"
		"  --batch N             messages one redirect may carry, 1-%d (default: all that\n"
		"                        are complete; 1 = strict per-message round-robin, and\n"
		"                        the only choice for parser programs without a splitter)\n"
		"  --window SIZE         unread bytes one KCM socket may hold before messages go\n"
		"                        to the others (default 2M, flow-control.md)\n"
		"  --policy P            messages (default) or bytes: what round-robin balances\n"
		"  --transport-rcvbuf SIZE|keep  SO_RCVBUF for attached sockets (default: the\n"
		"                        larger of 256K and --max, 64K without a splitter;\n"
		"                        keep: autotuned; bounds memory, memory.md)\n"
		"  --member-rcvbuf SIZE  SO_RCVBUF of each KCM socket (default 32M)\n",
		KCM_MAX_BATCH);
}

int mux_args_take(const char *cmd, int c, const char *arg, struct mux_args *a)
{
	struct kcm_mux_opts *o = &a->o;
	uint64_t v;
	int err;

	switch (c) {
	case 0x100:
		if (kcm_framing_parse(arg, &o->framing))
			return usage_error(cmd, "invalid --framing '%s'", arg);
		a->have_framing = true;
		return 0;
	case 0x101:
	case 0x102:
		err = parser_option(cmd, c == 0x101 ? 'P' : 'F', arg, a->parser,
				    sizeof(a->parser));
		if (err)
			return err;
		o->parser = a->parser;
		if (c == 0x102 && !o->splitter)
			o->splitter = arg;
		return 0;
	case 0x103:
		o->splitter = arg;
		return 0;
	case 0x104:
		if (parse_size(arg, 4096, 1u << 31, &v))
			return usage_error(cmd, "invalid --window '%s': 4K to 2G", arg);
		o->rx_window = v;
		return 0;
	case 0x105:
		if (parse_size(arg, 1, 256 << 20, &v))
			return usage_error(cmd, "invalid --max '%s': 1 to 256M", arg);
		o->max_msg_size = v;
		return 0;
	case 0x106:
		if (parse_u64(arg, 1, KCM_MAX_BATCH, &v))
			return usage_error(cmd, "invalid --batch '%s': 1 to %d", arg, KCM_MAX_BATCH);
		o->batch = v;
		return 0;
	case 0x107:
		if (!strcmp(arg, "messages"))
			o->policy = KCM_POLICY_MESSAGES;
		else if (!strcmp(arg, "bytes"))
			o->policy = KCM_POLICY_BYTES;
		else
			return usage_error(cmd, "invalid --policy '%s': messages or bytes", arg);
		return 0;
	case 0x108:
		if (!strcmp(arg, "keep"))
			o->transport_rcvbuf = -1;
		else if (parse_size(arg, 4096, INT_MAX / 2, &v))
			return usage_error(cmd, "invalid --transport-rcvbuf '%s'", arg);
		else
			o->transport_rcvbuf = v;
		return 0;
	case 0x109:
		if (parse_size(arg, 4096, INT_MAX / 2, &v))
			return usage_error(cmd, "invalid --member-rcvbuf '%s'", arg);
		o->member_rcvbuf = v;
		return 0;
	default:
		return -1;
	}
}

int mux_args_check(const char *cmd, struct mux_args *a, const char *name)
{
	struct kcm_mux_opts *o = &a->o;

	if (o->parser && a->have_framing)
		return usage_error(cmd, "--framing and --prog/--frame exclude each other");
	if (o->splitter && !o->parser)
		return usage_error(cmd, "--split needs --prog");
	if (o->parser && !o->splitter && o->batch > 1)
		return usage_error(cmd, "--batch %u: a mux with a parser program and no "
				   "splitter (--split) delivers one message per redirect", o->batch);
	o->pin_name = name;
	if (kcm_name_check(name))
		return usage_error(cmd, "invalid name '%s': 1-63 of [A-Za-z0-9_-]", name);
	return 0;
}

void mux_args_describe(const struct mux_args *a, char *buf, size_t len)
{
	if (a->o.parser)
		snprintf(buf, len, "parser %.50s", a->parser);
	else
		kcm_framing_format(&a->o.framing, buf, len);
}
