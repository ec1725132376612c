"""Activities: the only road from a journey to a side effect (journey records, profile
reads, segment refreshes, the outbox). Their wire types are `journeyman.engine.contracts`."""
