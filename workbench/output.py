"""Standard output for a headless sweep that never fails a run.

Once the reader is gone (``| head`` exited, a closed terminal) writes go nowhere instead of
raising BrokenPipeError, and text the stream cannot encode is written with replacements: so
neither the progress lines nor a plugin's ``print`` can fail a run or end in a traceback.
"""

from __future__ import annotations

import os
from typing import Any, TextIO


class QuietStream:
    """Wraps a text stream; ``broken`` tells that its reader has gone."""

    def __init__(self, stream: TextIO):
        self._stream = stream
        self.broken = False

    def write(self, text: str) -> int:
        if not self.broken:
            try:
                try:
                    self._stream.write(text)
                except UnicodeEncodeError:
                    encoding = getattr(self._stream, "encoding", None) or "ascii"
                    self._stream.write(text.encode(encoding, "replace").decode(encoding))
            except (OSError, ValueError):  # EPIPE, or the stream was closed
                self._gone()
        return len(text)

    def flush(self) -> None:
        if not self.broken:
            try:
                self._stream.flush()
            except (OSError, ValueError):
                self._gone()

    def _gone(self) -> None:
        """Point the stream's file descriptor at /dev/null, so that what is still buffered
        (and Python's flush at exit) goes nowhere quietly."""
        self.broken = True
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, self._stream.fileno())
            os.close(devnull)
        except (OSError, ValueError, AttributeError):
            pass

    def __getattr__(self, name: str) -> Any:  # isatty, fileno, encoding...
        return getattr(self._stream, name)
