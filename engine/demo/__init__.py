"""The demo: a synthetic shop, its members' behaviour model, and the run that plays it
through the real stack. Not part of the engine's core: nothing else imports it."""
