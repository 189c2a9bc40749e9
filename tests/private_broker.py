"""A RabbitMQ node of the tests' own, on its own ports, that a test may stop and start.

The shared broker on 5672 keeps running whatever a fault test does here.
"""

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def port_open(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
    except OSError:
        return False
    return True


class PrivateBroker:
    """``rabbitmq-server`` with its own node name, ports and data directory."""

    def __init__(self) -> None:
        self.node = f"bulkworker-{uuid.uuid4().hex[:6]}@localhost"
        self.port = free_port()
        self.dist_port = free_port()
        self.home = Path(tempfile.mkdtemp(prefix="bulkworker-node-"))
        self.url = f"amqp://guest:guest@127.0.0.1:{self.port}/"

    def __repr__(self) -> str:
        return f"<PrivateBroker {self.node} port={self.port}>"

    def environment(self) -> dict[str, str]:
        return {
            **os.environ,
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_MNESIA_BASE": str(self.home / "data"),
            "RABBITMQ_LOG_BASE": str(self.home / "log"),
            "RABBITMQ_PID_FILE": str(self.home / "pid"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.home / "enabled_plugins"),
            "RABBITMQ_CONFIG_FILE": str(self.home / "rabbitmq"),
        }

    def start(self) -> None:
        (self.home / "enabled_plugins").write_text("[].\n")
        (self.home / "rabbitmq.conf").write_text(f"listeners.tcp.local = 127.0.0.1:{self.port}\n")
        if os.geteuid() == 0:
            # rabbitmq-server drops to the rabbitmq user when started as root.
            user = pwd.getpwnam("rabbitmq")
            for path in [self.home, *self.home.rglob("*")]:
                os.chown(path, user.pw_uid, user.pw_gid)
        subprocess.run(
            ["rabbitmq-server", "-detached"],
            env=self.environment(),
            check=True,
            capture_output=True,
            timeout=60,
        )
        self.wait_until_listening()

    def wait_until_listening(self, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        while not port_open(self.port):
            if time.monotonic() > deadline:
                log = "\n".join(p.read_text()[-2000:] for p in (self.home / "log").glob("*.log"))
                raise RuntimeError(f"{self} did not start within {timeout}s:\n{log}")
            time.sleep(0.2)
        self.ctl("await_startup", "--timeout", "60")

    def ctl(self, *arguments: str) -> str:
        result = subprocess.run(
            ["rabbitmqctl", "-q", "-n", self.node, *arguments],
            env=self.environment(),
            check=True,
            capture_output=True,
            text=True,
            timeout=90,
        )
        return result.stdout

    def stop_app(self) -> None:
        """The broker goes away (connections drop); data stays for start_app."""
        self.ctl("stop_app")

    def start_app(self) -> None:
        self.ctl("start_app")
        self.wait_until_listening()

    def memory_alarm(self, on: bool) -> None:
        """Block every publishing connection, as a broker short of memory does."""
        self.ctl("set_vm_memory_high_watermark", "0" if on else "0.4")

    def close(self) -> None:
        try:
            self.ctl("stop")
        finally:
            shutil.rmtree(self.home, ignore_errors=True)


def rabbitmq_installed() -> bool:
    return shutil.which("rabbitmq-server") is not None and shutil.which("rabbitmqctl") is not None
