"""Publishing through a real Mosquitto started by the session fixture."""

import threading
import time

import pytest

from simulators.mqtt import PahoPublisher, parse_mqtt_url


def test_mqtt_urls_parse() -> None:
    address = parse_mqtt_url("mqtt://user:pw@broker.example:1884")
    assert (address.host, address.port, address.username, address.password) == (
        "broker.example",
        1884,
        "user",
        "pw",
    )
    assert parse_mqtt_url("mqtt://127.0.0.1").port == 1883
    with pytest.raises(ValueError, match="mqtt://"):
        parse_mqtt_url("http://x")


@pytest.mark.integration
def test_messages_arrive_at_qos1_with_retained_status(mqtt_url: str) -> None:
    import paho.mqtt.client as paho
    from paho.mqtt.enums import CallbackAPIVersion

    address = parse_mqtt_url(mqtt_url)
    root = f"simtest{int(time.time() * 1000)}"
    received: list[str] = []
    subscribed = threading.Event()
    sub = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"{root}-sub")
    sub.on_message = lambda c, u, m: received.append(m.topic)
    sub.on_subscribe = lambda *args: subscribed.set()
    sub.connect(address.host, address.port)
    sub.subscribe(f"{root}/#", qos=1)
    sub.loop_start()
    try:
        assert subscribed.wait(5)
        publisher = PahoPublisher(mqtt_url, client_id=f"{root}-pub")
        publisher.publish(f"{root}/lighting/LMP-1/status", b"online", retain=True)
        for i in range(500):
            publisher.publish(f"{root}/lighting/LMP-1/telemetry", b'{"ts":%d}' % i)
        assert publisher.flush(10.0)
        publisher.close()
        deadline = time.monotonic() + 5
        while len(received) < 501 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(received) == 501
    finally:
        sub.publish(f"{root}/lighting/LMP-1/status", b"", retain=True)
        sub.loop_stop()
        sub.disconnect()
