/* replay.h: the anti-replay window of SPEC 6.3, one per session, shared by all CPUs,
 * lock-free.
 *
 * Same decisions as src/warrant/core/replay.py (RFC 6479, 4096-bit ring, `top` the newest
 * accepted sequence number): seq is fresh when seq > top, or when
 * top - seq < REPLAY_WINDOW (4032) and it was not seen; top - seq >= 4032 is TOO_OLD,
 * a seen seq REPLAY.  The window lives in its own array at the session's index (so
 * reinstalling a session never resets it) and is shared by all CPUs: a per-CPU
 * window would let an attacker replay a packet onto another CPU.
 *
 * Layout: `top` and 128 slots of 64 bits, each (tag << 32) | bits: 32 sequence
 * numbers per slot; slot i holds the 32-number block whose index I = seq >> 5
 * satisfies I % 128 == i, and its tag is I's low 32 bits.  A slot whose tag is not
 * the block's holds nothing of that block: blocks are cleared lazily, by whoever
 * first records a number in the new block, instead of eagerly when top advances.
 * So every update is a compare-and-exchange on one 64-bit word, and top is raised
 * with compare-and-exchange too: no lock (a bpf_spin_lock pair cost ~40 ns).
 *
 * Why it is safe across CPUs (docs/datapath.md, "Lock-free window"):
 *  1. A number is accepted only by the CAS that sets its bit in a slot tagged with
 *     its block: of two CPUs racing with the same number, exactly one sees the bit
 *     clear.
 *  2. top is raised (CAS) *before* the slot of a number above it is written, and
 *     both are fully ordered atomics; a CPU that sees a slot re-tagged for a newer
 *     block therefore also sees a top at least 32 * that block, which puts every
 *     number of the slot's older blocks at least 4065 behind: TOO_OLD.  A slot is
 *     re-tagged only by a number inside the window of the top it read, after
 *     re-reading top, so a bit can only be lost for numbers already TOO_OLD.
 *  3. Contention beyond DP_REPLAY_RETRIES failed CASes drops the packet (REPLAY):
 *     fail closed, never admit.
 * The x86-64 JIT emits lock cmpxchg; plain loads are ordered after it (TSO).
 */
#ifndef WARRANT_REPLAY_H
#define WARRANT_REPLAY_H

#include <linux/types.h>
#include <bpf/bpf_helpers.h>
#include "warrant_constants.h"
#include "session.h"

#define WARRANT_REPLAY_SLOTS (WARRANT_REPLAY_RING_BITS / WARRANT_DP_REPLAY_SLOT_BITS)
#define WARRANT_REPLAY_SLOT_MASK (WARRANT_REPLAY_SLOTS - 1)
#define WARRANT_REPLAY_SLOT_SHIFT 5 /* log2(DP_REPLAY_SLOT_BITS) */
#define WARRANT_REPLAY_RETRIES 8

_Static_assert(WARRANT_DP_REPLAY_SLOT_BITS == 1 << WARRANT_REPLAY_SLOT_SHIFT, "slot bits");
_Static_assert((WARRANT_REPLAY_SLOTS & WARRANT_REPLAY_SLOT_MASK) == 0, "ring of 2^k slots");
_Static_assert(WARRANT_REPLAY_WINDOW <= WARRANT_REPLAY_RING_BITS - WARRANT_DP_REPLAY_SLOT_BITS,
	       "the window fits the ring minus one slot");

struct warrant_replay {
	__u64 top; /* newest accepted seq (installed from the INIT, which records seq 0) */
	__u64 slots[WARRANT_REPLAY_SLOTS]; /* (tag << 32) | bits */
};

/* Indexed by warrant_session.window: an array lookup is inlined into an address
 * computation, where a second hash lookup was a helper call (~28 ns here).  The loader
 * allocates the index when a session is first installed, writes the window from the
 * session's (seq 0 recorded) then, and never again while the session lives; a freed
 * index goes to the back of its free queue.  A packet still in flight for a removed
 * session can only set bits or raise top in the freed window (even after its next
 * owner's install): refusals, never an admission. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, WARRANT_MAX_SESSIONS);
	__type(key, __u32);
	__type(value, struct warrant_replay);
} warrant_replay SEC(".maps");

/* Check seq and, when fresh, record it.  Returns OK, REPLAY, TOO_OLD or SEQ_EXHAUSTED. */
static __always_inline int warrant_replay_update(struct warrant_replay *w, __u64 seq)
{
	__u64 block = seq >> WARRANT_REPLAY_SLOT_SHIFT;
	__u64 tag = block & 0xFFFFFFFFULL;
	__u64 bit = 1ULL << (seq & (WARRANT_DP_REPLAY_SLOT_BITS - 1));
	__u64 *slot = &w->slots[block & WARRANT_REPLAY_SLOT_MASK];
	__u64 top = *(volatile __u64 *)&w->top;

	if (seq >= WARRANT_SEQ_LIMIT) /* top never reaches 2^64-1 (SPEC 6.3) */
		return WARRANT_REASON_SEQ_EXHAUSTED;
	if (seq > top) {
		/* raise top first (safety argument 2) */
		int raised = 0;
		for (int i = 0; i < WARRANT_REPLAY_RETRIES; i++) {
			__u64 seen = __sync_val_compare_and_swap(&w->top, top, seq);
			if (seen == top || seen >= seq) {
				raised = 1;
				break;
			}
			top = seen;
		}
		if (!raised)
			return WARRANT_REASON_REPLAY; /* contention: fail closed */
	} else if (top - seq >= WARRANT_REPLAY_WINDOW) {
		return WARRANT_REASON_TOO_OLD;
	}

	__u64 old = *(volatile __u64 *)slot;
	for (int i = 0; i < WARRANT_REPLAY_RETRIES; i++) {
		__u64 next;
		if ((old >> 32) == tag) {
			if (old & bit)
				return WARRANT_REASON_REPLAY;
			next = old | bit;
		} else {
			/* another block's slot: newer (then top says TOO_OLD) or stale */
			__u64 now_top = *(volatile __u64 *)&w->top;
			if (now_top > seq && now_top - seq >= WARRANT_REPLAY_WINDOW)
				return WARRANT_REASON_TOO_OLD;
			next = (tag << 32) | bit;
		}
		__u64 seen = __sync_val_compare_and_swap(slot, old, next);
		if (seen == old)
			return WARRANT_REASON_OK;
		old = seen;
	}
	return WARRANT_REASON_REPLAY; /* contention: fail closed */
}

/* A whole segment train (SPEC 13.7): numbers [seq, seq + count), each checked and
 * recorded as above, in order, stopping at the first refusal (the numbers recorded
 * before it stay recorded: a refusal, never an admission).  bpf_loop keeps the
 * verifier's work to one pass over the body for up to TP_TRAIN_MAX_SEGS numbers. */
struct warrant_replay_range {
	struct warrant_replay *w;
	__u64 seq;
	int reason;
};

static long warrant_replay_range_step(__u64 i, void *ctx)
{
	struct warrant_replay_range *r = ctx;
	r->reason = warrant_replay_update(r->w, r->seq + i);
	return r->reason != WARRANT_REASON_OK;
}

static __always_inline int warrant_replay_update_range(struct warrant_replay *w, __u64 seq,
							__u32 count)
{
	struct warrant_replay_range r = {.w = w, .seq = seq, .reason = WARRANT_REASON_OK};
	if (count > WARRANT_TP_TRAIN_MAX_SEGS)
		return WARRANT_REASON_REPLAY;
	bpf_loop(count, warrant_replay_range_step, &r, 0);
	return r.reason;
}

#endif
