#!/bin/sh
# Build the password file from the environment (never committed), then run the broker.
set -eu
passwd=/mosquitto/data/passwd
: > "$passwd"
mosquitto_passwd -b "$passwd" hub "$HUB_MQTT_PASSWORD"
mosquitto_passwd -b "$passwd" simulator "$SIMULATOR_MQTT_PASSWORD"
chmod 0700 "$passwd"
chown mosquitto:mosquitto "$passwd" 2>/dev/null || true
exec mosquitto -c /mosquitto/config/mosquitto.conf
