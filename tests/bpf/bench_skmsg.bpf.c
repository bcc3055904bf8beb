// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * The "plain sk_msg redirect" baseline of tx_bench: every sendmsg() on a socket in
 * @senders is redirected whole to the egress of one socket in @transports. Nothing
 * keeps two senders' messages apart on one transport; that is what tx_bench measures.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

#define TRANSPORT_KEY 0 /* when a sender has no route */

/* The sockets whose sendmsg() runs the program (it is attached to this map). */
struct {
	__uint(type, BPF_MAP_TYPE_SOCKMAP);
	__uint(max_entries, 64);
	__type(key, __u32);
	__type(value, __u64);
} senders SEC(".maps");

/* Redirect targets. */
struct {
	__uint(type, BPF_MAP_TYPE_SOCKMAP);
	__uint(max_entries, 64);
	__type(key, __u32);
	__type(value, __u64);
} transports SEC(".maps");

/* Sender's local port (host order) -> key in @transports: sender i -> transport i % T. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, __u32);
	__type(value, __u32);
} route SEC(".maps");

SEC("sk_msg")
int bench_redirect(struct sk_msg_md *msg)
{
	__u32 port = msg->local_port;
	__u32 *key = bpf_map_lookup_elem(&route, &port);

	return bpf_msg_redirect_map(msg, &transports, key ? *key : TRANSPORT_KEY, 0);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
