/* hop.h: DATA hop records against the path pinned at opening (SPEC 7.2, step 6).
 *
 * Mirrors src/warrant/core/hop.py verify_data_hops: the packet must carry exactly the
 * pinned relays, in order, each record's tag must be that relay's key id and its
 * MAC must equal SipHash-2-4-64(k_hop_i, prev || relay_tag || u8(i)), where prev
 * is mac[0:8] of the header for i = 0 and the previous hop MAC after.
 *
 * A bounded loop, not unrolled: every packet access is checked against data_end at
 * its variable offset, which the verifier follows through the (at most MAX_HOPS)
 * iterations.
 */
#ifndef WARRANT_HOP_H
#define WARRANT_HOP_H

#include <linux/types.h>
#include "warrant_constants.h"
#include "mac.h"
#include "session.h"

/* pkt: Warrant packet start; its header and n hop records were length-checked by
 * warrant_parse_data (the pointer checks below are for the verifier).  Rolled: one
 * copy of the hop body in the program.  Measured (bench/datapath.py), 4-hop DATA ran
 * ~30 ns faster than with the eight steps unrolled, for the same work per hop (the
 * likely cause: a smaller hot path for the CPU's instruction caches). */
static __always_inline int warrant_check_hops(__u8 *pkt, __u8 *data_end, __u32 n,
					      struct warrant_session *s)
{
	if (n != s->hop_count)
		return WARRANT_REASON_HOP_CHAIN_BROKEN;
	if (pkt + WARRANT_OFF_MAC + WARRANT_HOP_MAC_LEN > data_end)
		return WARRANT_REASON_HOP_CHAIN_BROKEN;
	__u64 prev = *(__u64 *)(pkt + WARRANT_OFF_MAC);
#pragma clang loop unroll(disable)
	for (__u32 i = 0; i < WARRANT_MAX_HOPS; i++) {
		if (i >= n)
			break;
		__u8 *rec = pkt + WARRANT_OFF_HOPS + i * WARRANT_HOP_RECORD_LEN;
		if (rec + WARRANT_HOP_RECORD_LEN > data_end)
			return WARRANT_REASON_HOP_CHAIN_BROKEN;
		__u32 tag = *(__u32 *)rec;
		struct warrant_hop_key *h = &s->hops[i];
		if (tag != *(__u32 *)h->tag)
			return WARRANT_REASON_HOP_CHAIN_BROKEN;
		__u64 got = *(__u64 *)(rec + WARRANT_HOP_TAG_LEN);
		if (got != warrant_hop_mac(h->k_hop[0], h->k_hop[1], prev, tag, i))
			return WARRANT_REASON_HOP_CHAIN_BROKEN;
		prev = got;
	}
	return WARRANT_REASON_OK;
}

#endif
