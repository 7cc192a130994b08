/* session.h: the session map and the kernel's clock.
 *
 * Mirrors src/warrant/core/session.py: what the receiver learned from a verified INIT,
 * reduced to what the per-packet checks need (SPEC 6.1 steps 2-6).  User space
 * (src/warrant/datapath/loader.py) installs one value per admitted session; the
 * replay window lives in its own map (replay.h) so that reinstalling a session
 * never resets its window, at the index `window` the loader gave the session when
 * it first installed it: one hash lookup per packet finds both.
 */
#ifndef WARRANT_SESSION_H
#define WARRANT_SESSION_H

#include <linux/types.h>
#include <bpf/bpf_helpers.h>
#include "warrant_constants.h"

#ifndef WARRANT_MAX_SESSIONS
#define WARRANT_MAX_SESSIONS 65536
#endif

struct warrant_hop_key {
	__u64 k_hop[2];                /* per-session hop key (SPEC 5.3), little-endian words:
					  8-aligned, so each is one load (not two and a shift) */
	__u8 tag[WARRANT_HOP_TAG_LEN]; /* relay key id pinned by the INIT */
	__u8 _pad[4];
};

struct warrant_session {
	__u8 k_mac[16];        /* SipHash-2-4-128 header MAC key (SPEC 5.2) */
	__u64 expires_ns;      /* kernel clock (clock below): now >= expires -> expired */
	__u16 port;            /* claimed UDP destination port, host order */
	__u8 hop_count;        /* length of the pinned path */
	__u8 _pad0;
	__u32 bad_mac_tokens;  /* bad-MAC token bucket (verdict.h), charged per failure */
	__u64 bad_mac_tick;    /* clock tick of the last refill */
	struct warrant_hop_key hops[WARRANT_MAX_HOPS];
	__u32 window;          /* index of this session's replay window (replay.h) */
	__u32 _pad1;
	__u64 sid;             /* in warrant_session_slots: whose slot this is (0: free) */
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, WARRANT_MAX_SESSIONS);
	__type(key, __u64); /* the 8 session id bytes as they are on the wire */
	__type(value, struct warrant_session);
} warrant_sessions SEC(".maps");

/* Where most sessions live: slot (sid & (SLOTS - 1)) of an array, found by an inlined
 * address computation instead of a hash lookup (a helper call: ~28 ns here).  Session
 * ids are BLAKE2b outputs, so slots fill uniformly; a session whose slot is taken (or
 * whose id is 0) goes to warrant_sessions instead, looked up after the slot misses.
 * User space writes a slot only with its sid 0 or with every other field unchanged, so
 * a slot read while being written has the sid it claims and that session's fields. */
#define WARRANT_SESSION_SLOTS 65536

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, WARRANT_SESSION_SLOTS);
	__type(key, __u32);
	__type(value, struct warrant_session);
} warrant_session_slots SEC(".maps");

/* The kernel's clock, in nanoseconds.  frozen != 0: `now` is the time (tests and
 * benchmarks set it).  frozen == 0: the clock is bpf_ktime_get_coarse_ns(), and
 * user space converts wall-clock expiries onto it when installing a session, so
 * enforcement keeps its notion of time when the agent is gone. */
struct warrant_clock {
	__u64 now;
	__u32 frozen;
	__u32 _pad;
};

/* Global data (".bss.warrant_clock"): read at a fixed address, no lookup (wire.h). */
struct warrant_clock warrant_clock SEC(".bss.warrant_clock");

/* All of a CPU's own state, in one value: one inlined lookup per packet serves the
 * clock, the MTU cache, the event budget and the REJECT bucket.  A helper call is not
 * cheap (one bpf_ktime_get_coarse_ns() cost ~17 ns where kernel returns are mitigated:
 * SRSO "safe RET"), while bpf_jiffies64() is inlined into a load.
 *   jiffies, now: the live clock.  CLOCK_MONOTONIC_COARSE only moves when the tick
 *     advances jiffies (the timekeeping tick updates both), so it is read once per tick
 *     per CPU and reused: same clock, same resolution (a reading taken between the
 *     jiffies update and the clock update lags by at most that tick).
 *   mtu_*: the largest IP length bpf_check_mtu() accepted on ingress device
 *     mtu_ifindex during tick mtu_jiffies (warrant_xdp.c, MERGED_FRAME); shorter
 *     frames fit too, so they skip the call until the tick ends.
 *   budget_tick, budget_left, events_suppressed: the event budget (verdict.h).
 *   reject_tat, rejects_limited: the REJECT bucket (reject.h).
 * Pinned with the other maps: the budget and the bucket outlive a reload (the caches
 * are only trusted within their jiffy). */
struct warrant_percpu {
	__u64 jiffies;
	__u64 now;
	__u64 mtu_jiffies;
	__u32 mtu_ifindex;
	__u32 mtu_ok;
	__u64 budget_tick;
	__u64 budget_left;
	__u64 events_suppressed; /* events the budget withheld */
	__u64 reject_tat;
	__u64 rejects_limited;   /* drops that wanted a REJECT and found the bucket empty */
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct warrant_percpu);
} warrant_percpu SEC(".maps");

static __always_inline __u64 warrant_now(struct warrant_percpu *pc)
{
	if (warrant_clock.frozen)
		return warrant_clock.now;
	__u64 j = bpf_jiffies64();
	if (pc->jiffies != j || !pc->now) {
		/* jiffies first: a tick between the two reads leaves a newer clock under older
		 * jiffies, refreshed by the next packet */
		pc->now = bpf_ktime_get_coarse_ns();
		pc->jiffies = j;
	}
	return pc->now;
}

/* Presence filter in front of the session hash: bit (sid & 0xffff) is set while a
 * session whose id has those low 16 bits may be installed.  Only user space writes
 * it (the loader keeps a count per bit and sets exactly the bits with live
 * sessions), so it has no false negatives; an unknown id, a flood of random ids
 * above all, is refused with one inlined array read instead of a jhash and a
 * bucket walk.  Session ids are BLAKE2b outputs, so their low bits are uniform. */
#define WARRANT_FILTER_WORDS (65536 / 64)

struct warrant_session_filter {
	__u64 bits[WARRANT_FILTER_WORDS];
};

/* Global data (".bss.warrant_session_filter"): an unknown id costs no lookup at all. */
struct warrant_session_filter warrant_session_filter SEC(".bss.warrant_session_filter");

static __always_inline struct warrant_session *warrant_session_lookup(__u64 *sid)
{
	__u32 low = (__u32)(*sid & 0xFFFF);
	if (!((warrant_session_filter.bits[(low >> 6) & (WARRANT_FILTER_WORDS - 1)] >> (low & 63)) & 1))
		return 0;
	__u32 slot = (__u32)(*sid & (WARRANT_SESSION_SLOTS - 1));
	struct warrant_session *s = bpf_map_lookup_elem(&warrant_session_slots, &slot);
	if (s && *(volatile __u64 *)&s->sid == *sid && *sid)
		return s;
	return bpf_map_lookup_elem(&warrant_sessions, sid);
}

/* The kernel's half of removing an expired session (user space frees the rest). */
static __always_inline void warrant_session_remove(__u64 *sid)
{
	__u32 slot = (__u32)(*sid & (WARRANT_SESSION_SLOTS - 1));
	struct warrant_session *s = bpf_map_lookup_elem(&warrant_session_slots, &slot);
	if (s && s->sid == *sid)
		__sync_val_compare_and_swap(&s->sid, *sid, 0);
	else
		bpf_map_delete_elem(&warrant_sessions, sid);
}

#endif
