"""The offline guard: no process of the service opens a connection off this host (``OCR_OFFLINE``).

PaddleHub and Paddle report usage or fetch things when they can; a service that handles people's
documents should never do so. An audit hook refuses it in every process, before any socket is made.
"""

from __future__ import annotations

import ipaddress
import sys


def _ip(host):
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def _refuse_outbound(event: str, args) -> None:
    """A connection must stay on this host; a name lookup (DNS) must not be needed."""
    if event == "socket.connect" and isinstance(args[1], tuple):
        address = _ip(args[1][0])
        if address is None or not (address.is_loopback or address.is_unspecified):
            raise PermissionError(f"ocrhub is offline (OCR_OFFLINE): refused a connection to {args[1]}")
    elif event == "socket.getaddrinfo" and args[0] not in (None, "", "localhost") and _ip(args[0]) is None:
        raise PermissionError(f"ocrhub is offline (OCR_OFFLINE): refused to resolve {args[0]}")


def refuse_outbound_connections() -> None:
    sys.addaudithook(_refuse_outbound)
