"""A one-line progress display on stderr for long generation and for runs."""

import sys
import time
from typing import TextIO


class ProgressLine:
    """Rewrites one terminal line, at most ten times a second; silent when disabled."""

    def __init__(self, stream: TextIO | None = None, *, enabled: bool = True) -> None:
        self._stream = stream or sys.stderr
        self._enabled = enabled
        self._last = 0.0
        self._phase = ""

    def __call__(self, phase: str, done: int, total: int) -> None:
        """Show `phase done/total`."""
        if not self._enabled:
            return
        now = time.monotonic()
        if phase == self._phase and done < total and now - self._last < 0.1:
            return
        if phase != self._phase and self._phase:
            self._stream.write("\n")
        self._phase, self._last = phase, now
        pct = 100.0 * done / total if total else 100.0
        width = 30
        filled = int(width * pct / 100)
        bar = "#" * filled + "." * (width - filled)
        self._stream.write(f"\r{phase:<16} [{bar}] {done:>9}/{total:<9} {pct:5.1f}%")
        self._stream.flush()

    def message(self, text: str) -> None:
        """Replace the line with free text."""
        if self._enabled:
            self._stream.write(f"\r{text}\033[K")
            self._stream.flush()

    def close(self) -> None:
        """End the line."""
        if self._enabled and self._phase:
            self._stream.write("\n")
            self._stream.flush()
        self._phase = ""
