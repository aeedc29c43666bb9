#!/bin/sh
# Write the broker's two password files, then run it (mosquitto.conf says which listener reads
# which). Passwords come from the environment, never from the repository.
#
#   platform.passwd  the hub and the JT/T 808 gateway; rebuilt at every start from
#                    HUB_MQTT_PASSWORD and JT808_MQTT_PASSWORD.
#   devices.passwd   device accounts (user name = device id), kept in the data volume and
#                    added by operators with mosquitto_passwd (docs/security.md), plus the
#                    simulators' account, set from SIMULATOR_MQTT_PASSWORD at every start.
set -eu
data=/mosquitto/data
platform="$data/platform.passwd"
devices="$data/devices.passwd"
hub_client_id="${HUB_MQTT_CLIENT_ID:-city-hub}"
jt808_client_id="${HUB_JT808_CLIENT_ID:-jt808-gateway}"

: > "$platform"
mosquitto_passwd -b "$platform" hub "$HUB_MQTT_PASSWORD"
mosquitto_passwd -b "$platform" jt808 "${JT808_MQTT_PASSWORD:?set JT808_MQTT_PASSWORD}"
[ -f "$devices" ] || : > "$devices"
mosquitto_passwd -b "$devices" simulator "$SIMULATOR_MQTT_PASSWORD"
# The single password file of earlier versions (hub and simulator only) is not read any more.
rm -f "$data/passwd"

# On the device listener a client id is the user name, and client ids are one namespace across
# listeners: a device account named like the hub's client ids (or the gateway's) would take
# that session.
clash=$(awk -F: -v id="$hub_client_id" -v gw="$jt808_client_id" \
    '$1 == id || index($1, id "-") == 1 || $1 == gw { print $1 }' "$devices")
if [ -n "$clash" ]; then
    echo "entrypoint: device accounts named like the hub's MQTT client ids" \
        "($hub_client_id, $hub_client_id-*, $jt808_client_id): $clash" >&2
    echo "entrypoint: remove them from $devices (mosquitto_passwd -D); broker not started" >&2
    exit 1
fi

chmod 0600 "$platform" "$devices"
chown mosquitto:mosquitto "$platform" "$devices" 2>/dev/null || true
exec mosquitto -c /mosquitto/config/mosquitto.conf
