// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * The flow controller of a mux (docs/flow-control.md): one thread, in one process of the
 * mux at a time, that
 *  - owns the hold queue, a group member the verdict fills while no KCM socket exists,
 *    and moves what it holds to the first KCM socket that appears;
 *  - keeps open only as many transport windows as the KCM sockets have room for. It
 *    brakes a transport by writing "ballast" on a loopback socket whose sk_msg program
 *    redirects it into the transport's receive queue (bpf_tcp_ingress charges it to the
 *    transport at once, so TCP advertises a zero window), and releases it by reading the
 *    ballast back (the window update goes out at once).
 * Sockmap cannot pause a strparser; charging the transport is the one stock way to close
 * its window (FLOW-CONTROL.md in the project's notes measured the alternatives).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <unistd.h>
#include <linux/sock_diag.h>
#include <bpf/bpf.h>

#include "internal.h"
#include "pidfd.h"

#define TICK_BUSY_NS 200000ull	/* while braking or short of room */
#define TICK_IDLE_NS 1000000ull
#define FOLLOW_NS 100000000ull	/* a process not in charge checks the lock this often */
#define HOLD_DRAIN_NS 2000000ull /* moving held messages, per tick */
#define BALLAST_CHUNK (256 * 1024)
#define LEND_NS 50000000ull	/* a release stuck this long lends room (release()) */
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
static int brake_open(struct kcm_mux *mux, struct kcm_flowctl *ctl)
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
static int base_rcvbuf(struct kcm_flowctl *ctl, struct kcm_transport *t)
{
	return ctl->lent[t->slot] ? ctl->lent[t->slot] : rcvbuf_of(ctl, t, false);
}

static bool is_braked(struct kcm_mux *mux, struct kcm_flowctl *ctl, struct kcm_transport *t)
{
	return __atomic_load_n(&mux->flow->ballast[t->slot], __ATOMIC_ACQUIRE) &&
	       !ctl->lent[t->slot];
}

/*
 * Close @t's window: ballast up to the size of its receive buffer. A transport a release
 * lent room to (see release()) closes by giving that room back.
 */
static void brake(struct kcm_mux *mux, struct kcm_flowctl *ctl, struct kcm_transport *t)
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
static bool release(struct kcm_mux *mux, struct kcm_flowctl *ctl, struct kcm_transport *t)
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
 * Room the open transports need: half a receive buffer each, but never more than half the
 * room there is when empty, or many transports would keep the mux braked for good.
 */
static uint64_t need(uint64_t open_b, uint64_t full)
{
	return open_b < full / 2 ? open_b : full / 2;
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
static bool sends_stuck(struct kcm_transport *t)
{
	struct tcp_info ti;
	socklen_t len = sizeof(ti);

	if (getsockopt(t->fd, IPPROTO_TCP, TCP_INFO, &ti, &len))
		return false;
	return ti.tcpi_unacked && ti.tcpi_last_ack_recv >= ACKS_MS;
}

/*
 * Bytes the receive-enabled members can still take under the window; @full: when empty.
 * A member over its window (the steering gives a batch to the least-loaded member when
 * none has room) takes its excess, up to a quarter window, from the others' room.
 * Counted as no room at all, the excess kept every member a megabyte over its window
 * under overload, because each release lets in more than the room that allowed it.
 * Counted in full, a stalled member's excess left its peers no room at all (1 of 2
 * stalled: the other kept 0.2% of its rate).
 */
static uint64_t room_of(struct kcm_mux *mux, const struct kcm_steer *st, uint64_t *full)
{
	int64_t room = 0, w = mux->cfg.window, u;

	*full = 0;
	for (__u32 i = 0; i < st->nmembers && i < KCM_MAX_MEMBERS; i++) {
		u = kcm_credits_unread(mux, st->slots[i]);
		room += u <= w + w / 4 ? w - u : -(w / 4);
		*full += w;
	}
	room = room < 0 ? 0 : room;
	if (!st->nmembers && st->hold) {
		u = kcm_credits_unread(mux, st->hold - 1);
		room = u < w ? w - u : 0;
		*full = w;
	}
	return room;
}

/*
 * One look at the mux: move held messages on, then brake the transports the room cannot
 * absorb and release braked ones, longest braked first, once there is room for them
 * with margin. Each open transport needs room for half its receive buffer (need()):
 * what it has queued when the ballast lands still reaches the verdict, and segments in
 * flight beyond the buffer are dropped by TCP and sent again later.
 * Receive buffers larger than the room must not stop the mux for good: the last open
 * transport is braked only when the room is below a quarter of its size when empty,
 * and with every transport braked one is released once half the room is back.
 * Returns true when it should look again soon.
 */
static bool tick(struct kcm_mux *mux, struct kcm_flowctl *ctl)
{
	struct kcm_transport *open[KCM_MAX_TRANSPORTS];
	struct kcm_steer st = { 0 };
	uint64_t room, full, open_b = 0;
	unsigned int nopen = 0, nbraked = 0, n;
	__u32 key = 0;

	if (bpf_map_lookup_elem_flags(mux->map_fd[KCM_MAP_STEER], &key, &st, BPF_F_LOCK))
		return false;
	if (st.nmembers && ctl->hold && kcm_credits_unread(mux, ctl->hold->slot)) {
		pthread_mutex_lock(&ctl->hold->rlock);
		kcm_requeue_all(ctl->hold, kcm_now_ns() + HOLD_DRAIN_NS, false, NULL);
		pthread_mutex_unlock(&ctl->hold->rlock);
	}
	room = room_of(mux, &st, &full);
	if (ctl->brake_fd < 0)
		return false;
	kcm_tx_refresh(mux);
	pthread_rwlock_rdlock(&mux->tx_lock);
	n = mux->ntx;
	for (unsigned int i = 0; i < n; i++) {
		struct kcm_transport *t = mux->tx[(ctl->next + i) % n];

		if (ctl->cookie[t->slot] != t->cookie) { /* a new transport in this slot */
			ctl->cookie[t->slot] = t->cookie;
			ctl->lent[t->slot] = ctl->rcvbuf[t->slot] = 0;
			ctl->stuck_since[t->slot] = ctl->braked_at[t->slot] = 0;
		}
		if (ctl->lent[t->slot])
			release(mux, ctl, t); /* reads the ballast and gives the room back */
		if (is_braked(mux, ctl, t) && sends_stuck(t) && release(mux, ctl, t))
			ctl->braked_at[t->slot] = kcm_now_ns();
		if (is_braked(mux, ctl, t)) {
			brake(mux, ctl, t); /* tops up a buffer that grew */
			nbraked++;
			continue;
		}
		open[nopen++] = t;
		open_b += base_rcvbuf(ctl, t) / 2;
	}
	/* brake, starting after the one braked last time */
	for (unsigned int i = 0; i < nopen && room < need(open_b, full); i++) {
		if (i == nopen - 1 && room * 4 >= full)
			break;
		open_b -= base_rcvbuf(ctl, open[i]) / 2;
		brake(mux, ctl, open[i]);
		ctl->next = (ctl->next + i + 1) % n;
		nbraked++;
	}
	/* release the longest-braked while the room covers every open window 1.5 times */
	while (nbraked) {
		struct kcm_transport *oldest = NULL;

		for (unsigned int i = 0; i < n; i++) {
			struct kcm_transport *t = mux->tx[i];

			if (is_braked(mux, ctl, t) &&
			    (!oldest || ctl->braked_at[t->slot] < ctl->braked_at[oldest->slot]))
				oldest = t;
		}
		if (!oldest)
			break;
		if (room * 2 < need(open_b + base_rcvbuf(ctl, oldest) / 2, full) * 3 &&
		    (open_b || room * 2 < full))
			break;
		if (!release(mux, ctl, oldest)) {
			ctl->braked_at[oldest->slot] = kcm_now_ns(); /* retry after the others */
			break;
		}
		open_b += base_rcvbuf(ctl, oldest) / 2;
		nbraked--;
	}
	pthread_rwlock_unlock(&mux->tx_lock);
	__atomic_store_n(&mux->flow->braked, nbraked, __ATOMIC_RELAXED);
	return nbraked || room < need(open_b, full) * 2;
}

static void hold_close(struct kcm_mux *mux, struct kcm_flowctl *ctl)
{
	struct kcm_member_info none = { 0 };

	if (!ctl->hold)
		return;
	if (!kcm_mux_lock(mux)) {
		bpf_map_update_elem(mux->map_fd[KCM_MAP_MEMBER_INFO], &ctl->hold->slot, &none,
				    BPF_ANY);
		kcm_sock_free(ctl->hold);
		kcm_steer_sync(mux);
		kcm_mux_unlock(mux);
	} else {
		kcm_sock_free(ctl->hold);
	}
	ctl->hold = NULL;
}

/* Taking over: the hold queue, the brake, and the ballast a dead leader left. */
static void lead(struct kcm_mux *mux, struct kcm_flowctl *ctl)
{
	struct sched_param sp = { .sched_priority = 10 };

	ctl->leader = true;
	/* a late reaction lets a window's worth more through: run promptly (best effort) */
	pthread_setschedparam(pthread_self(), SCHED_FIFO, &sp);
	kcm_member_add(mux, true, &ctl->hold);
	if (brake_open(mux, ctl))
		ctl->brake_fd = -1;
	__atomic_store_n(&mux->flow->controller, getpid(), __ATOMIC_RELEASE);
}

/* Stepping down: open every window again, move held messages on, give the lock back. */
static void resign(struct kcm_mux *mux, struct kcm_flowctl *ctl)
{
	uint64_t end = kcm_now_ns() + KCM_REQUEUE_MS * 1000000ull;
	bool left;

	do {
		left = false;
		kcm_tx_refresh(mux);
		pthread_rwlock_rdlock(&mux->tx_lock);
		for (unsigned int i = 0; i < mux->ntx; i++)
			left |= !release(mux, ctl, mux->tx[i]);
		pthread_rwlock_unlock(&mux->tx_lock);
	} while (left && kcm_now_ns() < end && !usleep(1000));
	if (ctl->hold) {
		pthread_mutex_lock(&ctl->hold->rlock);
		kcm_requeue_all(ctl->hold, end, false, NULL);
		pthread_mutex_unlock(&ctl->hold->rlock);
	}
	hold_close(mux, ctl);
	if (ctl->brake_fd >= 0) {
		close(ctl->brake_fd);
		close(ctl->brake_peer);
	}
	__atomic_store_n(&mux->flow->braked, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&mux->flow->controller, 0, __ATOMIC_RELEASE);
	ctl->leader = false;
}

static void sleep_ns(uint64_t ns)
{
	struct timespec ts = { .tv_sec = ns / 1000000000ull, .tv_nsec = ns % 1000000000ull };

	nanosleep(&ts, NULL);
}

static void *run(void *arg)
{
	struct kcm_mux *mux = arg;
	struct kcm_flowctl *ctl = mux->ctl;

	while (!atomic_load(&ctl->stop)) {
		if (!ctl->leader) {
			if (ctl->lock_fd >= 0 && flock(ctl->lock_fd, LOCK_EX | LOCK_NB)) {
				sleep_ns(FOLLOW_NS);
				continue;
			}
			lead(mux, ctl);
		}
		sleep_ns(tick(mux, ctl) ? TICK_BUSY_NS : TICK_IDLE_NS);
	}
	if (ctl->leader)
		resign(mux, ctl);
	return NULL;
}

/* Start this process's controller thread once (it leads when no other process does). */
void kcm_flowctl_start(struct kcm_mux *mux)
{
	struct kcm_flowctl *ctl;
	char path[256];

	pthread_mutex_lock(&mux->lock);
	if (mux->ctl || !mux->credits || !mux->flow)
		goto out;
	ctl = calloc(1, sizeof(*ctl));
	if (!ctl)
		goto out;
	ctl->sink = calloc(1, BALLAST_CHUNK);
	ctl->lock_fd = -1;
	ctl->brake_fd = -1;
	if (mux->name[0] && !kcm_pin_path(path, sizeof(path), mux->name, NULL))
		ctl->lock_fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	mux->ctl = ctl;
	if (!ctl->sink || (mux->name[0] && ctl->lock_fd < 0) ||
	    pthread_create(&ctl->thread, NULL, run, mux)) {
		if (ctl->lock_fd >= 0)
			close(ctl->lock_fd);
		free(ctl->sink);
		free(ctl);
		mux->ctl = NULL;
	}
out:
	pthread_mutex_unlock(&mux->lock);
}

void kcm_flowctl_stop(struct kcm_mux *mux)
{
	struct kcm_flowctl *ctl = mux->ctl;

	if (!ctl)
		return;
	atomic_store(&ctl->stop, true);
	pthread_join(ctl->thread, NULL);
	if (ctl->lock_fd >= 0)
		close(ctl->lock_fd); /* and with it the lock */
	free(ctl->sink);
	free(ctl);
	mux->ctl = NULL;
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

/* Receive memory charged to the group's sockets (their owners' fds, pidfd_getfd). */
static uint64_t charged_bytes(struct kcm_mux *mux)
{
	struct kcm_member_info info;
	uint64_t sum = 0;
	__u64 cookie;

	for (__u32 slot = 0; slot < KCM_MAX_MEMBERS; slot++) {
		__u32 mem[SK_MEMINFO_VARS] = { 0 };
		socklen_t len = sizeof(mem);
		int fd;

		if (bpf_map_lookup_elem(mux->map_fd[KCM_MAP_GROUP], &slot, &cookie) ||
		    bpf_map_lookup_elem(mux->map_fd[KCM_MAP_MEMBER_INFO], &slot, &info) ||
		    info.cookie != cookie)
			continue;
		fd = info.pid == (__u32)getpid() ? fcntl(info.fd, F_DUPFD_CLOEXEC, 0) :
			kcm_pidfd_getfd(info.pid, info.fd);
		if (fd < 0)
			return (uint64_t)-1;
		if (kcm_sock_cookie(fd) == cookie &&
		    !getsockopt(fd, SOL_SOCKET, SO_MEMINFO, mem, &len))
			sum += mem[SK_MEMINFO_RMEM_ALLOC];
		close(fd);
	}
	return sum;
}

int kcm_mux_flow(struct kcm_mux *mux, struct kcm_flow *out)
{
	struct kcm_flow f = { .sz = sizeof(f) };
	struct kcm_transport_info info;
	struct kcm_steer st = { 0 };
	__u32 key = 0;

	if (!mux || !out || out->sz < offsetof(struct kcm_flow, controller) + sizeof(pid_t) ||
	    !mux->credits || !mux->flow) {
		errno = EINVAL;
		return -1;
	}
	if (bpf_map_lookup_elem_flags(mux->map_fd[KCM_MAP_STEER], &key, &st, BPF_F_LOCK))
		return -1;
	f.window = mux->cfg.window;
	f.members = st.nmembers;
	for (__u32 i = 0; i < st.nmembers && i < KCM_MAX_MEMBERS; i++)
		f.unread_bytes += kcm_credits_unread(mux, st.slots[i]);
	if (st.hold) {
		f.held_bytes = kcm_credits_unread(mux, st.hold - 1);
		f.unread_bytes += f.held_bytes;
	}
	for (__u32 slot = 0; slot < KCM_MAX_TRANSPORTS; slot++) {
		if (bpf_map_lookup_elem(mux->map_fd[KCM_MAP_TRANSPORT_INFO], &slot, &info) ||
		    !info.cookie)
			continue;
		f.transports++;
		f.braked += __atomic_load_n(&mux->flow->ballast[slot], __ATOMIC_ACQUIRE) != 0;
	}
	f.brakes = __atomic_load_n(&mux->flow->brakes, __ATOMIC_RELAXED);
	f.releases = __atomic_load_n(&mux->flow->releases, __ATOMIC_RELAXED);
	f.saturated = __atomic_load_n(&mux->flow->saturated, __ATOMIC_RELAXED);
	f.controller = __atomic_load_n(&mux->flow->controller, __ATOMIC_ACQUIRE);
	f.charged_bytes = charged_bytes(mux);
	memcpy(out, &f, out->sz < sizeof(f) ? out->sz : sizeof(f));
	out->sz = out->sz < sizeof(f) ? out->sz : sizeof(f);
	return 0;
}
