"""The fast payload path decodes to exactly what the hub's models produce."""

import orjson

from hub.devices.kinds import Kind
from hub.devices.payloads import PAYLOAD_MODELS
from simulators.city import City
from simulators.encoding import encode_fast, encode_with_model
from tests.simulators.conftest import run_city


def test_fast_and_model_paths_agree_for_every_kind(small_city: City) -> None:
    result = run_city(small_city, hours=14)
    checked: dict[str, int] = {}
    for message in result.publisher.messages:
        if message.topic.endswith("/status"):
            continue
        kind = Kind(message.topic.split("/")[1])
        body = orjson.loads(message.payload)
        assert encode_fast(body) == message.payload
        reference = orjson.loads(encode_with_model(kind, body))
        model = PAYLOAD_MODELS[kind]
        items = body if isinstance(body, list) else [body]
        fast = [
            model.model_validate_json(orjson.dumps(item)).model_dump(mode="json", exclude_none=True)
            for item in items
        ]
        assert fast == (reference if isinstance(reference, list) else [reference])
        checked[kind.value] = checked.get(kind.value, 0) + 1
        if all(checked.get(k.value, 0) >= 50 for k in Kind):
            break
    assert set(checked) == {k.value for k in Kind}


def test_validating_run_publishes_model_serialised_payloads(small_city: City) -> None:
    from simulators.engine import Simulation
    from simulators.publisher import MemoryPublisher
    from tests.simulators.conftest import START_MS

    publisher = MemoryPublisher()
    sim = Simulation(small_city, publisher, start_ms=START_MS, validate=True)
    sim.advance_to(START_MS + 600_000)
    sample = next(
        m
        for m in publisher.messages
        if m.topic.startswith("city/lighting/") and m.topic.endswith("/telemetry")
    )
    body = orjson.loads(sample.payload)
    assert isinstance(body["ts"], str)
    assert body["ts"].endswith("Z")
