"""The records a logger emits while a test runs (uvicorn's warnings, chatnb's own)."""

from __future__ import annotations

import logging

__all__ = ["LogRecords"]


class LogRecords(logging.Handler):
    """Collects the records of one logger at or above ``level`` while in use as a context manager.

    Attach it after the emulator has started: uvicorn configures its loggers when a server is made.
    """

    def __init__(self, name: str = "uvicorn.error", level: int = logging.WARNING) -> None:
        super().__init__(level)
        self.logger = logging.getLogger(name)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    @property
    def messages(self) -> list[str]:
        return [r.getMessage() for r in self.records]

    def __enter__(self) -> LogRecords:
        self.logger.addHandler(self)
        return self

    def __exit__(self, *exc: object) -> None:
        self.logger.removeHandler(self)
