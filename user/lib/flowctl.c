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
#include <sys/file.h>
#include <unistd.h>
#include <bpf/bpf.h>

#include "internal.h"
#include "flowctl.h"

#define TICK_BUSY_NS 200000ull	/* while braking or short of room */
#define TICK_IDLE_NS 1000000ull
#define FOLLOW_NS 100000000ull	/* a process not in charge checks the lock this often */
#define HOLD_DRAIN_NS 2000000ull /* moving held messages, per tick */

/*
 * Room the open transports need: half a receive buffer each, but never more than half the
 * room there is when empty, or many transports would keep the mux braked for good.
 */
static uint64_t need(uint64_t open_b, uint64_t full)
{
	return open_b < full / 2 ? open_b : full / 2;
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
		kcm_requeue_all(ctl->hold, kcm_now_ns() + HOLD_DRAIN_NS, 0, false, NULL);
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
			kcm_brake_release(mux, ctl, t); /* reads the ballast and gives the room back */
		if (kcm_brake_is_braked(mux, ctl, t) && kcm_brake_sends_stuck(t) && kcm_brake_release(mux, ctl, t))
			ctl->braked_at[t->slot] = kcm_now_ns();
		if (kcm_brake_is_braked(mux, ctl, t)) {
			kcm_brake(mux, ctl, t); /* tops up a buffer that grew */
			nbraked++;
			continue;
		}
		open[nopen++] = t;
		open_b += kcm_brake_base_rcvbuf(ctl, t) / 2;
	}
	/* brake, starting after the one braked last time */
	for (unsigned int i = 0; i < nopen && room < need(open_b, full); i++) {
		if (i == nopen - 1 && room * 4 >= full)
			break;
		open_b -= kcm_brake_base_rcvbuf(ctl, open[i]) / 2;
		kcm_brake(mux, ctl, open[i]);
		ctl->next = (ctl->next + i + 1) % n;
		nbraked++;
	}
	/* release the longest-braked while the room covers every open window 1.5 times */
	while (nbraked) {
		struct kcm_transport *oldest = NULL;

		for (unsigned int i = 0; i < n; i++) {
			struct kcm_transport *t = mux->tx[i];

			if (kcm_brake_is_braked(mux, ctl, t) &&
			    (!oldest || ctl->braked_at[t->slot] < ctl->braked_at[oldest->slot]))
				oldest = t;
		}
		if (!oldest)
			break;
		if (room * 2 < need(open_b + kcm_brake_base_rcvbuf(ctl, oldest) / 2, full) * 3 &&
		    (open_b || room * 2 < full))
			break;
		if (!kcm_brake_release(mux, ctl, oldest)) {
			ctl->braked_at[oldest->slot] = kcm_now_ns(); /* retry after the others */
			break;
		}
		open_b += kcm_brake_base_rcvbuf(ctl, oldest) / 2;
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
	if (kcm_brake_open(mux, ctl))
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
			left |= !kcm_brake_release(mux, ctl, mux->tx[i]);
		pthread_rwlock_unlock(&mux->tx_lock);
	} while (left && kcm_now_ns() < end && !usleep(1000));
	if (ctl->hold) {
		pthread_mutex_lock(&ctl->hold->rlock);
		kcm_requeue_all(ctl->hold, end, 0, false, NULL);
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

