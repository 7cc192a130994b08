// SPDX-License-Identifier: Apache-2.0
/* bench_driver.c: fresh DATA packets at BPF_PROG_TEST_RUN repeat=N, for bench/datapath.py.
 *
 * BPF_PROG_TEST_RUN runs one frame `repeat` times; the second run of an admitted
 * DATA packet is a REPLAY.  This driver makes every iteration a fresh packet
 * without touching the program under test: it copies the next entry of
 * `bench_fresh` (sequence number, header MAC and hop records, precomputed by the
 * bench with the session's keys) over the frame's bytes at BENCH_FRESH_OFF and
 * tail-calls slot 0 of `bench_target`, where the bench puts the program measured:
 * the shipped warrant_xdp itself, or a baseline (then the copy is wasted work,
 * which is the point: driver -> XDP_PASS minus XDP_PASS is the driver's cost,
 * subtracted by the bench).  A missing entry or target aborts (XDP_ABORTED), and
 * the bench checks `bench_cursor` moved by exactly `repeat`.
 */
#include <linux/types.h>
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

/* Untagged Ethernet + IPv4 without options + UDP, then the DATA header's seq. */
#define BENCH_FRESH_OFF (14 + 20 + 8 + 12)
/* seq 8 + MAC 16 + four hop records of 12 = 72 bytes: enough for 4 hops */
#define BENCH_FRESH_WORDS 9
#define BENCH_ENTRIES (1 << 18)

struct bench_fresh {
	__u64 w[BENCH_FRESH_WORDS];
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, BENCH_ENTRIES);
	__type(key, __u32);
	__type(value, struct bench_fresh);
} bench_fresh SEC(".maps");

struct bench_cursor {
	__u64 next; /* index of the entry the next run copies */
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct bench_cursor);
} bench_cursor SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} bench_target SEC(".maps");

SEC("xdp")
int bench_driver(struct xdp_md *ctx)
{
	__u32 zero = 0;
	struct bench_cursor *c = bpf_map_lookup_elem(&bench_cursor, &zero);
	if (!c)
		return XDP_ABORTED;
	__u32 i = (__u32)c->next;
	struct bench_fresh *e = bpf_map_lookup_elem(&bench_fresh, &i);
	if (!e)
		return XDP_ABORTED;
	c->next = i + 1;
	__u8 *data = (__u8 *)(long)ctx->data;
	__u8 *data_end = (__u8 *)(long)ctx->data_end;
	if (data + BENCH_FRESH_OFF + sizeof(*e) > data_end)
		return XDP_ABORTED;
	__u64 *dst = (__u64 *)(data + BENCH_FRESH_OFF);
#pragma unroll
	for (int k = 0; k < BENCH_FRESH_WORDS; k++)
		dst[k] = e->w[k];
	bpf_tail_call(ctx, &bench_target, 0);
	return XDP_ABORTED; /* no target installed */
}
