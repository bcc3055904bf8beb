// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * kcm-loader serve: the sidecar. It creates and owns a pinned mux and, on a
 * SOCK_SEQPACKET UNIX socket, does for unprivileged applications what needs bpf()
 * (kcm_mux_connect() in libkcm; protocol in kcm_sidecar.h, docs/sidecar.md). Messages
 * never pass through it. serve_ops.c answers the requests.
 */
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include "loader.h"
#include "mux_args.h"
#include "output.h"
#include "serve.h"

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

static void help(void)
{
	printf("Usage: kcm-loader serve NAME --socket PATH [--allow-uid UID[,UID...]]\n"
	       "         [--allow-gid GID] [--json] [create's options]\n\n"
	       "Be the sidecar of mux NAME: create and pin it, and on the UNIX socket PATH do\n"
	       "for unprivileged applications (kcm_mux_connect()) what needs bpf(): new KCM\n"
	       "sockets, attach, unattach, recv-disable, other processes' transports. The\n"
	       "application reads and writes its sockets itself; no message passes through\n"
	       "here. Each client is checked with SO_PEERCRED; what a client had is cleaned up\n"
	       "when it goes. One log line per client event. SIGTERM or SIGINT: unattach,\n"
	       "destroy the mux and remove PATH; after SIGKILL `kcm-loader clean` removes it.\n\n"
	       "  --socket PATH         where to listen (a volume the application mounts)\n"
	       "  --allow-uid UIDS      user IDs that may connect (root always may)\n"
	       "  --allow-gid GID       and members of this group (their primary group)\n"
	       "  --json                log JSON objects, one per line\n");
	mux_args_help(stdout);
	printf("  -h, --help            this text\n");
	help_docs();
}

static int parse_uids(const char *arg, struct serve *s)
{
	char *copy = strdup(arg), *tok, *save = NULL;
	uint64_t v;
	int err = 0;

	if (!copy)
		return -ENOMEM;
	for (tok = strtok_r(copy, ",", &save); tok && !err; tok = strtok_r(NULL, ",", &save)) {
		if (s->nallow_uid == SERVE_MAX_ALLOW || parse_u64(tok, 0, UINT32_MAX - 1, &v))
			err = -EINVAL;
		else
			s->allow_uid[s->nallow_uid++] = v;
	}
	free(copy);
	return err;
}

static bool allowed(const struct serve *s, uid_t uid, gid_t gid)
{
	if (!uid)
		return true;
	for (unsigned int i = 0; i < s->nallow_uid; i++)
		if (s->allow_uid[i] == uid)
			return true;
	return s->have_gid && s->allow_gid == gid;
}

/* Bind @path (a stale socket file nobody answers on is replaced) with permissions that
 * match the allow list: root only; one user; a group; or anyone, SO_PEERCRED deciding. */
static int listen_on(struct serve *s)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	mode_t mode = 0600;
	uid_t owner = -1;
	gid_t group = -1;
	int fd;

	if (strlen(s->path) >= sizeof(sun.sun_path))
		return fail("socket path %s is too long (at most %zu bytes)", s->path,
			    sizeof(sun.sun_path) - 1);
	strcpy(sun.sun_path, s->path);
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return fail("failed to create a socket: %s", strerror(errno));
	if (!connect(fd, (struct sockaddr *)&sun, sizeof(sun))) {
		close(fd);
		return fail("another sidecar answers at %s", s->path);
	}
	if (errno == ECONNREFUSED)
		unlink(s->path); /* left by a sidecar that was killed */
	if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) || listen(fd, 64)) {
		int err = errno;

		close(fd);
		return fail("failed to listen on %s: %s", s->path, strerror(err));
	}
	if (s->nallow_uid == 1 && !s->have_gid) {
		owner = s->allow_uid[0];
	} else if (!s->nallow_uid && s->have_gid) {
		group = s->allow_gid;
		mode = 0660;
	} else if (s->nallow_uid || s->have_gid) {
		mode = 0666;
	}
	if (chown(s->path, owner, group) || chmod(s->path, mode)) {
		int err = errno;

		close(fd);
		unlink(s->path);
		return fail("failed to set the owner and mode of %s: %s", s->path, strerror(err));
	}
	s->listen_fd = fd;
	return 0;
}

