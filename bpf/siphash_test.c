// SPDX-License-Identifier: Apache-2.0
/* siphash_test.c: mac.h's SipHash as compiled for the datapath, exposed to test vectors.
 *
 * Not part of the datapath.  tests/test_siphash_bpf.py runs it with BPF_PROG_TEST_RUN
 * on a buffer laid out as
 *
 *   [0]       which: 0 = warrant_hop_mac (SipHash-2-4-64 of 13 bytes),
 *                    1 = warrant_header_mac (SipHash-2-4-128 of 20 bytes)
 *   [8, 24)   key, 16 bytes
 *   [24, 44)  message (13 or 20 bytes; the rest ignored)
 *
 * and reads the tag back from bytes [0, 8) or [0, 16) of the output buffer.  The
 * message words are loaded as warrant_xdp.c and hop.h load them from a packet.
 */
#include <linux/types.h>
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "mac.h"

char LICENSE[] SEC("license") = "GPL";

#define SIP_KEY 8
#define SIP_MSG 24
#define SIP_END 44

SEC("xdp")
int siphash_test(struct xdp_md *ctx)
{
	__u8 *data = (__u8 *)(long)ctx->data;
	__u8 *data_end = (__u8 *)(long)ctx->data_end;
	if (data + SIP_END > data_end)
		return XDP_ABORTED;
	__u64 k0 = *(__u64 *)(data + SIP_KEY);
	__u64 k1 = *(__u64 *)(data + SIP_KEY + 8);
	__u8 *m = data + SIP_MSG;
	if (data[0] == 0) {
		/* prev[8] || tag[4] || u8(index), as hop.h passes them */
		__u64 tag = warrant_hop_mac(k0, k1, *(__u64 *)m, *(__u32 *)(m + 8), m[12]);
		*(__u64 *)data = tag;
		return XDP_PASS;
	}
	if (data[0] == 1) {
		__u64 out[2];
		warrant_header_mac(k0, k1, *(__u64 *)m, *(__u64 *)(m + 8), *(__u32 *)(m + 16), out);
		*(__u64 *)data = out[0];
		*(__u64 *)(data + 8) = out[1];
		return XDP_PASS;
	}
	return XDP_ABORTED;
}
