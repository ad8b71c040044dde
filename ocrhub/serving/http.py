"""uvicorn's HTTP/1.1 protocol (h11) with what it lacks to face the network directly.

uvicorn has no deadline for receiving a request's head: ``timeout_keep_alive`` runs only between
requests and any byte resets it, so a client that connects and says nothing, or sends a header line
every few seconds, holds its connection forever. ``GuardedH11Protocol`` gives a request's head
``head_timeout`` seconds from the connection's opening, or from its first byte on a kept-alive
connection (idle kept-alive connections are uvicorn's ``timeout_keep_alive``'s); a connection whose
head is not in by then is closed and counted. The body has its own deadline, kept by the app (``front.read_body``).

It also counts open connections, so the app can answer a request over ``max_connections`` with the
usual envelope (uvicorn's own ``limit_concurrency`` answers in plain text). No HTTP is parsed here.
"""

from __future__ import annotations

import asyncio

from uvicorn.protocols.http.h11_impl import H11Protocol

from ocrhub.serving import metrics


class Connections:
    """Open connections of the server; the front reads ``count``."""

    def __init__(self):
        self.count = 0
        metrics.OPEN_CONNECTIONS.set_function(lambda: self.count)


class GuardedH11Protocol(H11Protocol):
    head_timeout: float  # both set by guarded_protocol()
    counter: Connections  # not "connections": uvicorn keeps its own set under that name
    _head_deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        self.counter.count += 1
        self._arm_head_deadline()

    def connection_lost(self, exc) -> None:
        self.counter.count -= 1
        self._disarm_head_deadline()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._head_deadline is None and self._waiting_for_head():
            self._arm_head_deadline()  # the first byte of a request on a kept-alive connection
        super().data_received(data)
        if not self._waiting_for_head():
            self._disarm_head_deadline()  # the head is in; the body has its own deadline

    def _waiting_for_head(self) -> bool:
        return self.cycle is None or self.cycle.response_complete

    def _arm_head_deadline(self) -> None:
        self._disarm_head_deadline()
        if self.head_timeout and not self.transport.is_closing():
            self._head_deadline = self.loop.call_later(self.head_timeout, self._head_deadline_passed)

    def _disarm_head_deadline(self) -> None:
        if self._head_deadline is not None:
            self._head_deadline.cancel()
            self._head_deadline = None

    def _head_deadline_passed(self) -> None:
        self._head_deadline = None
        if self._waiting_for_head() and not self.transport.is_closing():
            metrics.DROPPED.labels("head").inc()
            self.transport.close()


def guarded_protocol(head_timeout: float, connections: Connections) -> type[GuardedH11Protocol]:
    """The protocol class for ``uvicorn.Config(http=...)``, with this server's deadline and counter."""
    return type("GuardedH11Protocol", (GuardedH11Protocol,), {"head_timeout": head_timeout, "counter": connections})
