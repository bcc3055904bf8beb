// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Small socket helpers used across the library. */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "internal.h"

#ifndef SO_COOKIE
#define SO_COOKIE 57
#endif

uint64_t kcm_sock_cookie(int fd)
{
	uint64_t cookie = 0;
	socklen_t len = sizeof(cookie);

	if (getsockopt(fd, SOL_SOCKET, SO_COOKIE, &cookie, &len))
		return 0;
	return cookie;
}

/* Set a buffer size; root may go past the sysctl cap with the FORCE variant. */
int kcm_set_buf(int fd, int opt, int force_opt, int bytes)
{
	if (geteuid() == 0 && !setsockopt(fd, SOL_SOCKET, force_opt, &bytes, sizeof(bytes)))
		return 0;
	if (setsockopt(fd, SOL_SOCKET, opt, &bytes, sizeof(bytes)))
		return -errno;
	return 0;
}

bool kcm_fd_nonblocking(int fd, int flags)
{
	int fl;

	if (flags & MSG_DONTWAIT)
		return true;
	fl = fcntl(fd, F_GETFL);
	return fl >= 0 && (fl & O_NONBLOCK);
}

void kcm_sockaddr_of(struct sockaddr_storage *ss, int family, const __u8 *addr, __u16 port)
{
	memset(ss, 0, sizeof(*ss));
	if (family == AF_INET) {
		struct sockaddr_in *in = (struct sockaddr_in *)ss;

		in->sin_family = AF_INET;
		in->sin_port = htons(port);
		memcpy(&in->sin_addr, addr, 4);
	} else if (family == AF_INET6) {
		struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;

		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons(port);
		memcpy(&in6->sin6_addr, addr, 16);
	}
}
