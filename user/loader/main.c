// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* kcm-loader: load, pin, attach and inspect KCM multiplexors on sockmap. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <bpf/libbpf.h>

#include "kcm.h"
#include "json.h"
#include "loader.h"

struct env env;

static char bpf_log[32 * 1024];
static size_t bpf_log_len;

static const struct cmd {
	const char *name;
	int (*fn)(int argc, char **argv);
	const char *summary;
} cmds[] = {
	{ "create", cmd_create, "create NAME [--framing SPEC | --prog OBJ | --frame P] ...  load and pin a mux" },
	{ "attach", cmd_attach, "attach NAME --pid PID --fd FD [--prog OBJ | --frame P]   add a TCP socket" },
	{ "unattach", cmd_unattach, "unattach NAME (--pid PID --fd FD | --cookie C)" },
	{ "parsers", cmd_parsers, "parsers [--json]                list the shipped parsers (--frame)" },
	{ "status", cmd_status, "status [NAME] [--json]          show what is really attached" },
	{ "connect", cmd_connect, "connect NAME HOST:PORT --count N  keep N connections attached" },
	{ "monitor", cmd_monitor, "monitor NAME [--json]           stream transport health events" },
	{ "stats", cmd_stats, "stats [NAME] [--watch S] [--json] counters per mux, KCM socket, transport" },
	{ "destroy", cmd_destroy, "destroy NAME                    unpin a mux (gone when unused)" },
	{ "clean", cmd_clean, "clean [--all] [--dry-run]       remove what crashed runs left" },
	{ "serve", cmd_serve, "serve NAME --socket PATH        be the sidecar of unprivileged applications" },
	{ "check", cmd_check, "check [--json]                  what works on this kernel, what to do" },
	{ "help", NULL, "help [COMMAND]                  this text, or a command's" },
};

static void usage(FILE *f)
{
	fprintf(f, "Usage: kcm-loader [-v] [-j] COMMAND [ARGS]\n\n"
		   "KCM multiplexors on sockmap: messages over TCP spread across KCM sockets.\n\n"
		   "Commands:\n");
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
		fprintf(f, "  %s\n", cmds[i].summary);
	fprintf(f, "\nOptions:\n"
		   "  -j, --json     JSON output for every command; failures as {\"error\": ...}\n"
		   "  -p, --pretty   JSON, indented\n"
		   "  -v, --verbose  show libbpf and verifier messages (after the command too)\n"
		   "  -h, --help     this text; `kcm-loader COMMAND --help` for a command\n"
		   "  -V, --version  print the version\n\n"
		   "Muxes are pinned under /sys/fs/bpf/kcm/NAME/. Exit status: 0 ok, 1 failure,\n"
		   "2 usage error. See kcm-loader(8).\n");
}

/* With -j a failure is {"error": ..., "hint": ...} on stdout, as bpftool does. */
static void json_error(const char *msg, const char *hint_text)
{
	json_start_object(NULL);
	json_string("error", msg);
	if (hint_text)
		json_string("hint", hint_text);
	json_end_object();
	json_done();
}

int fail(const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (env.json)
		json_error(msg, NULL);
	else
		fprintf(stderr, "kcm-loader: %s\n", msg);
	return EXIT_FAIL;
}

void json_nothing(void)
{
	if (env.json) {
		fputs("null\n", stdout);
		fflush(stdout);
	}
}

int usage_error(const char *cmd, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "kcm-loader %s: ", cmd);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nTry 'kcm-loader %s --help'.\n", cmd);
	return EXIT_USAGE;
}

int bad_option(const char *cmd, int c, char *const argv[])
{
	const char *arg = optind > 0 ? argv[optind - 1] : "";
	char name[8];

	/* a short option inside a cluster (-jx): name the letter, not the cluster */
	if (optopt > 0 && optopt < 128 && strncmp(arg, "--", 2)) {
		snprintf(name, sizeof(name), "-%c", optopt);
		arg = name;
	}
	if (c == ':')
		return usage_error(cmd, "option '%s' needs an argument", arg);
	return usage_error(cmd, "unknown option '%s'", arg);
}

