"""Payload bytes: a fast path (dict + orjson) and the reference path through hub.devices models.

The fast path is what the simulators publish at scale; tests check that both paths decode
to the same payload, and `validate=True` on a simulation uses the reference path throughout.
"""

from typing import Any

import orjson

from hub.devices.kinds import Kind
from hub.devices.payloads import PAYLOAD_MODELS

Reading = dict[str, Any]


def encode_fast(body: Reading | list[Reading]) -> bytes:
    """Serialise a reading (or a batch of one device's readings) as built by the simulators."""
    return orjson.dumps(body)


def encode_with_model(kind: Kind, body: Reading | list[Reading]) -> bytes:
    """Serialise through the hub's payload model: validate, dump as JSON without nulls."""
    model = PAYLOAD_MODELS[kind]
    if isinstance(body, list):
        return orjson.dumps(
            [model.model_validate(item).model_dump(mode="json", exclude_none=True) for item in body]
        )
    return orjson.dumps(model.model_validate(body).model_dump(mode="json", exclude_none=True))
