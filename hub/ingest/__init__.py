"""MQTT (and later Modbus) I/O: the only importers of paho, aiomqtt and pymodbus."""
