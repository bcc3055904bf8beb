// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * The brake (docs/flow-control.md): a transport's window closes when "ballast" written on
 * a loopback socket is redirected by the brake_source sk_msg program into the
 * transport's receive queue, and opens when the ballast is read back. Which transport,
 * and when, is flowctl.c's choice.
 */
#include <errno.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <unistd.h>
#include <bpf/bpf.h>

#include "flowctl.h"

/* A loopback TCP pair; the sending side goes into brake_source, whose program steers. */
int kcm_brake_open(struct kcm_mux *mux, struct kcm_flowctl *ctl)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t alen = sizeof(a);
	int lfd, fd = -1, peer = -1, err;
	__u64 val;
	__u32 key = 0;

	lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (lfd < 0)
		return -errno;
	if (bind(lfd, (struct sockaddr *)&a, alen) || listen(lfd, 1) ||
	    getsockname(lfd, (struct sockaddr *)&a, &alen))
		goto fail;
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&a, alen))
		goto fail;
	peer = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	if (peer < 0)
		goto fail;
	kcm_set_buf(fd, SO_SNDBUF, SO_SNDBUFFORCE, 8 << 20);
	val = fd;
	if (bpf_map_update_elem(mux->map_fd[KCM_MAP_BRAKE_SOURCE], &key, &val, BPF_ANY))
		goto fail;
	close(lfd);
	ctl->brake_fd = fd;
	ctl->brake_peer = peer;
	return 0;
fail:
	err = -errno;
	close(lfd);
	if (fd >= 0)
		close(fd);
	if (peer >= 0)
		close(peer);
	return err;
}

/* @t's receive buffer as last read (@fresh: read it now; autotuning may grow it). */
static int rcvbuf_of(struct kcm_flowctl *ctl, struct kcm_transport *t, bool fresh)
{
	socklen_t len = sizeof(int);
	int v = 0;

	if ((fresh || !ctl->rcvbuf[t->slot]) &&
	    !getsockopt(t->fd, SOL_SOCKET, SO_RCVBUF, &v, &len))
		ctl->rcvbuf[t->slot] = v;
	return ctl->rcvbuf[t->slot];
}

/* @t's receive buffer without what a release lent it. */
int kcm_brake_base_rcvbuf(struct kcm_flowctl *ctl, struct kcm_transport *t)
{
	return ctl->lent[t->slot] ? ctl->lent[t->slot] : rcvbuf_of(ctl, t, false);
}

bool kcm_brake_is_braked(struct kcm_mux *mux, struct kcm_flowctl *ctl, struct kcm_transport *t)
{
	return __atomic_load_n(&mux->flow->ballast[t->slot], __ATOMIC_ACQUIRE) &&
	       !ctl->lent[t->slot];
}

/*
 * Close @t's window: ballast up to the size of its receive buffer. A transport a release
 * lent room to (see kcm_brake_release()) closes by giving that room back.
 */
