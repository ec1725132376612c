"""Every table's metadata, gathered for Alembic's autogenerate."""

from journeyman.engine.access.sessions import metadata as session_metadata
from journeyman.engine.activities.instances import metadata as journey_metadata
from journeyman.engine.analytics.schema import metadata as analytics_metadata
from journeyman.engine.delivery.schema import metadata as delivery_metadata
from journeyman.engine.ingest.schema import metadata as ingest_metadata
from journeyman.engine.segments.schema import metadata as segment_metadata
from journeyman.event_store.schema import metadata as store_metadata

target_metadata = [
    store_metadata,
    ingest_metadata,
    journey_metadata,
    delivery_metadata,
    segment_metadata,
    session_metadata,
    analytics_metadata,
]
