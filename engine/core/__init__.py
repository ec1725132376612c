"""Configuration: every `JOURNEYMAN_*` setting, read once per process. It imports nothing
of the rest of the engine, so every room can read it."""
