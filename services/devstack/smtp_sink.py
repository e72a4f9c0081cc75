"""A local SMTP sink (aiosmtpd) that saves every message it accepts as an `.eml` file.

Run: `python -m services.devstack.smtp_sink --host 127.0.0.1 --port 8025 --dir MAILDIR`.
Files are named `<sequence>-<message-id-hash>.eml` and written atomically (temp + rename), so a
reader never sees half a message.
"""

import argparse
import asyncio
import hashlib
import itertools
import os
import signal
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import Envelope, Session

from services.devstack.ports import free_port


class SavingHandler:
    """aiosmtpd handler: accepts every message and writes it to `directory`.

    Recipients listed in `refuse` are refused with a permanent 550 (for tests of permanent
    failures).
    """

    def __init__(self, directory: Path, refuse: frozenset[str] = frozenset()) -> None:
        self.directory = directory
        self.refuse = refuse
        self._counter = itertools.count(1 + len(list(directory.glob("*.eml"))))

    async def handle_RCPT(  # noqa: N802 - aiosmtpd's hook name
        self, server: Any, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if address.lower() in self.refuse:
            return "550 5.1.1 mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(  # noqa: N802 - aiosmtpd's hook name
        self, server: Any, session: Session, envelope: Envelope
    ) -> str:
        content = envelope.original_content or b""
        digest = hashlib.sha256(content).hexdigest()[:12]
        name = f"{next(self._counter):06d}-{digest}.eml"
        tmp = self.directory / f".{name}.tmp"
        tmp.write_bytes(content)
        os.replace(tmp, self.directory / name)
        return "250 Message accepted for delivery"


def start_sink(
    directory: Path, host: str = "127.0.0.1", port: int = 0, refuse: frozenset[str] = frozenset()
) -> Controller:
    """Start an in-process sink; returns the running controller (`.port`, `.stop()`)."""
    directory.mkdir(parents=True, exist_ok=True)
    port = port or free_port(host)
    controller = Controller(SavingHandler(directory, refuse), hostname=host, port=port)
    controller.start()
    return controller


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--dir", type=Path, required=True)
    args = parser.parse_args()
    controller = start_sink(args.dir, args.host, args.port)

    async def wait_for_signal() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()

    try:
        asyncio.run(wait_for_signal())
    finally:
        controller.stop()


if __name__ == "__main__":
    main()