static void accept_client(struct serve *s)
{
	struct serve_client *c;
	struct ucred cred;
	socklen_t len = sizeof(cred);
	int fd = accept4(s->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK), i;

	if (fd < 0)
		return;
	for (i = 0; i < SERVE_MAX_CLIENTS && s->client[i]; i++)
		;
	c = i < SERVE_MAX_CLIENTS ? calloc(1, sizeof(*c)) : NULL;
	if (!c || getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len)) {
		serve_log(NULL, "refused", "a client: %s", c ? strerror(errno) :
			  "too many clients");
		free(c);
		close(fd);
		return;
	}
	c->fd = fd;
	c->pid = cred.pid;
	c->uid = cred.uid;
	c->gid = cred.gid;
	c->refused = !allowed(s, cred.uid, cred.gid);
	s->client[i] = c;
	if (c->refused)
		serve_log(c, "refused", "uid %u is not in --allow-uid (or gid %u in --allow-gid)",
			  (unsigned int)cred.uid, (unsigned int)cred.gid);
	else
		serve_log(c, "connect", "connected");
}

static void drop(struct serve *s, int i, const char *why)
{
	struct serve_client *c = s->client[i];

	serve_forget(s, c, why);
	close(c->fd);
	free(c);
	s->client[i] = NULL;
}

static int loop(struct serve *s)
{
	struct pollfd p[SERVE_MAX_CLIENTS + 1];
	int map[SERVE_MAX_CLIENTS + 1];

	while (!stop) {
		int n = 0;

		p[n++] = (struct pollfd){ .fd = s->listen_fd, .events = POLLIN };
		for (int i = 0; i < SERVE_MAX_CLIENTS; i++) {
			if (!s->client[i])
				continue;
			map[n] = i;
			p[n++] = (struct pollfd){ .fd = s->client[i]->fd, .events = POLLIN };
		}
		if (poll(p, n, 1000) < 0) {
			if (errno == EINTR)
				continue;
			return fail("failed to wait for clients: %s", strerror(errno));
		}
		for (int k = 1; k < n; k++) {
			struct serve_client *c = s->client[map[k]];

			if (p[k].revents & (POLLIN | POLLHUP | POLLERR) && !serve_request(s, c))
				drop(s, map[k], c->refused ? "refused" : "disconnected");
		}
		if (p[0].revents & POLLIN)
			accept_client(s);
	}
	return EXIT_OK;
}

int cmd_serve(int argc, char **argv)
{
	static const struct option opts[] = {
		MUX_ARGS_OPTIONS,
		{ "socket", required_argument, NULL, 's' },
		{ "allow-uid", required_argument, NULL, 'u' },
		{ "allow-gid", required_argument, NULL, 'g' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{},
	};
	struct serve s = { .listen_fd = -1 };
	struct mux_args a;
	uint64_t v;
	int c, err;

	mux_args_init(&a);
	optind = 0;
	while ((c = getopt_long(argc, argv, ":jh", opts, NULL)) != -1) {
		switch (c) {
		case 's':
			s.path = optarg;
			break;
		case 'u':
			if (parse_uids(optarg, &s))
				return usage_error("serve", "invalid --allow-uid '%s': up to %d user "
						   "IDs, separated by commas", optarg,
						   SERVE_MAX_ALLOW);
			break;
		case 'g':
			if (parse_u64(optarg, 0, UINT32_MAX - 1, &v))
				return usage_error("serve", "invalid --allow-gid '%s'", optarg);
			s.allow_gid = v;
			s.have_gid = true;
			break;
		case 'j':
			env.json = true;
			break;
		case 'h':
			help();
			return EXIT_OK;
		default:
			err = mux_args_take("serve", c, optarg, &a);
			if (err >= 0) {
				if (err)
					return err;
				break;
			}
			return bad_option("serve", c, argv);
		}
	}
	if (optind != argc - 1)
		return usage_error("serve", "expected one NAME");
	if (!s.path)
		return usage_error("serve", "--socket PATH is needed");
	err = mux_args_check("serve", &a, argv[optind]);
	if (err)
		return err;
	s.name = a.o.pin_name;
	a.o.persistent = false; /* ours: orphaned (and cleaned) if we are killed */
	s.mux = kcm_mux_create(&a.o);
	if (!s.mux) {
		char what[128];

		snprintf(what, sizeof(what), "failed to create mux '%s'", s.name);
		return fail_lib(what, errno);
	}
	err = listen_on(&s);
	if (!err) {
		signal(SIGINT, on_signal);
		signal(SIGTERM, on_signal);
		signal(SIGPIPE, SIG_IGN);
		serve_log(NULL, "serving", "mux %s at %s", s.name, s.path);
		err = loop(&s);
		for (int i = 0; i < SERVE_MAX_CLIENTS; i++)
			if (s.client[i])
				drop(&s, i, "sidecar stopping");
		close(s.listen_fd);
		unlink(s.path);
	}
	kcm_mux_destroy(s.mux);
	if (!err)
		serve_log(NULL, "stopped", "mux %s destroyed, %s removed", s.name, s.path);
	return err;
}
