"""Polling in tests: wait until something happens in another thread or process, or fail naming what did not."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def wait_for(condition: Callable[[], Any], timeout: float = 5.0, what: str = "the condition") -> Any:
    """`condition()` once it is truthy, polled every 10 ms; fails the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)
    return value
