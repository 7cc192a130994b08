/* hop.h: DATA hop records against the path pinned at opening (SPEC 7.2, step 6).
 *
 * Mirrors src/warrant/hop.py verify_data_hops: the packet must carry exactly the
 * pinned relays, in order, each record's tag must be that relay's key id and its
 * MAC must equal SipHash-2-4-64(k_hop_i, prev || relay_tag || u8(i)), where prev
 * is mac[0:8] of the header for i = 0 and the previous hop MAC after.
 *
 * Hand-unrolled with constant offsets: clang 14 does not unroll a loop with an
 * early exit, and constant offsets keep every packet access provably in bounds.
 */
#ifndef WARRANT_HOP_H
#define WARRANT_HOP_H

#include <linux/types.h>
#include "warrant_constants.h"
#include "mac.h"
#include "session.h"

#define WARRANT_HOP_OFF(i) (WARRANT_OFF_HOPS + (i) * WARRANT_HOP_RECORD_LEN)

/* One hop: returns non-zero when record i is wrong.  `prev` carries the chain. */
#define WARRANT_HOP_STEP(i)                                                                 \
	if (n > (i)) {                                                                      \
		__u8 *rec = pkt + WARRANT_HOP_OFF(i);                                       \
		if (rec + WARRANT_HOP_RECORD_LEN > data_end)                                \
			return WARRANT_REASON_HOP_CHAIN_BROKEN;                             \
		__u32 tag = *(__u32 *)rec;                                                  \
		if (tag != *(__u32 *)s->hops[i].tag)                                        \
			return WARRANT_REASON_HOP_CHAIN_BROKEN;                             \
		__u64 got = *(__u64 *)(rec + WARRANT_HOP_TAG_LEN);                          \
		__u64 want = warrant_hop_mac(s->hops[i].k_hop[0], s->hops[i].k_hop[1],      \
					     prev, tag, (i));                               \
		if (got != want)                                                            \
			return WARRANT_REASON_HOP_CHAIN_BROKEN;                             \
		prev = got;                                                                 \
	}

_Static_assert(WARRANT_MAX_HOPS == 8, "hop.h unrolls exactly MAX_HOPS steps");

/* pkt: Warrant packet start; its header and n hop records were length-checked by
 * warrant_parse_data (the pointer checks below are for the verifier). */
static __always_inline int warrant_check_hops(__u8 *pkt, __u8 *data_end, __u32 n,
					      struct warrant_session *s)
{
	if (n != s->hop_count)
		return WARRANT_REASON_HOP_CHAIN_BROKEN;
	if (n == 0)
		return WARRANT_REASON_OK;
	if (pkt + WARRANT_OFF_MAC + WARRANT_HOP_MAC_LEN > data_end)
		return WARRANT_REASON_HOP_CHAIN_BROKEN;
	__u64 prev = *(__u64 *)(pkt + WARRANT_OFF_MAC);
	WARRANT_HOP_STEP(0)
	WARRANT_HOP_STEP(1)
	WARRANT_HOP_STEP(2)
	WARRANT_HOP_STEP(3)
	WARRANT_HOP_STEP(4)
	WARRANT_HOP_STEP(5)
	WARRANT_HOP_STEP(6)
	WARRANT_HOP_STEP(7)
	return WARRANT_REASON_OK;
}

#endif
