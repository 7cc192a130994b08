"""bpf/mac.h's SipHash, compiled for BPF and run in the kernel, against published vectors.

The datapath computes SipHash-2-4 over exactly two input lengths: the 64-bit output
over 13 bytes (hop records, bpf/hop.h) and the 128-bit output over 20 bytes (the DATA
header MAC).  bpf/siphash_test.c exposes those two functions to BPF_PROG_TEST_RUN.
Checked against the SipHash reference implementation's vectors (key 00..0f, message
00..n-1: vectors_sip64[13] and vectors_sip128[20] of github.com/veorq/SipHash
vectors.h, copied below as hex) and against libsodium (PyNaCl) on seeded random keys
and messages.  Needs root and bpf(); skipped otherwise, but a build or load failure
under root fails.
"""

from __future__ import annotations

import os
import random

import nacl.bindings
import pytest

pytestmark = pytest.mark.root

# SipHash reference vectors (veorq/SipHash vectors.h), key 00..0f, message 00..n-1
PUBLISHED_SIP64_13 = "903d84c02756ea14"
PUBLISHED_SIP128_20 = "9e25fc833f2290733e9344a5e83839eb"
KEY = bytes(range(16))
HOP, HEADER = 0, 1


@pytest.fixture(scope="module")
def siphash():  # type: ignore[no-untyped-def]
    if os.geteuid() != 0:
        pytest.skip("needs root: loads an eBPF program (CI runs as root)")
    from warrant.datapath import libbpf
    from warrant.datapath.build import build

    libbpf.silence()
    obj = libbpf.BpfObject(str(build("siphash_test")))
    obj.load()  # under root a verifier or build failure fails the test
    runner = libbpf.TestRunner(obj.program_fd("siphash_test"), 64, data_out=True)

    def run(which: int, key: bytes, message: bytes) -> bytes:
        buf = bytes([which]) + bytes(7) + key + message.ljust(20, b"\0")
        retval, _ = runner.run(buf)
        assert retval == 2, f"program returned {retval}"  # XDP_PASS
        return runner.output()[: 8 if which == HOP else 16]

    yield run
    obj.close()


def test_published_vectors_through_the_bpf_code(siphash) -> None:  # type: ignore[no-untyped-def]
    assert siphash(HOP, KEY, bytes(range(13))).hex() == PUBLISHED_SIP64_13
    assert siphash(HEADER, KEY, bytes(range(20))).hex() == PUBLISHED_SIP128_20
    # and libsodium agrees with the published values
    assert nacl.bindings.crypto_shorthash_siphash24(bytes(range(13)), KEY).hex() == (
        PUBLISHED_SIP64_13
    )
    assert nacl.bindings.crypto_shorthash_siphashx24(bytes(range(20)), KEY).hex() == (
        PUBLISHED_SIP128_20
    )


def test_random_keys_and_messages_match_libsodium(siphash) -> None:  # type: ignore[no-untyped-def]
    rng = random.Random(20261202)
    for _ in range(500):
        key, m13, m20 = rng.randbytes(16), rng.randbytes(13), rng.randbytes(20)
        assert siphash(HOP, key, m13) == nacl.bindings.crypto_shorthash_siphash24(m13, key)
        assert siphash(HEADER, key, m20) == nacl.bindings.crypto_shorthash_siphashx24(m20, key)


def test_a_wrong_tag_is_caught(siphash) -> None:  # type: ignore[no-untyped-def]
    """The comparison can fail: one flipped message bit changes the BPF tag."""
    m = bytearray(range(20))
    m[19] ^= 1
    assert siphash(HEADER, KEY, bytes(m)).hex() != PUBLISHED_SIP128_20
    m[12] ^= 1
    assert siphash(HOP, KEY, bytes(m[:13])).hex() != PUBLISHED_SIP64_13
