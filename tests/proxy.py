"""A TCP proxy between a worker and RabbitMQ that a test can cut."""

import asyncio
import contextlib


class TcpProxy:
    """Forwards 127.0.0.1:<port> to the broker; ``cut()`` drops every connection."""

    def __init__(self, upstream_host: str = "127.0.0.1", upstream_port: int = 5672) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._pumps: set[asyncio.Task[None]] = set()
        self.connections = 0
        self.black_holed = False
        # While True, new connections are dropped at once: the broker seems gone.
        self.refusing = False

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.refusing:
            writer.transport.abort()
            return
        self.connections += 1
        up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        self._writers.update((writer, up_writer))
        for source, sink in ((reader, up_writer), (up_reader, writer)):
            pump = asyncio.create_task(self._pump(source, sink))
            self._pumps.add(pump)
            pump.add_done_callback(self._pumps.discard)

    async def _pump(self, source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            while data := await source.read(65536):
                if self.black_holed:
                    continue  # swallowed: both ends wait for answers that never come
                sink.write(data)
                await sink.drain()
        sink.close()

    def black_hole(self) -> None:
        """Keep connections open but deliver nothing more, either way."""
        self.black_holed = True

    def cut(self) -> None:
        """Drop every open connection at once, as a network failure would."""
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    async def close(self) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for pump in list(self._pumps):
            pump.cancel()
        await asyncio.gather(*self._pumps, return_exceptions=True)
