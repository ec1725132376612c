"""Ingestion: the event models and their checks, what the store can hold, the ingestor
(identity, sealing, append), file imports, cart state and Segment's names; and the answer
format the Python client reads too."""
