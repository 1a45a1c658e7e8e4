"""A wall-clock deadline for Python code running in the current thread (template rendering).

A trace function checks the clock whenever a Python function is entered and, in the code named
`traced_file` (templates compile to "<template>"), on every line: template loops, recursive macros and
filters that call back into Python stop within the limit, whether or not the client is still connected.
Lines elsewhere are not traced, so library code runs at full speed; a single call that never calls
back into Python cannot be interrupted, and the size limits keep such calls short.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any


class DeadlineExceeded(Exception):
    """The code ran past its deadline."""


class _Expired(BaseException):
    """Raised inside the traced code: a BaseException, so no `except Exception` on the way can swallow it."""


@contextmanager
def deadline(seconds: float, traced_file: str) -> Iterator[None]:
    """Run the block under a time limit; raises DeadlineExceeded when it is passed."""
    expires = time.monotonic() + seconds

    def check(frame: FrameType, event: str, arg: Any) -> Any:
        if time.monotonic() > expires:
            raise _Expired
        return check if frame.f_code.co_filename == traced_file else None

    previous = sys.gettrace()
    sys.settrace(check)
    try:
        yield
    except _Expired:
        raise DeadlineExceeded(f"took longer than {seconds:g} s") from None
    finally:
        sys.settrace(previous)
