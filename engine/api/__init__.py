"""The HTTP API: `create_app()` builds it; `serve_in_background()` runs it on a free port."""

from .app import create_app
from .server import run, serve_in_background

__all__ = ["create_app", "run", "serve_in_background"]
