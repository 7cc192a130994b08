/* reject.h: the REJECT the kernel sends for lost soft state (SPEC 6.1 steps 2-3, 3.3).
 *
 * A DATA packet whose session the kernel does not have (UNKNOWN_SESSION) or whose
 * session is over (SESSION_EXPIRED) is answered with a 16-byte REJECT, so that a
 * sender whose state was lost (reboot, eviction, expiry) opens a new session at the
 * cost of one retransmission.  The reply is built in place, without waking user
 * space:
 *
 *   Ethernet  destination <-> source (VLAN tags stay)
 *   IPv4      saddr <-> daddr, tot_len 44, TTL DP_REJECT_TTL, header checksum
 *             recomputed; version, IHL 5, TOS, id and DF are kept
 *   IPv6      saddr <-> daddr, payload length 24, hop limit DP_REJECT_TTL; version,
 *             traffic class, flow label and next header (UDP: a Warrant frame has no
 *             extension headers) are kept
 *   UDP       ports swapped, length 24; over IPv4 checksum 0 (none: RFC 768), over
 *             IPv6 the checksum computed over the pseudo-header (RFC 8200 8.1: zero is
 *             not allowed)
 *   payload   version, kind REJECT, reason, flags 0, the DATA's session id (already
 *             at bytes 4-11), retry_after_ms 0 = RejectPacket(reason, sid).encode()
 *
 * then the frame is cut after the REJECT (XDP: bpf_xdp_adjust_tail; TC:
 * bpf_skb_change_tail) and sent back out of the interface it came in on (XDP_TX;
 * TC: bpf_redirect to the ingress ifindex, egress).  The REJECT (58 bytes with
 * Ethernet; 78 over IPv6) is always smaller than the DATA it answers (at least 94;
 * 114 over IPv6): no amplification towards a spoofed source.
 *
 * Rate: a per-CPU token bucket (GCRA: one theoretical arrival time per CPU) of
 * DP_REJECT_RATE per second with a burst of DP_REJECT_BURST; beyond it the DATA is
 * dropped silently.  The verdict and reason of the DATA itself stay DROP /
 * UNKNOWN_SESSION (SESSION_EXPIRED): the reply is a side effect, counted on its own:
 * REJECTS_SENT (a verdict.h counter slot), rejects_limited (warrant_percpu).
 */
#ifndef WARRANT_REJECT_H
#define WARRANT_REJECT_H

#include <linux/types.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/udp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "warrant_constants.h"
#include "wire.h"
#include "session.h"

#define WARRANT_REJECT_INTERVAL_NS (1000000000ULL / WARRANT_DP_REJECT_RATE)
#define WARRANT_REJECT_UDP_LEN (WARRANT_UDP_HLEN + WARRANT_REJECT_LEN)
#define WARRANT_REJECT_IP_LEN (WARRANT_IPV4_HLEN + WARRANT_REJECT_UDP_LEN)
#define WARRANT_REJECT_IP6_LEN (WARRANT_IPV6_HLEN + WARRANT_REJECT_UDP_LEN)

/* Does this drop get a REJECT at all? */
static __always_inline int warrant_reject_wanted(__u8 verdict, __u8 reason)
{
	return verdict == WARRANT_VERDICT_DROP &&
	       (reason == WARRANT_REASON_UNKNOWN_SESSION ||
		reason == WARRANT_REASON_SESSION_EXPIRED);
}

/* Take a token from this CPU's bucket (GCRA; its theoretical arrival time of the next
 * REJECT is warrant_percpu's reject_tat).  now: kernel clock ns. */
static __always_inline int warrant_reject_allowed(__u64 now, struct warrant_percpu *pc)
{
	__u64 tat = pc->reject_tat;
	if (tat < now)
		tat = now;
	if (tat - now > (WARRANT_DP_REJECT_BURST - 1) * WARRANT_REJECT_INTERVAL_NS)
		return 0;
	pc->reject_tat = tat + WARRANT_REJECT_INTERVAL_NS;
	return 1;
}

static __always_inline __u16 warrant_fold(__u32 sum)
{
	sum = (sum & 0xFFFF) + (sum >> 16);
	sum = (sum & 0xFFFF) + (sum >> 16);
	return (__u16)sum;
}

/* The REJECT payload over the DATA packet's first 16 bytes: bytes 0 (version) and 4-11
 * (session id) are the DATA's own. */
