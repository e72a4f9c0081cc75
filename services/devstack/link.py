"""The link between clients and the embedded broker: a TCP proxy that can be cut on demand.

Run: `python -m services.devstack.link --port P --target-port K --control-port C`. It forwards
every connection on `P` to the broker on `K`. The broker advertises `P` in its metadata, so
every Kafka client of the stack (workers, tools, tests) reaches the broker through the link.

A cut (`cut_link`, or the line `cut SECONDS` on the control port) aborts every open connection
through the link and, for `SECONDS`, aborts each new one as soon as it is accepted; then the
link forwards again. Clients see what a broker outage looks like to them: connections reset,
metadata and fetch requests failing, then the broker answering again. The control port
answers `ok <open connections>` once the connections are aborted.
"""

import argparse
import asyncio
import contextlib
import signal
import socket
import time

_CHUNK = 256 * 1024


class Link:
    """Forwards connections to (`host`, `target_port`); `cut(seconds)` breaks them."""

    def __init__(self, host: str, target_port: int) -> None:
        self.host = host
        self.target_port = target_port
        self.cut_until = 0.0  # time.monotonic() before which new connections are aborted
        self.open: set[asyncio.StreamWriter] = set()

    def cut(self, seconds: float) -> int:
        """Abort every open connection and refuse new ones for `seconds`; how many were open."""
        self.cut_until = max(self.cut_until, time.monotonic() + seconds)
        writers = list(self.open)
        for writer in writers:
            writer.transport.abort()
        return len(writers) // 2

    async def serve_client(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        """Forward one client connection both ways until either side closes or a cut."""
        if time.monotonic() < self.cut_until:
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(self.host, self.target_port)
        except OSError:
            writer.transport.abort()
            return
        if time.monotonic() < self.cut_until:  # cut while connecting
            writer.transport.abort()
            up_writer.transport.abort()
            return
        self.open.update((writer, up_writer))
        try:
            pumps = [
                asyncio.create_task(_pump(reader, up_writer)),
                asyncio.create_task(_pump(up_reader, writer)),
            ]
            await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
            for pump in pumps:
                pump.cancel()
        finally:
            self.open.difference_update((writer, up_writer))
            for w in (writer, up_writer):
                w.transport.abort()

    async def serve_control(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        """One command per connection: `cut SECONDS` -> `ok N`; anything else -> `error`."""
        try:
            words = (await reader.readline()).decode("ascii", "replace").split()
            if len(words) == 2 and words[0] == "cut":
                writer.write(f"ok {self.cut(float(words[1]))}\n".encode())
            else:
                writer.write(b"error: expected 'cut SECONDS'\n")
            await writer.drain()
        except (OSError, ValueError):
            pass
        finally:
            writer.close()


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(OSError, asyncio.IncompleteReadError):
        while chunk := await reader.read(_CHUNK):
            writer.write(chunk)
            await writer.drain()


def cut_link(host: str, control_port: int, seconds: float, timeout: float = 10.0) -> int:
    """Ask the link on `control_port` to cut for `seconds`; returns once every connection
    through it is aborted, with how many were open. Raises `OSError` when it does not answer
    within `timeout` seconds."""
    with socket.create_connection((host, control_port), timeout=timeout) as sock:
        sock.sendall(f"cut {seconds}\n".encode())
        reply = sock.makefile("rb").readline().decode("ascii", "replace").split()
    if len(reply) != 2 or reply[0] != "ok":
        raise OSError(f"the link on {host}:{control_port} answered {' '.join(reply)!r}")
    return int(reply[1])


async def serve(host: str, port: int, target_port: int, control_port: int) -> None:
    """Run the link until SIGTERM or SIGINT."""
    link = Link(host, target_port)
    clients = await asyncio.start_server(link.serve_client, host, port)
    control = await asyncio.start_server(link.serve_control, host, control_port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with clients, control:
        await stop.wait()
        link.cut(0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--target-port", type=int, required=True)
    parser.add_argument("--control-port", type=int, required=True)
    args = parser.parse_args()
    asyncio.run(serve(args.host, args.port, args.target_port, args.control_port))


if __name__ == "__main__":
    main()
