"""Starts a real flagrelay binary on loopback for the Python suite, and the test-side FNV-1a
bucket of shared/spec/evaluation.md (so rollout assertions do not trust the relay)."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
FIXTURE_FLAGS = REPO / "tests/clients/fixtures/flags.yaml"

POLL_MS = 200
SALT = "e2e-salt"
KEYS = {
    "eval": "e2e-eval-key",
    "staging": "e2e-staging-key",  # bound to env "staging"
    "hashed": "e2e-hashed-key",  # configured as sha256:<hex>
    "admin": "e2e-admin-key",
    "wrong": "not-a-configured-key",
}


def relay_binary() -> Path:
    binary = Path(os.environ.get("FLAGRELAY_BIN") or REPO / "target/release/flagrelay")
    if not binary.exists():
        raise RuntimeError(
            f"relay binary {binary} not found: build it (cargo build --release) or set FLAGRELAY_BIN"
        )
    return binary


_handed_out: set[int] = set()
_ports_lock = threading.Lock()


def free_port() -> int:
    """A loopback port free now and not handed out before in this process (tests start relays
    from several threads, and the kernel may give a port just closed to the next caller)."""
    with _ports_lock:
        while True:
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                s.bind(("127.0.0.1", 0))
                port = s.getsockname()[1]
            if port not in _handed_out:
                _handed_out.add(port)
                return port


# Between free_port() and the relay's bind, the port can still go to someone else (an outgoing
# connection's source port): a start that fails that way is retried on new ports.
START_ATTEMPTS = 5


class Relay:
    def __init__(
        self,
        secured: bool = True,
        flagd: str | None = None,
        salt: str | None = SALT,
        flags_text: str | None = None,
    ):
        """`flagd`: also serve the flagd protocol, with these extra `flagd:` settings
        (e.g. "" or ", allowUnauthenticated: true"); `flags_text` replaces the fixture flags."""
        self.dir = Path(tempfile.mkdtemp(prefix="flagrelay-py-"))
        self.flags_path = self.dir / "flags.yaml"
        if flags_text is None:
            shutil.copyfile(FIXTURE_FLAGS, self.flags_path)
        else:
            self.flags_path.write_text(flags_text)
        lines = [
            # No drain delay: a stop here is the end of a test, not a rolling update (5 s each).
            "server: {host: 127.0.0.1, shutdownDelay: 0}",
            f"pollingInterval: {POLL_MS}",
            "logFormat: json",
            "retrievers:",
            f"  - {{kind: file, path: {json.dumps(str(self.flags_path))}}}",
        ]
        if salt:
            lines.append(f"rolloutSalt: {json.dumps(salt)}")
        if secured:
            hashed = hashlib.sha256(KEYS["hashed"].encode()).hexdigest()
            lines += [
                "authorizedKeys:",
                f'  evaluation: ["{KEYS["eval"]}", {{key: "{KEYS["staging"]}", env: staging}}, "sha256:{hashed}"]',
                f'  admin: ["{KEYS["admin"]}"]',
            ]
        self.config_path = self.dir / "config.yaml"
        self.log_path = self.dir / "relay.log"
        for attempt in range(START_ATTEMPTS):
            self.flagd_port = None
            extra = []
            if flagd is not None:
                self.flagd_port = free_port()
                extra.append(f"flagd: {{host: 127.0.0.1, port: {self.flagd_port}{flagd}}}")
            self.config_path.write_text("\n".join(lines + extra) + "\n")
            self.port = free_port()
            self.base_url = f"http://127.0.0.1:{self.port}"
            self._log = open(self.log_path, "wb")
            self.proc = subprocess.Popen(
                [str(relay_binary()), "--config", str(self.config_path), "--port", str(self.port)],
                stdin=subprocess.DEVNULL,
                stdout=self._log,
                stderr=subprocess.STDOUT,
            )
            try:
                self._wait_ready(20.0)
                return
            except Exception:
                self._stop_process()
                if attempt + 1 < START_ATTEMPTS and "Address already in use" in self.log_tail():
                    continue
                shutil.rmtree(self.dir, ignore_errors=True)
                raise

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"relay exited during start (code {self.proc.returncode}):\n{self.log_tail()}"
                )
            try:
                with urllib.request.urlopen(f"{self.base_url}/ready", timeout=1) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"relay not ready within {timeout} s:\n{self.log_tail()}")
            time.sleep(0.05)

    def log_tail(self, n: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def write_flags(self, text: str) -> None:
        """Atomically replaces the flag file (write + rename), as a deploy would."""
        tmp = self.dir / f"flags.{time.monotonic_ns()}.tmp"
        tmp.write_text(text)
        os.replace(tmp, self.flags_path)

    def set_live_value(self, value: str) -> None:
        text, n = re.subn(
            r'(live-flag:[\s\S]*?value: \{on: )"[^"]*"', rf'\g<1>"{value}"', self.flags_path.read_text()
        )
        assert n == 1, "live-flag not found in the flag file"
        self.write_flags(text)

    def stop(self) -> None:
        self._stop_process()
        shutil.rmtree(self.dir, ignore_errors=True)

    def _stop_process(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


def fnv1a32(data: bytes) -> int:
    h = 0x811C9DC5
    for b in data:
        h ^= b
        h = (h * 0x01000193) & 0xFFFFFFFF
    return h


def bucket(flag_key: str, subject: str, salt: str | None = SALT) -> int:
    """FNV-1a-32(salt 0x00 key 0x00 subject) mod 100 (evaluation.md)."""
    data = b""
    if salt:
        data += salt.encode() + b"\0"
    data += flag_key.encode() + b"\0" + subject.encode()
    return fnv1a32(data) % 100


def expected_variant(flag_key: str, subject: str, rollout: int) -> str:
    return "on" if bucket(flag_key, subject) < rollout else "off"
