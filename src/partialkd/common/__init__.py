"""Files, seeds and devices: what every layer above uses."""
