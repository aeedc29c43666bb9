"""MQTT and Modbus I/O: the only importers of paho and pymodbus."""
