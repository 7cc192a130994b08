// SPDX-License-Identifier: Apache-2.0
/* baseline_pass.c: the floor of any XDP program, for bench/datapath.py. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

SEC("xdp")
int baseline_pass(struct xdp_md *ctx)
{
	return XDP_PASS;
}
