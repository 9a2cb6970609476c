"""Gateways: processes beside the controller that speak a foreign device protocol on one
side and act as the portwatch MQTT agent of each such device on the other (``jtt808``:
China's JT/T 808 vehicle trackers over TCP)."""
