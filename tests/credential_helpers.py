"""What the credential tests share: a trust store from keys, and forged links."""

from __future__ import annotations

import nacl.signing

from warrant.core.anchors import Anchor, TrustStore
from warrant.core.credential import Credential, Link, encode_body, signed_message
from warrant.core.rights import Grant


def trust(*entries: tuple[str, nacl.signing.SigningKey]) -> TrustStore:
    """A trust store with one anchor per (scope, key)."""
    store = TrustStore()
    for scope, k in entries:
        store.add(Anchor(scope, bytes(k.verify_key)))
    return store


def forge_link(
    parent: Credential, signer: nacl.signing.SigningKey, holder: bytes, grant: Grant
) -> Credential:
    """Append a link signed by `signer` exactly as `delegate` would, but without its checks
    (narrowing, signer is the parent's holder)."""
    body = encode_body(None, None, holder, grant)
    sig = signer.sign(signed_message(parent.chain_digest, body)).signature
    return Credential((*parent.links, Link.decode(body, sig, root=False)))
