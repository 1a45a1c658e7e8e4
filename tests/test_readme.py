"""Every code example in the README runs as written, so the documentation cannot drift from the code.

Python blocks run in a fresh interpreter; curl blocks run in order against `python api/app.py` started
on a free port with an empty database. Only set-up commands (make, flask keys) are left out: the quick-start
commands are what CI itself runs, and the keys block would switch authentication on for the rest.
"""

from __future__ import annotations

import os
import re
import shlex
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
BLOCKS = re.findall(r"```(\w+)\n(.*?)```", README, flags=re.DOTALL)

pytestmark = pytest.mark.local_model


def _commands(block: str) -> list[list[str]]:
    """The curl commands of a block as argv lists: continuations joined, quoted bodies may span lines."""
    commands, pending = [], ""
    for line in block.replace("\\\n", " ").splitlines():
        pending = f"{pending}\n{line}" if pending else line.split("  #")[0]
        try:
            argv = shlex.split(pending)
        except ValueError:  # an open quote: the command goes on
            continue
        if argv and argv[0] == "curl":
            commands.append(argv)
        pending = ""
    return commands


CURL_BLOCKS = [block for lang, block in BLOCKS if lang == "bash" and "$KEY" not in block and _commands(block)]
GATEWAY = "http://127.0.0.1:5000/v1"  # Python examples that talk to a running service
PYTHON_BLOCKS = [block for lang, block in BLOCKS if lang == "python" and GATEWAY not in block]
GATEWAY_BLOCKS = [block for lang, block in BLOCKS if lang == "python" and GATEWAY in block]


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GEMINI_", "GOOGLE_", "API_KEYS", "RATE_LIMIT"))}
    return {**env, "DATABASE_URL": f"sqlite:///{tmp_path / 'readme.db'}", "PYTHONPATH": str(ROOT), **extra}


def test_the_readme_has_examples_to_run():
    assert len(PYTHON_BLOCKS) >= 2 and len(CURL_BLOCKS) >= 6


@pytest.mark.parametrize("block", PYTHON_BLOCKS, ids=[f"python-{i}" for i in range(len(PYTHON_BLOCKS))])
def test_python_example_runs(block, tmp_path):
    done = subprocess.run([sys.executable, "-c", block], cwd=tmp_path, env=_env(tmp_path), capture_output=True,
                          text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-2000:]


@pytest.fixture
def live_server(tmp_path):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen([sys.executable, "api/app.py"], cwd=ROOT, env=_env(tmp_path, FLASK_PORT=str(port)),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2):
                break
        except OSError:
            assert server.poll() is None and time.monotonic() < deadline, "the service did not start"
            time.sleep(0.2)
    yield port
    server.terminate()
    server.wait(timeout=10)


@pytest.mark.parametrize("block", GATEWAY_BLOCKS, ids=[f"gateway-{i}" for i in range(len(GATEWAY_BLOCKS))])
def test_gateway_example_runs_against_the_service(block, live_server, tmp_path):
    code = block.replace(GATEWAY, f"http://127.0.0.1:{live_server}/v1")
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=_env(tmp_path), capture_output=True,
                          text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-2000:]


def test_curl_examples_succeed_in_order(live_server):
    for block in CURL_BLOCKS:
        for argv in _commands(block):
            argv = [arg.replace("localhost:5000", f"127.0.0.1:{live_server}") for arg in argv]
            done = subprocess.run([argv[0], "--fail-with-body", "--max-time", "120", *argv[1:]],
                                  capture_output=True, text=True, timeout=150)
            assert done.returncode == 0, f"{argv}\n{done.stdout[-1000:]}{done.stderr[-500:]}"


YAML_BLOCKS = [block for lang, block in BLOCKS if lang == "yaml"]


@pytest.mark.parametrize("block", YAML_BLOCKS, ids=[f"yaml-{i}" for i in range(len(YAML_BLOCKS))])
def test_models_file_examples_are_valid(block):
    """Each models-file example passes the models file's own validation (names need not be registered here)."""
    import yaml

    from models.models_file import ModelsFile

    ModelsFile.model_validate(yaml.safe_load(block))
