import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class FlowExtension(_message.Message):
    __slots__ = ("reason", "reason_code", "reason_desc", "detail", "kind", "bytes", "session_id", "seq", "authority")
    REASON_FIELD_NUMBER: _ClassVar[int]
    REASON_CODE_FIELD_NUMBER: _ClassVar[int]
    REASON_DESC_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    BYTES_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    AUTHORITY_FIELD_NUMBER: _ClassVar[int]
    reason: str
    reason_code: int
    reason_desc: str
    detail: str
    kind: str
    bytes: int
    session_id: str
    seq: int
    authority: Authority
    def __init__(self, reason: _Optional[str] = ..., reason_code: _Optional[int] = ..., reason_desc: _Optional[str] = ..., detail: _Optional[str] = ..., kind: _Optional[str] = ..., bytes: _Optional[int] = ..., session_id: _Optional[str] = ..., seq: _Optional[int] = ..., authority: _Optional[_Union[Authority, _Mapping]] = ...) -> None: ...

class Authority(_message.Message):
    __slots__ = ("scope", "issuer", "holder", "operation", "service", "port", "chain_digest", "depth", "hops", "expires", "rule", "session_id", "reason", "link_ids", "rights")
    SCOPE_FIELD_NUMBER: _ClassVar[int]
    ISSUER_FIELD_NUMBER: _ClassVar[int]
    HOLDER_FIELD_NUMBER: _ClassVar[int]
    OPERATION_FIELD_NUMBER: _ClassVar[int]
    SERVICE_FIELD_NUMBER: _ClassVar[int]
    PORT_FIELD_NUMBER: _ClassVar[int]
    CHAIN_DIGEST_FIELD_NUMBER: _ClassVar[int]
    DEPTH_FIELD_NUMBER: _ClassVar[int]
    HOPS_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_FIELD_NUMBER: _ClassVar[int]
    RULE_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    LINK_IDS_FIELD_NUMBER: _ClassVar[int]
    RIGHTS_FIELD_NUMBER: _ClassVar[int]
    scope: str
    issuer: str
    holder: str
    operation: str
    service: str
    port: int
    chain_digest: str
    depth: int
    hops: _containers.RepeatedCompositeFieldContainer[Hop]
    expires: _timestamp_pb2.Timestamp
    rule: str
    session_id: str
    reason: str
    link_ids: _containers.RepeatedScalarFieldContainer[str]
    rights: Rights
    def __init__(self, scope: _Optional[str] = ..., issuer: _Optional[str] = ..., holder: _Optional[str] = ..., operation: _Optional[str] = ..., service: _Optional[str] = ..., port: _Optional[int] = ..., chain_digest: _Optional[str] = ..., depth: _Optional[int] = ..., hops: _Optional[_Iterable[_Union[Hop, _Mapping]]] = ..., expires: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., rule: _Optional[str] = ..., session_id: _Optional[str] = ..., reason: _Optional[str] = ..., link_ids: _Optional[_Iterable[str]] = ..., rights: _Optional[_Union[Rights, _Mapping]] = ...) -> None: ...

class Rights(_message.Message):
    __slots__ = ("operations", "destinations", "not_before", "expires", "max_hops", "any_domain", "allowed_domains", "required_domains", "forbidden_domains", "rate")
    OPERATIONS_FIELD_NUMBER: _ClassVar[int]
    DESTINATIONS_FIELD_NUMBER: _ClassVar[int]
    NOT_BEFORE_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_FIELD_NUMBER: _ClassVar[int]
    MAX_HOPS_FIELD_NUMBER: _ClassVar[int]
    ANY_DOMAIN_FIELD_NUMBER: _ClassVar[int]
    ALLOWED_DOMAINS_FIELD_NUMBER: _ClassVar[int]
    REQUIRED_DOMAINS_FIELD_NUMBER: _ClassVar[int]
    FORBIDDEN_DOMAINS_FIELD_NUMBER: _ClassVar[int]
    RATE_FIELD_NUMBER: _ClassVar[int]
    operations: _containers.RepeatedScalarFieldContainer[str]
    destinations: _containers.RepeatedScalarFieldContainer[str]
    not_before: _timestamp_pb2.Timestamp
    expires: _timestamp_pb2.Timestamp
    max_hops: int
    any_domain: bool
    allowed_domains: _containers.RepeatedScalarFieldContainer[str]
    required_domains: _containers.RepeatedScalarFieldContainer[str]
    forbidden_domains: _containers.RepeatedScalarFieldContainer[str]
    rate: int
    def __init__(self, operations: _Optional[_Iterable[str]] = ..., destinations: _Optional[_Iterable[str]] = ..., not_before: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., expires: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., max_hops: _Optional[int] = ..., any_domain: _Optional[bool] = ..., allowed_domains: _Optional[_Iterable[str]] = ..., required_domains: _Optional[_Iterable[str]] = ..., forbidden_domains: _Optional[_Iterable[str]] = ..., rate: _Optional[int] = ...) -> None: ...

class Hop(_message.Message):
    __slots__ = ("index", "domain", "relay")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    DOMAIN_FIELD_NUMBER: _ClassVar[int]
    RELAY_FIELD_NUMBER: _ClassVar[int]
    index: int
    domain: str
    relay: str
    def __init__(self, index: _Optional[int] = ..., domain: _Optional[str] = ..., relay: _Optional[str] = ...) -> None: ...
