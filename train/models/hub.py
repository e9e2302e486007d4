"""Is the Hugging Face Hub reachable? Asked once, quickly, so no network fails in seconds, not after retries."""

from __future__ import annotations

import os
import socket
from urllib.parse import urlparse

# Seconds to wait for the hub's TCP handshake before calling it unreachable (the hub clients retry for ~40 s).
HUB_PROBE_TIMEOUT = 3.0


def hub_reachable(timeout: float = HUB_PROBE_TIMEOUT) -> bool:
    """Can we open a TCP connection to the hub endpoint? One attempt."""
    from huggingface_hub import constants

    endpoint = urlparse(os.environ.get("HF_ENDPOINT") or constants.ENDPOINT)
    port = endpoint.port or (443 if endpoint.scheme == "https" else 80)
    try:
        with socket.create_connection((endpoint.hostname, port), timeout=timeout):
            return True
    except OSError:
        return False
