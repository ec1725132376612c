"""Every table's metadata, gathered for Alembic's autogenerate."""

from event_store.schema import metadata as store_metadata

target_metadata = [store_metadata]
