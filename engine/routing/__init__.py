"""Routing: which journeys an event starts or signals (the dispatcher), and which members
are due for the inactivity journeys (due-at rows, the scan, its schedule)."""