void kcm_brake(struct kcm_mux *mux, struct kcm_flowctl *ctl, struct kcm_transport *t)
{
	uint64_t have = __atomic_load_n(&mux->flow->ballast[t->slot], __ATOMIC_ACQUIRE);
	bool was_open = !have || ctl->lent[t->slot];
	size_t want, done = 0;
	ssize_t n;

	if (ctl->lent[t->slot]) {
		kcm_set_buf(t->fd, SO_RCVBUF, SO_RCVBUFFORCE, ctl->lent[t->slot] / 2);
		ctl->lent[t->slot] = 0;
	}
	want = rcvbuf_of(ctl, t, true);
	__atomic_store_n(&mux->flow->brake_slot, t->slot, __ATOMIC_RELEASE);
	while (have + done < want) {
		size_t chunk = want - have - done < BALLAST_CHUNK ? want - have - done :
			       BALLAST_CHUNK;

		n = send(ctl->brake_fd, ctl->sink, chunk, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (n <= 0)
			break;
		done += n;
	}
	if (done)
		__atomic_fetch_add(&mux->flow->ballast[t->slot], done, __ATOMIC_RELEASE);
	if (!was_open || !(have + done))
		return; /* topped up, or nothing written */
	__atomic_fetch_add(&mux->flow->brakes, 1, __ATOMIC_RELAXED);
	ctl->braked_at[t->slot] = kcm_now_ns();
	ctl->stuck_since[t->slot] = 0;
}

/*
 * Open @t's window again by reading its ballast back; true when it is open. The kernel
 * refuses (EAGAIN) while strparser input is still queued on the transport, and its retry
 * queues the strparser work: so never wait here, try again next look. Input stays queued
 * for good when strparser waits for the rest of a message that the closed window keeps
 * out (it leaves the start of a large message in the queue until all of it is there).
 * After LEND_NS of that, the release lends the transport room instead: its receive
 * buffer grows by the ballast, so the window opens (the peer learns it from its next
 * window probe) and the message can complete. Later looks read the ballast and give the
 * room back; a brake meanwhile just takes the room back.
 */
bool kcm_brake_release(struct kcm_mux *mux, struct kcm_flowctl *ctl, struct kcm_transport *t)
{
	uint64_t left = __atomic_load_n(&mux->flow->ballast[t->slot], __ATOMIC_ACQUIRE);
	bool lent = ctl->lent[t->slot];
	uint64_t now = kcm_now_ns();
	ssize_t n = 0;
	int have;

	while (left) {
		n = recv(t->fd, ctl->sink, left < BALLAST_CHUNK ? left : BALLAST_CHUNK,
			 MSG_DONTWAIT);
		if (n <= 0)
			break;
		left -= n;
		__atomic_fetch_sub(&mux->flow->ballast[t->slot], n, __ATOMIC_RELEASE);
	}
	if (!left) {
		if (lent) {
			kcm_set_buf(t->fd, SO_RCVBUF, SO_RCVBUFFORCE, ctl->lent[t->slot] / 2);
			ctl->lent[t->slot] = 0;
			rcvbuf_of(ctl, t, true);
		} else {
			__atomic_fetch_add(&mux->flow->releases, 1, __ATOMIC_RELAXED);
		}
		ctl->stuck_since[t->slot] = 0;
		return true;
	}
	if (lent)
		return true;
	if (n >= 0 || errno != EAGAIN) /* no ballast (closed?): it leaves with its psock */
		return false;
	if (!ctl->stuck_since[t->slot])
		ctl->stuck_since[t->slot] = now;
	if (now - ctl->stuck_since[t->slot] < LEND_NS)
		return false;
	have = rcvbuf_of(ctl, t, true);
	if (have <= 0 || kcm_set_buf(t->fd, SO_RCVBUF, SO_RCVBUFFORCE, (int)((have + left) / 2)))
		return false;
	ctl->lent[t->slot] = have;
	__atomic_fetch_add(&mux->flow->releases, 1, __ATOMIC_RELAXED);
	return true;
}

/*
 * The brake must not stop a transport's own sends. Its ballast makes TCP drop segments
 * the peer had in flight, and the peer then sends beyond our (now zero) window. TCP skips
 * the ACK of such out-of-window segments (TCPACKSkippedSeq), so data we sent stays
 * unacknowledged, our retransmission timer backs off towards 120 s, and a worker
 * blocked sending a reply stops reading: nothing would release the brake. Measured with
 * echoed messages. So a braked transport whose sent data has waited ACKS_MS for an ACK
 * is released: the window update lets the peer resend from where we are, with its ACKs.
 */
bool kcm_brake_sends_stuck(struct kcm_transport *t)
{
	struct tcp_info ti;
	socklen_t len = sizeof(ti);

	if (getsockopt(t->fd, IPPROTO_TCP, TCP_INFO, &ti, &len))
		return false;
	return ti.tcpi_unacked && ti.tcpi_last_ack_recv >= ACKS_MS;
}

/* A new transport in @slot: a brake target, with no ballast. Caller holds the mux lock. */
int kcm_flowctl_attach(struct kcm_mux *mux, uint32_t slot, int fd)
{
	__u64 val = fd;

	if (mux->flow)
		__atomic_store_n(&mux->flow->ballast[slot], 0, __ATOMIC_RELEASE);
	if (bpf_map_update_elem(mux->map_fd[KCM_MAP_BRAKE_TARGETS], &slot, &val, BPF_ANY))
		return -errno;
	return 0;
}

/*
 * The transport in @slot leaves: no longer a brake target. Its ballast goes with its
 * psock (the kernel purges the psock's queue and uncharges it), so its owner never
 * reads any. Caller holds the mux lock.
 */
void kcm_flowctl_detach(struct kcm_mux *mux, uint32_t slot)
{
	bpf_map_delete_elem(mux->map_fd[KCM_MAP_BRAKE_TARGETS], &slot);
	if (mux->flow && __atomic_exchange_n(&mux->flow->ballast[slot], 0, __ATOMIC_ACQ_REL))
		__atomic_fetch_add(&mux->flow->releases, 1, __ATOMIC_RELAXED);
}
