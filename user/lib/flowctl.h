/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* The flow controller's state (flowctl.c) and the brake it works with (brake.c). */
#ifndef KCM_FLOWCTL_H
#define KCM_FLOWCTL_H

#include "internal.h"

#define BALLAST_CHUNK (256 * 1024)
#define LEND_NS 50000000ull	/* a release stuck this long lends room (kcm_brake_release()) */
#define ACKS_MS 50		/* a braked transport whose sends got no ACK this long opens */

struct kcm_flowctl {
	pthread_t thread;
	atomic_bool stop;
	bool leader;		/* this process runs the controller of the mux */
	int lock_fd;		/* the mux's pin folder, flock()ed by the leader; -1 private */
	struct kcm_sock *hold;
	int brake_fd;		/* loopback socket in brake_source; -1 without a brake */
	int brake_peer;
	unsigned int next;	/* where the search for a transport to brake starts */
	uint64_t braked_at[KCM_MAX_TRANSPORTS];
	int rcvbuf[KCM_MAX_TRANSPORTS];
	int lent[KCM_MAX_TRANSPORTS];	/* SO_RCVBUF before a release lent it room, or 0 */
	uint64_t stuck_since[KCM_MAX_TRANSPORTS]; /* first release that found input queued */
	uint64_t cookie[KCM_MAX_TRANSPORTS];	/* whose the state above is */
	char *sink;		/* ballast read back */
};

/* A loopback TCP pair; the sending side goes into brake_source, whose program steers. */
int kcm_brake_open(struct kcm_mux *mux, struct kcm_flowctl *ctl);
/* @t's receive buffer without what a release lent it. */
int kcm_brake_base_rcvbuf(struct kcm_flowctl *ctl, struct kcm_transport *t);
bool kcm_brake_is_braked(struct kcm_mux *mux, struct kcm_flowctl *ctl, struct kcm_transport *t);
/* Close @t's window (ballast up to its receive buffer). */
void kcm_brake(struct kcm_mux *mux, struct kcm_flowctl *ctl, struct kcm_transport *t);
/* Open @t's window again; true when it is open. Never waits. */
bool kcm_brake_release(struct kcm_mux *mux, struct kcm_flowctl *ctl, struct kcm_transport *t);
/* @t has sent data that waited ACKS_MS for an ACK. */
bool kcm_brake_sends_stuck(struct kcm_transport *t);

#endif /* KCM_FLOWCTL_H */