static const char *hint(int err)
{
	switch (err) {
	case EPERM:
	case EACCES:
		return "run as root: loading sk_skb programs needs CAP_BPF, CAP_NET_ADMIN and "
		       "CAP_PERFMON";
	case ENOENT:
		return "see `kcm-loader status` for the muxes that exist";
	case EEXIST:
		return "pick another name, or `kcm-loader destroy` the old mux first";
	case EALREADY:
		return "`kcm-loader status` shows which mux holds it";
	case EOPNOTSUPP:
		return "only connected TCP sockets can be attached";
	default:
		return NULL;
	}
}

/* CAP_NET_ADMIN (12), CAP_PERFMON (38) and CAP_BPF (39) are all effective here. */
static bool bpf_caps_effective(void)
{
	unsigned long long eff = 0;
	char line[128];
	FILE *f = fopen("/proc/self/status", "re");
	bool found = false;

	while (f && !found && fgets(line, sizeof(line), f))
		found = sscanf(line, "CapEff: %llx", &eff) == 1;
	if (f)
		fclose(f);
	return found && (eff & (1ULL << 12)) && (eff & (1ULL << 38)) && (eff & (1ULL << 39));
}

/* Print the tail of the libbpf log: the verifier's verdict is in its last lines. */
static void print_bpf_log_tail(void)
{
	const char *p = bpf_log + bpf_log_len;
	int lines = 0;

	if (!bpf_log_len || env.verbose)
		return;
	while (p > bpf_log && lines < 12)
		if (*--p == '\n')
			lines++;
	fprintf(stderr, "kcm-loader: last libbpf messages (-v for all):\n%s", p);
}

int fail_lib(const char *what, int err)
{
	const char *detail = kcm_last_error(), *h = hint(err);

	if (detail && strstr(detail, "the verifier rejected"))
		h = NULL; /* the verifier's EACCES is about the program, not privileges */
	if (err == ENOENT && detail && !strstr(detail, "no mux named"))
		h = NULL; /* a missing file or process, not a missing mux: the message says */
	if (err == EPERM && h && bpf_caps_effective())
		h = "the capabilities are effective, so something else refused bpf(): a seccomp "
		    "profile (container runtimes' default ones allow bpf() only with "
		    "CAP_SYS_ADMIN: run the container with seccomp unconfined, docs/sidecar.md) "
		    "or kernel lockdown (/sys/kernel/security/lockdown)";

	char msg[1024];

	print_bpf_log_tail();
	snprintf(msg, sizeof(msg), "%s: %s", what, detail && *detail ? detail : strerror(err));
	if (env.json) {
		json_error(msg, h);
		return EXIT_FAIL;
	}
	fprintf(stderr, "kcm-loader: %s\n", msg);
	if (h)
		fprintf(stderr, "kcm-loader: hint: %s\n", h);
	return EXIT_FAIL;
}

static int libbpf_print(enum kcm_print_level level, const char *fmt, va_list ap)
{
	int n;

	if (env.verbose)
		return vfprintf(stderr, fmt, ap);
	if (level == KCM_PRINT_DEBUG)
		return 0;
	if (bpf_log_len > sizeof(bpf_log) / 2) { /* keep the newest half */
		memmove(bpf_log, bpf_log + bpf_log_len / 2, bpf_log_len - bpf_log_len / 2);
		bpf_log_len -= bpf_log_len / 2;
	}
	n = vsnprintf(bpf_log + bpf_log_len, sizeof(bpf_log) - bpf_log_len, fmt, ap);
	if (n > 0)
		bpf_log_len += (size_t)n < sizeof(bpf_log) - bpf_log_len ? (size_t)n :
			       sizeof(bpf_log) - bpf_log_len - 1;
	return n;
}

