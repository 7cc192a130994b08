/* mac.h: SipHash-2-4, hand-unrolled for the two constant-size inputs the datapath MACs.
 *
 * Mirrors src/warrant/core/mac.py:
 *   header_mac: SipHash-2-4 with 128-bit output, exactly libsodium's
 *               crypto_shorthash_siphashx24, over the 20-byte DATA header prefix
 *               (DATA_MAC_INPUT_LEN) with hop_count zeroed;
 *   hop_mac:    SipHash-2-4 with 64-bit output (crypto_shorthash_siphash24) over
 *               prev_tag[0:8] || relay_tag[4] || u8(index): 13 bytes.
 * Keys and message words are little-endian, as in the SipHash paper; the BPF
 * target is little-endian on every architecture this runs on (checked below).
 */
#ifndef WARRANT_MAC_H
#define WARRANT_MAC_H

#include <linux/types.h>
#include "warrant_constants.h"

#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "mac.h loads SipHash words natively: little-endian BPF only"
#endif

#define WARRANT_ROTL(x, b) (__u64)(((x) << (b)) | ((x) >> (64 - (b))))

#define WARRANT_SIPROUND                                                                   \
	do {                                                                               \
		v0 += v1; v1 = WARRANT_ROTL(v1, 13); v1 ^= v0; v0 = WARRANT_ROTL(v0, 32);  \
		v2 += v3; v3 = WARRANT_ROTL(v3, 16); v3 ^= v2;                             \
		v0 += v3; v3 = WARRANT_ROTL(v3, 21); v3 ^= v0;                             \
		v2 += v1; v1 = WARRANT_ROTL(v1, 17); v1 ^= v2; v2 = WARRANT_ROTL(v2, 32);  \
	} while (0)

#define WARRANT_SIP_INIT(k0, k1)                                                           \
	__u64 v0 = 0x736f6d6570736575ULL ^ (k0);                                           \
	__u64 v1 = 0x646f72616e646f6dULL ^ (k1);                                           \
	__u64 v2 = 0x6c7967656e657261ULL ^ (k0);                                           \
	__u64 v3 = 0x7465646279746573ULL ^ (k1)

#define WARRANT_SIP_BLOCK(m)                                                               \
	do {                                                                               \
		v3 ^= (m);                                                                 \
		WARRANT_SIPROUND;                                                          \
		WARRANT_SIPROUND;                                                          \
		v0 ^= (m);                                                                 \
	} while (0)

#define WARRANT_SIP_FINAL4                                                                 \
	do {                                                                               \
		WARRANT_SIPROUND;                                                          \
		WARRANT_SIPROUND;                                                          \
		WARRANT_SIPROUND;                                                          \
		WARRANT_SIPROUND;                                                          \
	} while (0)

/* SipHash-2-4-128 of the 20-byte header prefix given as its three message words:
 * m0 = bytes [0,8), m1 = bytes [8,16), m2 = bytes [16,20) (low 32 bits).
 * Returns the 16-byte tag as two little-endian words (out[0] = bytes [0,8)). */
static __always_inline void warrant_header_mac(__u64 k0, __u64 k1, __u64 m0, __u64 m1,
					       __u64 m2, __u64 out[2])
{
	WARRANT_SIP_INIT(k0, k1);
	v1 ^= 0xee; /* 128-bit output variant */
	WARRANT_SIP_BLOCK(m0);
	WARRANT_SIP_BLOCK(m1);
	WARRANT_SIP_BLOCK(m2 | ((__u64)WARRANT_DATA_MAC_INPUT_LEN << 56));
	v2 ^= 0xee;
	WARRANT_SIP_FINAL4;
	out[0] = v0 ^ v1 ^ v2 ^ v3;
	v1 ^= 0xdd;
	WARRANT_SIP_FINAL4;
	out[1] = v0 ^ v1 ^ v2 ^ v3;
}

#define WARRANT_HOP_MAC_INPUT_LEN (WARRANT_HOP_MAC_LEN + WARRANT_HOP_TAG_LEN + 1)

/* SipHash-2-4-64 over prev[8] || tag[4] || u8(index). */
static __always_inline __u64 warrant_hop_mac(__u64 k0, __u64 k1, __u64 prev, __u32 tag,
					     __u32 index)
{
	WARRANT_SIP_INIT(k0, k1);
	WARRANT_SIP_BLOCK(prev);
	WARRANT_SIP_BLOCK((__u64)tag | ((__u64)(index & 0xFF) << 32) |
			  ((__u64)WARRANT_HOP_MAC_INPUT_LEN << 56));
	v2 ^= 0xff;
	WARRANT_SIP_FINAL4;
	return v0 ^ v1 ^ v2 ^ v3;
}

#endif
