"""City telemetry hub: MQTT ingest, storage, rules, alarms and 数字城管 cases for street assets."""
