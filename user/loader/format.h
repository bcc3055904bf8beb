/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* How the loader writes addresses and TCP states, the same in every command. */
#ifndef KCM_LOADER_FORMAT_H
#define KCM_LOADER_FORMAT_H

#include <stddef.h>
#include <sys/socket.h>
#include <linux/types.h>

/* "ESTABLISHED", "CLOSE_WAIT"... for a TCP_* state number ("-" for 0) */
const char *tcp_state_name(__u32 state);
/* "1.2.3.4:80" or "[::1]:80" from raw bytes (the BPF programs' records) */
void fmt_addr(char *buf, size_t len, int family, const __u8 *addr, __u16 port);
/* the same from a socket address; "-" when its family is unknown */
void fmt_sockaddr(char *buf, size_t len, const struct sockaddr_storage *ss);

#endif /* KCM_LOADER_FORMAT_H */
