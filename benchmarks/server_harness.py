"""Process plumbing for the server benchmarks: start/stop services, wait for health, memory, and wrk runs."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Service:
    """A child process in its own session, stopped with SIGTERM (then SIGKILL) to its whole group."""

    def __init__(self, name: str, argv: list[str], *, env: dict[str, str] | None = None, cwd: Path | None = None,
                 log: Path | None = None) -> None:
        self.name = name
        self.log = log
        out = open(log, "wb") if log else subprocess.DEVNULL  # closed in stop()
        self.started = time.monotonic()
        self.proc = subprocess.Popen(argv, env={**os.environ, **(env or {})}, cwd=cwd or ROOT, stdout=out,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        self._out = out

    def wait_http(self, url: str, timeout: float = 120.0) -> float:
        """Seconds from start until `url` answers 200; raises with the log's tail if it never does."""
        deadline = self.started + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            try:
                with urllib.request.urlopen(url, timeout=1) as response:  # loopback only
                    if response.status == 200:
                        return time.monotonic() - self.started
            except OSError:
                time.sleep(0.02)
        self.stop()
        tail = self.log.read_text(errors="replace")[-3000:] if self.log else ""
        raise RuntimeError(f"{self.name} did not answer {url} within {timeout:.0f} s\n{tail}")

    def stop(self, timeout: float = 30.0) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        if not isinstance(self._out, int):  # a log file, not subprocess.DEVNULL
            self._out.close()


def probe_ms(url: str, timeout: float = 5.0) -> float | None:
    """Milliseconds until `url` answers 200, or None when it does not within `timeout`."""
    started = time.monotonic()
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return (time.monotonic() - started) * 1000 if response.status == 200 else None
    except OSError:
        return None


def process_tree(pid: int) -> list[int]:
    """`pid` and all its descendants."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        todo.extend(children.get(current, []))
    return tree


def memory_mb(pid: int) -> tuple[float, float]:
    """(RSS, PSS) in MB summed over the process tree: RSS counts shared pages once per process, PSS splits them."""
    rss = pss = 0
    for member in process_tree(pid):
        try:
            for line in Path(f"/proc/{member}/smaps_rollup").read_text().splitlines():
                if line.startswith("Rss:"):
                    rss += int(line.split()[1])
                elif line.startswith("Pss:"):
                    pss += int(line.split()[1])
        except OSError:
            continue
    return rss / 1024, pss / 1024


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds used so far by the processes of each tree in `pids`."""
    ticks = 0
    for member in (m for pid in pids for m in process_tree(pid)):
        try:
            fields = Path(f"/proc/{member}/stat").read_text().rsplit(")", 1)[1].split()
            ticks += int(fields[11]) + int(fields[12])
        except (OSError, IndexError, ValueError):
            continue
    return ticks / os.sysconf("SC_CLK_TCK")


def wait_until_idle(pids: list[int], *, window: float = 0.5, busy_fraction: float = 0.05,
                    max_wait: float = 60.0) -> float:
    """Wait until the services in `pids` use under `busy_fraction` of a core over `window` seconds.

    A system still draining work from the previous case (LiteLLM keeps serving queued requests after
    wrk stops) would otherwise steal CPU from the next one. Returns the seconds waited.
    """
    started = time.monotonic()
    while time.monotonic() - started < max_wait:
        before = cpu_seconds(pids)
        time.sleep(window)
        if cpu_seconds(pids) - before < busy_fraction * window:
            break
    return time.monotonic() - started


def ensure_wrk() -> str:
    """The wrk binary; installed from Debian's packages when missing."""
    found = shutil.which("wrk")
    if found:
        return found
    print("wrk is missing: installing it with apt-get (Debian package 'wrk')", flush=True)
    if subprocess.run(["apt-get", "install", "-y", "-q", "wrk"], capture_output=True).returncode != 0:
        subprocess.run(["apt-get", "update", "-q"], check=True, capture_output=True)
        subprocess.run(["apt-get", "install", "-y", "-q", "wrk"], check=True, capture_output=True)
    found = shutil.which("wrk")
    if not found:
        sys.exit("wrk could not be installed; install it with: apt-get install -y wrk")
    return found


@dataclass
class WrkResult:
    rps: float
    p50_ms: float
    requests: int
    errors: int  # socket errors (connect/read/write/timeout) plus non-2xx answers


def post_script(path: Path, body: str, headers: dict[str, str]) -> Path:
    """A wrk Lua script that POSTs `body` with `headers`."""
    lines = ['wrk.method = "POST"', f"wrk.body = {_lua_string(body)}"]
    lines += [f"wrk.headers[{_lua_string(k)}] = {_lua_string(v)}" for k, v in headers.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def _lua_string(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _first_group(pattern: str, text: str) -> str:
    found = re.search(pattern, text)
    if found is None:
        raise RuntimeError(f"no {pattern!r} in the wrk output:\n{text}")
    return found.group(1)


def run_wrk(url: str, script: Path, connections: int, seconds: float, timeout: float = 5.0) -> WrkResult:
    """One wrk run (1 thread, keep-alive) against a loopback `url`."""
    assert url.startswith("http://127.0.0.1:"), "benchmarks only target loopback addresses"
    argv = [ensure_wrk(), "-t1", f"-c{connections}", f"-d{seconds:g}s", f"--timeout={timeout:g}s", "--latency",
            "-s", str(script), url]
    out = subprocess.run(argv, capture_output=True, text=True, check=True, timeout=seconds + 60).stdout
    rps = float(_first_group(r"Requests/sec:\s+([\d.]+)", out))
    p50 = re.search(r"^\s+50%\s+([\d.]+)(us|ms|s|m)\s*$", out, re.M)
    requests = int(_first_group(r"(\d+) requests in", out))
    errors = sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", out))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors += int(non2xx.group(1)) if non2xx else 0
    return WrkResult(rps, float(p50.group(1)) * UNITS[p50.group(2)] if p50 else float("nan"), requests, errors)
