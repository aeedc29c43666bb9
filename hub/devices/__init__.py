"""Device kinds, wire payload models and message decoding: the pure core of the wire contract."""
