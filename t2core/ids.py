"""Every run and artifact id, from one canonical encoding of what it is (house style 4).

An id is the sha256 of the canonical JSON (sorted keys, no whitespace, tuples as lists) of a payload
that starts with what kind of thing it names and holds everything that changes the result: the
weights hash, the identity fields of the request's config, the task version, the data files'
sha256s, the engine (and its version) that computes it. A config says which of its fields are not
part of what it is by marking them `field(metadata={"identity": False})` (memory knobs that leave
the result unchanged); `identity_fields` leaves those out, recursively. A setting added after runs were
stored says which value reproduces the behaviour from before it existed with `metadata={"legacy": value}`:
it is left out of the id while it holds that value, so those runs keep their ids, and any other value
changes the id. Nothing else hashes its own
payload: the id functions of training, evaluation, search, transfer, adapters, SVD and experts all
call `content_id`, so one encoding decides them all.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from t2core.hashing import canonical_json, sha256_bytes

RUN_ID_LENGTH = 24  # hex characters of a run or adapter id


def content_id(payload: Any, length: int = RUN_ID_LENGTH) -> str:
    """The id of `payload`: the first `length` hex characters of sha256(canonical JSON)."""
    return sha256_bytes(canonical_json(payload).encode())[:length]


def identity_fields(cfg: Any) -> Any:
    """`cfg` as it determines a result: a dataclass becomes a dict of its fields (nested dataclasses too),
    those marked identity=False left out, and those marked `legacy` left out while they hold that value;
    anything else is returned as it is."""
    if not dataclasses.is_dataclass(cfg) or isinstance(cfg, type):
        return cfg
    full = dataclasses.asdict(cfg)
    return {f.name: identity_fields(v) if dataclasses.is_dataclass(v := getattr(cfg, f.name)) else full[f.name]
            for f in dataclasses.fields(cfg) if f.metadata.get("identity", True) is not False
            and not ("legacy" in f.metadata and full[f.name] == f.metadata["legacy"])}
