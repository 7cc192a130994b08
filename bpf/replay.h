/* replay.h: RFC 6479 anti-replay ring, one per session, shared by all CPUs.
 *
 * Mirrors src/warrant/replay.py (SPEC 6.3): 64 words of 64 bits; `top` is the
 * newest accepted sequence number; seq is fresh when seq > top, or when
 * top - seq < REPLAY_WINDOW and its bit is clear.  The window lives in its own
 * hash map keyed by session id and guarded by a bpf_spin_lock: a per-CPU window
 * would let an attacker replay a packet onto another CPU.  Check and record
 * happen under one lock, after every other check passed (SPEC 6.1 step 7 and the
 * kernel's "records the sequence number after step 7").
 */
#ifndef WARRANT_REPLAY_H
#define WARRANT_REPLAY_H

#include <linux/types.h>
#include <bpf/bpf_helpers.h>
#include "warrant_constants.h"
#include "session.h"

#define WARRANT_REPLAY_WORDS (WARRANT_REPLAY_RING_BITS / WARRANT_REPLAY_WORD_BITS)
#define WARRANT_REPLAY_WORD_MASK (WARRANT_REPLAY_WORDS - 1)
#define WARRANT_REPLAY_WORD_SHIFT 6 /* log2(REPLAY_WORD_BITS) */

_Static_assert(WARRANT_REPLAY_WORD_BITS == 1 << WARRANT_REPLAY_WORD_SHIFT, "word bits");
_Static_assert((WARRANT_REPLAY_WORDS & WARRANT_REPLAY_WORD_MASK) == 0, "ring of 2^k words");

struct warrant_replay {
	struct bpf_spin_lock lock;
	__u32 _pad;
	__u64 top; /* newest accepted seq (installed from the INIT, which records seq 0) */
	__u64 words[WARRANT_REPLAY_WORDS];
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, WARRANT_MAX_SESSIONS);
	__type(key, __u64);
	__type(value, struct warrant_replay);
} warrant_replay SEC(".maps");

/* Check seq and, when fresh, record it.  Returns OK, REPLAY or TOO_OLD. */
static __always_inline int warrant_replay_update(struct warrant_replay *w, __u64 seq)
{
	int reason = WARRANT_REASON_OK;
	__u64 index = seq >> WARRANT_REPLAY_WORD_SHIFT;
	__u64 bit = 1ULL << (seq & (WARRANT_REPLAY_WORD_BITS - 1));

	bpf_spin_lock(&w->lock);
	__u64 top = w->top;
	if (seq > top) {
		__u64 current = top >> WARRANT_REPLAY_WORD_SHIFT;
		__u64 diff = index - current;
		if (diff >= WARRANT_REPLAY_WORDS) {
#pragma clang loop unroll(full)
			for (int i = 0; i < WARRANT_REPLAY_WORDS; i++)
				w->words[i] = 0;
		} else {
			/* At most 63 words to clear; bounded loop, no early exit needed. */
			for (__u32 i = 1; i < WARRANT_REPLAY_WORDS; i++) {
				if (i > diff)
					break;
				w->words[(current + i) & WARRANT_REPLAY_WORD_MASK] = 0;
			}
		}
		w->top = seq;
		w->words[index & WARRANT_REPLAY_WORD_MASK] |= bit;
	} else if (top - seq >= WARRANT_REPLAY_WINDOW) {
		reason = WARRANT_REASON_TOO_OLD;
	} else if (w->words[index & WARRANT_REPLAY_WORD_MASK] & bit) {
		reason = WARRANT_REASON_REPLAY;
	} else {
		w->words[index & WARRANT_REPLAY_WORD_MASK] |= bit;
	}
	bpf_spin_unlock(&w->lock);
	return reason;
}

#endif
