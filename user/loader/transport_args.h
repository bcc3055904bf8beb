/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Transport options shared by the commands that attach sockets (attach, connect). */
#ifndef KCM_TRANSPORT_ARGS_H
#define KCM_TRANSPORT_ARGS_H

#include <getopt.h>

#include "kcm.h"

/* getopt_long entries; their values are the characters of TRANSPORT_OPT_CHARS. */
#define TRANSPORT_LONG_OPTIONS                                        \
	{ "nodelay", no_argument, NULL, 'N' },                        \
	{ "keepalive", required_argument, NULL, 'K' },                \
	{ "user-timeout", required_argument, NULL, 'U' },             \
	{ "rcvbuf", required_argument, NULL, 'R' },                   \
	{ "rcvtimeo", required_argument, NULL, 'T' },                 \
	{ "linger", required_argument, NULL, 'L' }
#define TRANSPORT_OPT_CHARS "NKURTL"

#define TRANSPORT_OPTIONS_HELP                                                            \
	"Transport options (transport-options.md):\n"                                    \
	"  --nodelay                  TCP_NODELAY: replies leave without waiting\n"       \
	"  --keepalive IDLE[,INTVL[,CNT]]  probe an idle peer: find it gone after\n"      \
	"                             IDLE + INTVL * CNT seconds\n"                       \
	"  --user-timeout MS          TCP_USER_TIMEOUT: fail the connection when sent\n"  \
	"                             data stays unacknowledged MS ms (a cut cable)\n"    \
	"  --rcvbuf SIZE              SO_RCVBUF (bounds the largest message)\n"           \
	"  --rcvtimeo MS              fail a message not complete within MS ms\n"         \
	"  --linger abort|SECONDS     close with RST, or wait up to SECONDS\n"

/* Option @opt (one of TRANSPORT_OPT_CHARS) with @arg into @o: 0 or a usage exit code. */
int transport_option(const char *cmd, int opt, const char *arg, struct kcm_transport_opts *o);

#endif /* KCM_TRANSPORT_ARGS_H */
