"""Journey analytics: the incremental funnel and channel projection, its schema, the
statistics of experiments, and the reports read from them."""
