// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* kcm-loader attach and unattach: transports from other processes, via pidfd_getfd. */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "kcm.h"
#include "json.h"
#include "loader.h"
#include "output.h"
#include "transport_args.h"

#ifndef SO_COOKIE
#define SO_COOKIE 57
#endif

struct target {
	uint64_t pid, fd, cookie;
	bool have_pid, have_fd, have_cookie;
	char parser[PATH_MAX];	/* --prog or --frame */
	struct kcm_transport_opts topts; /* all 0: leave the socket's options alone */
};

/* --keepalive IDLE[,INTVL[,CNT]] */
static int parse_keepalive(const char *s, struct kcm_transport_opts *o)
{
	int *f[3] = { &o->keepalive_idle, &o->keepalive_intvl, &o->keepalive_cnt };
	char buf[64], *save = NULL, *tok;
	int i = 0;

	if (snprintf(buf, sizeof(buf), "%s", s) >= (int)sizeof(buf))
		return -1;
	for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		uint64_t v;

		if (i == 3 || parse_u64(tok, 1, i == 2 ? 127 : 32767, &v))
			return -1;
		*f[i++] = v;
	}
	return i ? 0 : -1;
}

/* The transport options of attach and connect (transport_args.h). */
int transport_option(const char *cmd, int opt, const char *arg, struct kcm_transport_opts *o)
{
	uint64_t v;

	switch (opt) {
	case 'N':
		o->nodelay = 1;
		return 0;
	case 'K':
		if (parse_keepalive(arg, o))
			return usage_error(cmd, "invalid --keepalive '%s': IDLE[,INTVL[,CNT]] "
					   "seconds, seconds, probes", arg);
		return 0;
	case 'U':
		if (parse_u64(arg, 1, 0x7fffffff, &v))
			return usage_error(cmd, "invalid --user-timeout '%s': milliseconds",
					   arg);
		o->user_timeout_ms = v;
		return 0;
	case 'R':
		if (parse_size(arg, 4096, 0x3fffffff, &v))
			return usage_error(cmd, "invalid --rcvbuf '%s'", arg);
		o->rcvbuf = v;
		return 0;
	case 'T':
		if (parse_u64(arg, 1, 0x7fffffff, &v))
			return usage_error(cmd, "invalid --rcvtimeo '%s': milliseconds", arg);
		o->rcvtimeo_ms = v;
		return 0;
	case 'L':
		if (!strcmp(arg, "abort"))
			o->linger = -1;
		else if (parse_u64(arg, 1, 65535, &v))
			return usage_error(cmd, "invalid --linger '%s': abort or seconds",
					   arg);
		else
			o->linger = v;
		return 0;
	}
	return usage_error(cmd, "unknown transport option");
}

/* This process's copy of fd @fd of process @pid, or -errno after saying why not. */
static int take_fd(pid_t pid, int fd)
{
	int copy = kcm_process_fd(pid, fd);

	if (copy < 0)
		copy = -errno;

	if (copy == -ESRCH)
		fail("failed to open process %d: no such process", pid);
	else if (copy == -EBADF)
		fail("failed to take fd %d of process %d: it has no such fd", fd, pid);
	else if (copy == -EPERM)
		fail("failed to take fd %d of process %d: not permitted (needs CAP_SYS_PTRACE "
		     "over it, e.g. root)", fd, pid);
	else if (copy < 0)
		fail("failed to take fd %d of process %d: %s", fd, pid, strerror(-copy));
	return copy;
}

static int parse_target(const char *cmd, int argc, char **argv, struct target *t,
			void (*help)(void))
{
	static const struct option opts[] = {
		{ "pid", required_argument, NULL, 'p' },
		{ "fd", required_argument, NULL, 'f' },
		{ "cookie", required_argument, NULL, 'c' },
		{ "prog", required_argument, NULL, 'P' },
		{ "frame", required_argument, NULL, 'F' },
		TRANSPORT_LONG_OPTIONS,
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{},
	};
	int c, err;

	t->topts.sz = sizeof(t->topts);
	optind = 0;
	while ((c = getopt_long(argc, argv, ":jh", opts, NULL)) != -1) {
		/* parsers and transport options are attach's: unattach takes neither */
		if (c > 0 && strchr("PF" TRANSPORT_OPT_CHARS, c) && strcmp(cmd, "attach"))
			return bad_option(cmd, c, argv);
		switch (c) {
		case 'N':
		case 'K':
		case 'U':
		case 'R':
		case 'T':
		case 'L':
			err = transport_option(cmd, c, optarg, &t->topts);
			if (err)
				return err;
			break;
		case 'P':
		case 'F':
			err = parser_option(cmd, c, optarg, t->parser, sizeof(t->parser));
			if (err)
				return err;
			break;
		case 'p':
			if (parse_u64(optarg, 1, 0x3fffffff, &t->pid))
				return usage_error(cmd, "invalid --pid '%s'", optarg);
			t->have_pid = true;
			break;
		case 'f':
			if (parse_u64(optarg, 0, 0x7fffffff, &t->fd))
				return usage_error(cmd, "invalid --fd '%s'", optarg);
			t->have_fd = true;
			break;
		case 'c':
			if (parse_u64(optarg, 1, UINT64_MAX, &t->cookie))
				return usage_error(cmd, "invalid --cookie '%s'", optarg);
			t->have_cookie = true;
			break;
		case 'j':
			env.json = true;
			break;
		case 'h':
			help();
			return -1;
		default:
			return bad_option(cmd, c, argv);
		}
	}
	if (optind != argc - 1)
		return usage_error(cmd, "expected one mux NAME");
	if (kcm_name_check(argv[optind]))
		return usage_error(cmd, "invalid name '%s'", argv[optind]);
	return 0;
}

