"""The naive baseline: one INSERT and one commit per MQTT message, no validation model."""

import argparse
import json
import sys
from datetime import UTC, datetime

import paho.mqtt.client as paho
import psycopg
from paho.mqtt.enums import CallbackAPIVersion

from hub.settings import MqttEndpoint


def main() -> int:
    """CLI: naive_subscriber.py MQTT_URL DATABASE_URL ROOT CLIENT_ID."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("mqtt_url")
    parser.add_argument("database_url")
    parser.add_argument("root")
    parser.add_argument("client_id")
    args = parser.parse_args()
    conn = psycopg.connect(args.database_url)
    endpoint = MqttEndpoint(args.mqtt_url)

    def on_message(client: paho.Client, userdata: object, msg: paho.MQTTMessage) -> None:
        data = json.loads(msg.payload)
        device_id = msg.topic.split("/")[2]
        conn.execute(
            "INSERT INTO naive_readings (device_id, ts, received_at, body) VALUES (%s, %s, %s, %s)"
            " ON CONFLICT DO NOTHING",
            (
                device_id,
                datetime.fromtimestamp(data["ts"] / 1000, UTC),
                datetime.now(UTC),
                msg.payload.decode(),
            ),
        )
        conn.commit()

    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=args.client_id, clean_session=False)
    client.on_message = on_message
    client.on_connect = lambda c, u, f, r, p: c.subscribe(f"{args.root}/#", qos=1)
    client.connect(endpoint.host, endpoint.port)
    client.loop_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
