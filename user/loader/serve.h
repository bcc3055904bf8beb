/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* kcm-loader serve: the sidecar (docs/sidecar.md). cmd_serve.c owns the mux, the socket
 * and the loop; serve_ops.c answers one client's requests and cleans up after it. */
#ifndef KCM_LOADER_SERVE_H
#define KCM_LOADER_SERVE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "kcm.h"
#include "kcm_sidecar.h"

#define SERVE_MAX_CLIENTS 256
#define SERVE_MAX_ALLOW 16
#define SERVE_MAX_MEMBERS 64	/* KCM sockets one client may hold */
#define SERVE_MAX_TRANSPORTS 1024

struct serve_member {
	int fd;
	uint32_t slot;
	uint64_t cookie;
};

struct serve_client {
	int fd;
	pid_t pid;
	uid_t uid;
	gid_t gid;
	bool refused;			/* answer the first request with EACCES, then drop */
	struct serve_member member[SERVE_MAX_MEMBERS];
	unsigned int nmembers;
	uint64_t transport[SERVE_MAX_TRANSPORTS]; /* cookies it attached */
	unsigned int ntransports;
};

struct serve {
	const char *name, *path;
	struct kcm_mux *mux;
	int listen_fd;
	uid_t allow_uid[SERVE_MAX_ALLOW];
	unsigned int nallow_uid;
	gid_t allow_gid;
	bool have_gid;
	struct serve_client *client[SERVE_MAX_CLIENTS];
};

/* serve_ops.c */
/* Reply to @h with @err (0: @payload), @fds going with it. */
int serve_reply(struct serve_client *c, const struct kcm_sc_hdr *h, int err,
		const void *payload, size_t len, const int *fds, int nfds);
/* A failed reply: errno @err and a message naming the cause; logged as well. */
int serve_refuse(struct serve_client *c, const struct kcm_sc_hdr *h, int err,
		 const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* A libkcm record with @cookie: its slot */
struct serve_find {
	uint64_t cookie;
	uint32_t slot;
	bool found;
};
/* Read and answer one request; false when the client is gone (or was dropped). */
bool serve_request(struct serve *s, struct serve_client *c);
/* serve_transports.c: ATTACH, UNATTACH, TRANSPORTS */
int serve_attach(struct serve *s, struct serve_client *c, const struct kcm_sc_hdr *h,
		 const void *p, int fd);
int serve_unattach(struct serve *s, struct serve_client *c, const struct kcm_sc_hdr *h,
		   const void *p);
int serve_transports(struct serve *s, struct serve_client *c, const struct kcm_sc_hdr *h,
		     const void *p);
/* What a departed client had: its KCM sockets closed, its transports unattached. */
void serve_forget(struct serve *s, struct serve_client *c, const char *why);
/* One log line: "client pid P uid U: WHAT" (or a JSON object with --json). */
void serve_log(const struct serve_client *c, const char *event, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#endif /* KCM_LOADER_SERVE_H */
