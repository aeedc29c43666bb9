"""JT/T 808 gateway: truck terminals over TCP on one side, the MQTT wire contract on the other."""
