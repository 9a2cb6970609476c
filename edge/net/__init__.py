"""The firmware's network clients: its own MQTT 3.1.1 client and Modbus master (MicroPython)."""
