// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* How the loader writes addresses and TCP states (format.h). */
#include <stdio.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include "format.h"

void fmt_addr(char *buf, size_t len, int family, const __u8 *addr, __u16 port)
{
	char a[INET6_ADDRSTRLEN] = "?";

	inet_ntop(family == AF_INET6 ? AF_INET6 : AF_INET, addr, a, sizeof(a));
	snprintf(buf, len, family == AF_INET6 ? "[%s]:%u" : "%s:%u", a, port);
}

void fmt_sockaddr(char *buf, size_t len, const struct sockaddr_storage *ss)
{
	const struct sockaddr_in *in = (const struct sockaddr_in *)ss;
	const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)ss;

	if (ss->ss_family == AF_INET)
		fmt_addr(buf, len, AF_INET, (const __u8 *)&in->sin_addr, ntohs(in->sin_port));
	else if (ss->ss_family == AF_INET6)
		fmt_addr(buf, len, AF_INET6, (const __u8 *)&in6->sin6_addr, ntohs(in6->sin6_port));
	else
		snprintf(buf, len, "-");
}

const char *tcp_state_name(__u32 state)
{
	static const char *const names[] = { "-", "ESTABLISHED", "SYN_SENT", "SYN_RECV",
		"FIN_WAIT1", "FIN_WAIT2", "TIME_WAIT", "CLOSE", "CLOSE_WAIT", "LAST_ACK",
		"LISTEN", "CLOSING", "NEW_SYN_RECV" };

	return state < sizeof(names) / sizeof(names[0]) ? names[state] : "?";
}