int json_help_options(const char *cmd, int argc, char **argv, const char *help)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{},
	};
	int c;

	optind = 0;
	while ((c = getopt_long(argc, argv, ":jh", opts, NULL)) != -1) {
		switch (c) {
		case 'j':
			env.json = true;
			break;
		case 'h':
			fputs(help, stdout);
			return EXIT_OK;
		default:
			return bad_option(cmd, c, argv);
		}
	}
	return -1;
}

int parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
	unsigned long long v;
	char *end;

	if (!s || !*s || *s == '-' || *s == '+')
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 0);
	if (errno || *end || v < min || v > max)
		return -ERANGE;
	*out = v;
	return 0;
}

int parse_size(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
	unsigned long long v, mult = 1;
	char *end;

	if (!s || !*s || *s == '-' || *s == '+')
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || end == s)
		return -EINVAL;
	if (*end == 'K' || *end == 'k')
		mult = 1024;
	else if (*end == 'M' || *end == 'm')
		mult = 1024 * 1024;
	else if (*end == 'G' || *end == 'g')
		mult = 1024 * 1024 * 1024;
	if (mult != 1)
		end++;
	if (*end || v > max / mult || v * mult < min || v * mult > max)
		return -ERANGE;
	*out = v * mult;
	return 0;
}

/*
 * -v, -p and -j mean the same after a command as before it: take -v and -p out of the
 * command's arguments (from @from on, up to a "--"); the commands parse -j themselves.
 * Returns the new argc.
 */
static int take_global_options(int argc, char **argv, int from)
{
	int out = from;

	for (int i = from; i < argc; i++) {
		if (!strcmp(argv[i], "--")) {
			while (i < argc)
				argv[out++] = argv[i++];
			break;
		}
		if (!strcmp(argv[i], "-v") || !strcmp(argv[i], "--verbose")) {
			env.verbose = true;
			continue;
		}
		if (!strcmp(argv[i], "-p") || !strcmp(argv[i], "--pretty")) {
			env.json = true;
			json_set_pretty(true);
			continue;
		}
		argv[out++] = argv[i];
	}
	argv[out] = NULL;
	return out;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "pretty", no_argument, NULL, 'p' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{},
	};
	int c;

	opterr = 0; /* bad_option() says it, naming the option */
	while ((c = getopt_long(argc, argv, "+:jpvhV", opts, NULL)) != -1) {
		switch (c) {
		case 'j':
			env.json = true;
			break;
		case 'p':
			env.json = true;
			json_set_pretty(true);
			break;
		case 'v':
			env.verbose = true;
			break;
		case 'h':
			usage(stdout);
			return EXIT_OK;
		case 'V':
			printf("kcm-loader %s (libbpf %s)\n", KCM_VERSION, libbpf_version_string());
			return EXIT_OK;
		default:
			if (c == ':')
				fprintf(stderr, "kcm-loader: option '%s' needs an argument\n",
					argv[optind - 1]);
			else
				fprintf(stderr, "kcm-loader: unknown option '%s'\n", argv[optind - 1]);
			usage(stderr);
			return EXIT_USAGE;
		}
	}
	kcm_set_print(libbpf_print);
	if (optind >= argc) {
		usage(stderr);
		return EXIT_USAGE;
	}
	if (!strcmp(argv[optind], "help")) {
		if (optind + 1 >= argc) {
			usage(stdout);
			return EXIT_OK;
		}
		/* help COMMAND: COMMAND --help */
		argv[optind] = argv[optind + 1];
		argv[optind + 1] = "--help";
		argc = optind + 2;
	}
	argc = take_global_options(argc, argv, optind + 1);
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
		if (strcmp(argv[optind], cmds[i].name) || !cmds[i].fn)
			continue;
		optind++;
		argv[optind - 1] = (char *)cmds[i].name;
		/* commands parse their own options from argv[optind - 1] on */
		return cmds[i].fn(argc - optind + 1, argv + optind - 1);
	}
	fprintf(stderr, "kcm-loader: unknown command '%s'\n", argv[optind]);
	usage(stderr);
	return EXIT_USAGE;
}
