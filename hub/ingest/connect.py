"""Credentials and TLS of every MQTT connection the hub opens, from the broker URL."""

import socket
import ssl

import paho.mqtt.client as paho

from hub.settings import MqttEndpoint


def prepare_client(client: paho.Client, endpoint: MqttEndpoint) -> None:
    """Set the URL's user and password, and TLS for mqtts:// (a private CA via `?cafile=`)."""
    if endpoint.username:
        client.username_pw_set(endpoint.username, endpoint.password)
    if endpoint.tls:
        client.tls_set(ca_certs=endpoint.ca_file)


def open_connection(endpoint: MqttEndpoint, timeout_s: float) -> socket.socket:
    """A TCP connection to the broker, TLS-wrapped for mqtts:// with paho's checks.

    The certificate must chain to the system's CAs or the URL's `?cafile=` and name the
    host, as paho's `tls_set` requires. Small packets go out at once (no Nagle delay), as
    paho sends them.
    """
    sock = socket.create_connection((endpoint.host, endpoint.port), timeout=timeout_s)
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if endpoint.tls:
            context = ssl.create_default_context(cafile=endpoint.ca_file)
            sock = context.wrap_socket(sock, server_hostname=endpoint.host)
    except OSError:
        sock.close()
        raise
    return sock
