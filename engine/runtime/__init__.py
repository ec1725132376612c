"""Running Journeyman: the database and Temporal connections, migrations on start, the
embedded stack and `journeyman up`, the worker and its start-up checks, metrics and logs."""
