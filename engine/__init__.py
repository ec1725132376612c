"""The engine: ingestion, identity, projections, routing, delivery, analytics, the API
and the command line. Journey and plugin authors import from `journeyman.workflows`,
`journeyman.channels` and `journeyman.plugins`; everything here is internal."""