static void attach_help(void)
{
	printf("Usage: kcm-loader attach NAME --pid PID --fd FD [--prog OBJ | --frame P] [--json]\n\n"
	       "Attach TCP socket FD of process PID to mux NAME (pidfd_getfd). The process\n"
	       "keeps its fd and the socket; its incoming messages now go to the mux's KCM\n"
	       "sockets, and libkcm users of the mux may send on it. Bytes already queued on\n"
	       "the socket are parsed too.\n\n"
	       "  --pid PID     the process that holds the socket\n"
	       "  --fd FD       the socket's file descriptor in that process\n"
	       "  --prog OBJ    parse this socket with the stream parser in BPF object OBJ\n"
	       "                (the mux must have been created with --prog or --frame); it\n"
	       "                gets a transport map of its own, steering into the same group\n"
	       "  --frame NAME  --prog with a shipped parser (`kcm-loader parsers`)\n\n"
	       TRANSPORT_OPTIONS_HELP);
	help_docs();
}

static void unattach_help(void)
{
	printf("Usage: kcm-loader unattach NAME (--pid PID --fd FD | --cookie COOKIE)\n\n"
	       "Take a transport out of mux NAME; it becomes a plain TCP socket again.\n\n"
	       "  --pid PID        the process that holds the socket\n"
	       "  --fd FD          the socket's file descriptor in that process\n"
	       "  --cookie COOKIE  the socket's cookie (`kcm-loader status NAME` lists them)\n");
}

int cmd_attach(int argc, char **argv)
{
	struct target t = { 0 };
	struct kcm_mux *mux;
	const char *name;
	int err, fd, parser;

	err = parse_target("attach", argc, argv, &t, attach_help);
	if (err)
		return err < 0 ? EXIT_OK : err;
	if (!t.have_pid || !t.have_fd || t.have_cookie)
		return usage_error("attach", "needs --pid PID and --fd FD");
	name = argv[optind];
	fd = take_fd(t.pid, t.fd);
	if (fd < 0)
		return EXIT_FAIL;
	mux = kcm_mux_open(name);
	if (!mux) {
		close(fd);
		return fail_lib("failed to open mux", errno);
	}
	parser = t.parser[0] ? kcm_parser_open(mux, t.parser) : 0;
	if (parser < 0) {
		err = errno;
		close(fd);
		kcm_mux_close(mux);
		return fail_lib("failed to load the parser", err);
	}
	t.topts.parser = parser;
	err = kcm_attach_owned_opts(mux, fd, t.pid, t.fd, &t.topts) ? errno : 0;
	if (!err) {
		uint64_t cookie = 0;
		socklen_t len = sizeof(cookie);

		getsockopt(fd, SOL_SOCKET, SO_COOKIE, &cookie, &len);
		open_json_object(NULL);
		print_uint(PRINT_ANY, "fd", "attached fd %llu", t.fd);
		print_uint(PRINT_ANY, "pid", " of pid %llu", t.pid);
		print_uint(PRINT_ANY, "cookie", " (cookie %llu)", cookie);
		print_string(PRINT_ANY, "mux", " to mux '%s'", name);
		print_int(PRINT_ANY, "parser", " (parser %lld)", parser);
		close_json_object();
		end_record();
	}
	close(fd);
	kcm_mux_close(mux);
	if (err) {
		char what[160];

		snprintf(what, sizeof(what), "failed to attach fd %llu of pid %llu to mux '%s'",
			 (unsigned long long)t.fd, (unsigned long long)t.pid, name);
		return fail_lib(what, err);
	}
	return EXIT_OK;
}

int cmd_unattach(int argc, char **argv)
{
	struct target t = { 0 };
	struct kcm_mux *mux;
	const char *name;
	int err;

	err = parse_target("unattach", argc, argv, &t, unattach_help);
	if (err)
		return err < 0 ? EXIT_OK : err;
	if (t.have_cookie == (t.have_pid || t.have_fd) || t.have_pid != t.have_fd)
		return usage_error("unattach", "needs --pid PID --fd FD, or --cookie COOKIE");
	name = argv[optind];
	if (!t.have_cookie) {
		socklen_t len = sizeof(t.cookie);
		int fd = take_fd(t.pid, t.fd);

		if (fd < 0)
			return EXIT_FAIL;
		if (getsockopt(fd, SOL_SOCKET, SO_COOKIE, &t.cookie, &len)) {
			close(fd);
			return fail("fd %llu of pid %llu is not a socket", (unsigned long long)t.fd,
				    (unsigned long long)t.pid);
		}
		close(fd);
	}
	mux = kcm_mux_open(name);
	if (!mux)
		return fail_lib("failed to open mux", errno);
	err = kcm_unattach_cookie(mux, t.cookie) ? errno : 0;
	kcm_mux_close(mux);
	if (err == ENOENT)
		return fail("failed to unattach socket (cookie %llu) from mux '%s': not attached "
			    "to it", (unsigned long long)t.cookie, name);
	if (err)
		return fail("failed to unattach socket (cookie %llu) from mux '%s': %s",
			    (unsigned long long)t.cookie, name, strerror(err));
	if (env.json)
		json_nothing();
	else
		printf("unattached socket (cookie %llu) from mux '%s'\n",
		       (unsigned long long)t.cookie, name);
	return EXIT_OK;
}
