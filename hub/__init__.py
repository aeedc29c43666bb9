"""City telemetry hub: MQTT ingest, storage, rules, alarms and 数字城管 cases for street assets."""

from hub import native

# Before any other module of the hub is imported: the compiled ones load in their place.
native.install()