static __always_inline void warrant_reject_payload(__u8 *pkt, __u8 reason)
{
	pkt[WARRANT_OFF_KIND] = WARRANT_KIND_REJECT;
	pkt[WARRANT_OFF_HOP_COUNT] = reason;
	pkt[WARRANT_OFF_FLAGS] = 0;
	*(__u32 *)(pkt + WARRANT_OFF_SESSION_ID + WARRANT_SESSION_ID_LEN) = 0; /* retry_after_ms */
}

static __always_inline void warrant_reject_udp(struct udphdr *udp)
{
	__u16 port = udp->source;
	udp->source = udp->dest;
	udp->dest = port;
	udp->len = bpf_htons(WARRANT_REJECT_UDP_LEN);
	udp->check = 0;
}

/* Rewrite the frame in place into the REJECT (everything but the cut).  Returns the
 * frame's new length, or 0 when the frame is not what the parse said (never, but
 * the verifier needs the checks). */
static __always_inline __u32 warrant_reject_rewrite(__u8 *data, __u8 *data_end,
						    struct warrant_frame *f, __u8 reason)
{
	/* An offset, not a saved pointer: the verifier must see the bounds here. */
	__u8 *l3 = data + (f->l3_off & 0x1F);
	if (data + sizeof(struct ethhdr) > data_end)
		return 0;
	if (l3 + WARRANT_REJECT_IP_LEN > data_end) /* the shorter of the two */
		return 0;
	struct ethhdr *eth = (struct ethhdr *)data;
	__u8 mac[ETH_ALEN];
	__builtin_memcpy(mac, eth->h_dest, ETH_ALEN);
	__builtin_memcpy(eth->h_dest, eth->h_source, ETH_ALEN);
	__builtin_memcpy(eth->h_source, mac, ETH_ALEN);
	__u32 sum = 0;

	if (f->ipv6) {
		if (l3 + WARRANT_REJECT_IP6_LEN > data_end)
			return 0;
		struct ipv6hdr *ip6 = (struct ipv6hdr *)l3;
		struct udphdr *udp = (struct udphdr *)(l3 + WARRANT_IPV6_HLEN);
		__u8 *pkt = l3 + WARRANT_IPV6_HLEN + WARRANT_UDP_HLEN;
		struct in6_addr addr = ip6->saddr;
		ip6->saddr = ip6->daddr;
		ip6->daddr = addr;
		ip6->payload_len = bpf_htons(WARRANT_REJECT_UDP_LEN);
		ip6->hop_limit = WARRANT_DP_REJECT_TTL;
		warrant_reject_udp(udp);
		warrant_reject_payload(pkt, reason);
		/* pseudo-header (addresses, upper-layer length, next header), then the UDP
		 * header and the REJECT: 32 + 24 bytes of 16-bit words, in network order */
		__u16 *w = (__u16 *)&ip6->saddr;
#pragma clang loop unroll(full)
		for (int i = 0; i < 16; i++)
			sum += w[i];
		w = (__u16 *)udp;
#pragma clang loop unroll(full)
		for (int i = 0; i < WARRANT_REJECT_UDP_LEN / 2; i++)
			sum += w[i];
		sum += bpf_htons(WARRANT_REJECT_UDP_LEN) + bpf_htons(IPPROTO_UDP);
		__u16 check = (__u16)~warrant_fold(sum);
		udp->check = check ? check : 0xFFFF;
		return (__u32)(l3 - data) + WARRANT_REJECT_IP6_LEN;
	}

	struct iphdr *ip = (struct iphdr *)l3;
	struct udphdr *udp = (struct udphdr *)(l3 + WARRANT_IPV4_HLEN);
	__u8 *pkt = l3 + WARRANT_IPV4_HLEN + WARRANT_UDP_HLEN;
	__u32 addr = ip->saddr;
	ip->saddr = ip->daddr;
	ip->daddr = addr;
	ip->tot_len = bpf_htons(WARRANT_REJECT_IP_LEN);
	ip->ttl = WARRANT_DP_REJECT_TTL;
	ip->check = 0;
	__u16 *w = (__u16 *)ip;
#pragma clang loop unroll(full)
	for (int i = 0; i < WARRANT_IPV4_HLEN / 2; i++)
		sum += w[i];
	ip->check = (__u16)~warrant_fold(sum);
	warrant_reject_udp(udp);
	warrant_reject_payload(pkt, reason);
	return (__u32)(l3 - data) + WARRANT_REJECT_IP_LEN;
}

#endif
