"""Credentials and TLS of every MQTT client the hub opens, from the broker URL."""

import paho.mqtt.client as paho

from hub.settings import MqttEndpoint


def prepare_client(client: paho.Client, endpoint: MqttEndpoint) -> None:
    """Set the URL's user and password, and TLS for mqtts:// (a private CA via `?cafile=`)."""
    if endpoint.username:
        client.username_pw_set(endpoint.username, endpoint.password)
    if endpoint.tls:
        client.tls_set(ca_certs=endpoint.ca_file)
