"""`journeyman.channels.testing` (the harness) and its protocol peers import without pytest:
they are runtime code a plugin can use outside a test run. Only `ChannelContract`, the pytest
suite itself, needs pytest."""

from __future__ import annotations

import subprocess
import sys

CODE = """
import sys
sys.modules["pytest"] = None  # importing pytest now fails
from journeyman.channels.testing import ChannelHarness
from journeyman.channels.testing.peers import HttpPeer, TwilioPeer, WebhookPeer
assert "pytest" not in [m for m in sys.modules if sys.modules[m] is not None]
try:
    from journeyman.channels.testing import ChannelContract
except ImportError:
    print("contract needs pytest")
"""


def test_the_harness_and_peers_import_without_pytest() -> None:
    done = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "contract needs pytest"
