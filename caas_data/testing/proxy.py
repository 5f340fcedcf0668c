"""`FaultProxy`: a loopback TCP proxy between the layer and its server that breaks on demand.

Fault suites put it in front of the test server and point the layer at `proxy.uri(...)`.
It forwards MongoDB wire messages whole (it reads the 4-byte length of each one), so a fault
can pick its moment by the command a request carries:

```python
async with FaultProxy("127.0.0.1", server_port) as proxy:
    layer = await caas_data.connect(proxy.uri(server_uri))
    proxy.cut_on(b"commitTransaction", after_reply=True)  # applied, answer lost half-way
    proxy.delay = 0.2                                     # every message, both ways
    proxy.blackhole(True)                                 # swallow everything: timeouts
    proxy.drop_connections()                              # reset every open connection
```

Faults are per connection: `proxy.links` lists the open ones, each with its own `delay`,
`blackholed` and `cut()`; the proxy-wide settings apply to every link. It listens only on
127.0.0.1, forwards only to a loopback address, and is bounded: at most `max_connections`
links (more are refused) and at most `max_message_bytes` per message (a larger one cuts the
link), so a broken test cannot make it grow without limit.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import struct
from dataclasses import dataclass
from types import TracebackType
from typing import Self
from urllib.parse import urlsplit, urlunsplit

from caas_data.errors import ConfigurationError

__all__ = ["FaultProxy", "ProxyLink"]

_HEADER = struct.Struct("<i")
_MAX_MESSAGE_BYTES = 48 * 1024 * 1024  # MongoDB's own limit on one wire message


def _require_loopback(host: str) -> None:
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = host == "localhost"
    if not loopback:
        raise ConfigurationError(f"FaultProxy forwards only to loopback addresses, not {host!r}")


@dataclass(slots=True)
class _CutRule:
    """Cut the link that sends a request containing `marker` (`remaining` more times)."""

    marker: bytes
    after_reply: bool
    remaining: int


class ProxyLink:
    """One client connection and its server connection, with its own faults."""

    def __init__(
        self,
        proxy: FaultProxy,
        client: tuple[asyncio.StreamReader, asyncio.StreamWriter],
        server: tuple[asyncio.StreamReader, asyncio.StreamWriter],
    ) -> None:
        self._proxy = proxy
        self._client_reader, self._client_writer = client
        self._server_reader, self._server_writer = server
        self.delay = 0.0
        """Seconds added before each message this link forwards (both ways)."""
        self.blackholed = False
        """While True, messages are read and discarded: the peer waits for an answer."""
        self.requests = 0
        """Requests forwarded so far."""
        self._cut_reply = False
        self._tasks: list[asyncio.Task[None]] = []
        self.closed = asyncio.Event()

    def cut(self) -> None:
        """Close both sides at once (the client sees a reset connection)."""
        for writer in (self._client_writer, self._server_writer):
            transport = writer.transport
            with contextlib.suppress(Exception):
                transport.abort()
        self.closed.set()

    def _start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._pump(upstream=True)),
            asyncio.create_task(self._pump(upstream=False)),
        ]

    async def _read_message(self, reader: asyncio.StreamReader) -> bytes:
        header = await reader.readexactly(_HEADER.size)
        (length,) = _HEADER.unpack(header)
        if not _HEADER.size <= length <= self._proxy.max_message_bytes:
            raise ConnectionError(f"wire message of {length} bytes: cutting the link")
        return header + await reader.readexactly(length - _HEADER.size)

    async def _pump(self, *, upstream: bool) -> None:
        reader = self._client_reader if upstream else self._server_reader
        writer = self._server_writer if upstream else self._client_writer
        try:
            while not self.closed.is_set():
                message = await self._read_message(reader)
                delay = max(self.delay, self._proxy.delay)
                if delay:
                    await asyncio.sleep(delay)
                if self.blackholed or self._proxy.blackholed:
                    continue
                if upstream:
                    self.requests += 1
                    rule = self._proxy._match(message)
                    if rule is not None and not rule.after_reply:
                        self.cut()  # the server never sees the request
                        return
                    if rule is not None:
                        self._cut_reply = True
                elif self._cut_reply:
                    writer.write(message[: len(message) // 2])
                    with contextlib.suppress(ConnectionError):
                        await writer.drain()
                    self.cut()  # the server ran the request; its answer is lost half-way
                    return
                writer.write(message)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, OSError):
            pass
        finally:
            self.cut()
            self._proxy._forget(self)


class FaultProxy:
    """A loopback TCP proxy in front of one server; see the module docstring."""

    def __init__(
        self,
        upstream_host: str,
        upstream_port: int,
        *,
        max_connections: int = 256,
        max_message_bytes: int = _MAX_MESSAGE_BYTES,
    ) -> None:
        _require_loopback(upstream_host)
        self.upstream = (upstream_host, upstream_port)
        self.max_connections = max_connections
        self.max_message_bytes = max_message_bytes
        self.delay = 0.0
        """Seconds added before every message on every link."""
        self.blackholed = False
        self.refusing = False
        self.links: list[ProxyLink] = []
        self.accepted = 0
        self._rules: list[_CutRule] = []
        self._server: asyncio.Server | None = None

    # -- lifecycle -----------------------------------------------------------------------

    async def start(self) -> Self:
        """Listen on a free loopback port."""
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        return self

    @property
    def port(self) -> int:
        """The port the proxy listens on."""
        if self._server is None:
            raise ConfigurationError("FaultProxy.start() first")
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    def uri(self, server_uri: str) -> str:
        """`server_uri` with its host and port replaced by the proxy's."""
        parts = urlsplit(server_uri)
        netloc = parts.netloc.rsplit("@", 1)
        host = f"127.0.0.1:{self.port}"
        netloc[-1] = host
        return urlunsplit(parts._replace(netloc="@".join(netloc)))

    async def close(self) -> None:
        """Stop listening and cut every link."""
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()
            self._server = None
        self.drop_connections()

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # -- faults --------------------------------------------------------------------------

    def drop_connections(self) -> int:
        """Reset every open link now; returns how many there were."""
        links = list(self.links)
        for link in links:
            link.cut()
        return len(links)

    def blackhole(self, on: bool = True) -> None:
        """Swallow every message (open links and new ones) until switched off."""
        self.blackholed = on

    def refuse(self, on: bool = True) -> None:
        """Close new connections as soon as they arrive (a server that is down)."""
        self.refusing = on

    def cut_on(self, marker: bytes, *, after_reply: bool, times: int = 1) -> None:
        """Cut the link of the next `times` requests whose bytes contain `marker`.

        `after_reply=False`: the request never reaches the server. `after_reply=True`: the
        server runs it and half of its reply reaches the client (cut mid-reply).
        """
        self._rules.append(_CutRule(marker, after_reply, times))

    def heal(self) -> None:
        """Clear every proxy-wide fault (links keep their own settings)."""
        self.delay = 0.0
        self.blackholed = False
        self.refusing = False
        self._rules.clear()

    def _match(self, message: bytes) -> _CutRule | None:
        for rule in self._rules:
            if rule.remaining > 0 and rule.marker in message:
                rule.remaining -= 1
                if rule.remaining == 0:
                    self._rules.remove(rule)
                return rule
        return None

    # -- links ---------------------------------------------------------------------------

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.refusing or len(self.links) >= self.max_connections:
            writer.transport.abort()
            return
        try:
            server = await asyncio.wait_for(asyncio.open_connection(*self.upstream), 5)
        except (OSError, TimeoutError):
            writer.transport.abort()  # the server is down: so is the proxy's answer
            return
        self.accepted += 1
        link = ProxyLink(self, (reader, writer), server)
        self.links.append(link)
        link._start()

    def _forget(self, link: ProxyLink) -> None:
        with contextlib.suppress(ValueError):
            self.links.remove(link)
