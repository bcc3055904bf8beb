// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * The shipped parser programs built for user space (kcm_parser.h without __bpf__): with
 * one of them a parser-program mux batches, and readers find each message's end in a
 * batch with the same code the BPF program ran.
 */
#include <string.h>

#include "internal.h"

#include "parsers/dns.bpf.c"
#include "parsers/http2.bpf.c"
#include "parsers/kafka.bpf.c"
#include "parsers/memcached.bpf.c"
#include "parsers/mqtt.bpf.c"
#include "parsers/thrift.bpf.c"

static const struct {
	const char *name;
	kcm_split_fn fn;
} splitters[] = {
	{ "dns", kcm_split_dns },	  { "http2", kcm_split_http2 }, { "kafka", kcm_split_kafka },
	{ "memcached", kcm_split_memcached }, { "mqtt", kcm_split_mqtt },   { "thrift", kcm_split_thrift },
};

kcm_split_fn kcm_splitter_find(const char *name)
{
	for (size_t i = 0; i < sizeof(splitters) / sizeof(splitters[0]); i++)
		if (!strcmp(splitters[i].name, name))
			return splitters[i].fn;
	return NULL;
}

bool kcm_splitter_valid(const char *name)
{
	return !strcmp(name, KCM_SPLIT_PROG) || kcm_splitter_find(name);
}

/* Length of the message at @buf: > 0, 0 when @len bytes cannot tell, or -errno. */
int64_t kcm_msg_length(const struct kcm_mux *mux, const void *buf, size_t len)
{
	int64_t r;

	if (mux->split_prog >= 0)
		r = kcm_split_prog_run(mux, buf, len);
	else if (!mux->split)
		return kcm_frame_length(&mux->framing, buf, len, mux->cfg.max_msg);
	else
		r = mux->split(buf, len > UINT32_MAX ? UINT32_MAX : (uint32_t)len);
	if (r > (int64_t)mux->cfg.max_msg)
		return -EMSGSIZE;
	return r;
}

/* The mux's framing, and its splitter when it has one, from mux->cfg. */
void kcm_mux_framing_from_cfg(struct kcm_mux *mux)
{
	mux->split = mux->cfg.splitter[0] ? kcm_splitter_find(mux->cfg.splitter) : NULL;
	mux->framing = (struct kcm_framing){
		.len_offset = mux->cfg.len_offset,
		.len_size = mux->cfg.len_size,
		.big_endian = mux->cfg.big_endian,
		.len_adjust = mux->cfg.len_adjust,
	};
}
