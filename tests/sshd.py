"""A real OpenSSH server on 127.0.0.1 for the ssh transport tests.

Started on a free port with a temporary host key and one authorised client key; the client
side is an ssh_config file with a host alias (`edgekit-test`), exactly how users point edgekit
at their boards. `.ci/run` installs openssh-server; elsewhere the tests skip when sshd is
missing, unless helpers.required('SSHD') (CI) turns that into a failure.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from helpers import missing_part

SSHD = shutil.which("sshd") or "/usr/sbin/sshd"


@dataclass
class SSHServer:
    port: int
    config: Path  # client ssh_config with Host edgekit-test
    process: subprocess.Popen
    directory: Path

    @property
    def alias_uri(self) -> str:
        return "ssh://edgekit-test"

    @property
    def uri(self) -> str:
        return f"ssh://{os.environ.get('USER', 'root')}@127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_sshd(directory: Path, sftp: bool = True) -> SSHServer:
    """`sftp=False`: no sftp subsystem, like many boards (OpenSSH 9's scp needs one)."""
    if not Path(SSHD).exists():
        missing_part("SSHD", "sshd not installed (apt-get install openssh-server)")
    directory.mkdir(parents=True, exist_ok=True)
    for name in ("host_key", "client_key"):
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(directory / name)],
            check=True,
        )
    (directory / "authorized_keys").write_text((directory / "client_key.pub").read_text())
    os.chmod(directory / "authorized_keys", 0o600)
    port = _free_port()
    user = (
        os.environ.get("USER")
        or subprocess.run(["id", "-un"], capture_output=True, text=True, check=True).stdout.strip()
    )
    (directory / "sshd_config").write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {directory}/host_key\n"
        f"PidFile {directory}/sshd.pid\nAuthorizedKeysFile {directory}/authorized_keys\n"
        "PasswordAuthentication no\nKbdInteractiveAuthentication no\n"
        "PubkeyAuthentication yes\nStrictModes no\nUsePAM no\nPermitRootLogin yes\n"
        + ("Subsystem sftp internal-sftp\n" if sftp else "")
        + "LogLevel ERROR\n"
    )
    host_pub = (directory / "host_key.pub").read_text().split()
    (directory / "known_hosts").write_text(f"[127.0.0.1]:{port} {host_pub[0]} {host_pub[1]}\n")
    (directory / "ssh_config").write_text(
        f"Host edgekit-test\n  HostName 127.0.0.1\n  Port {port}\n  User {user}\n\n"
        f"Host *\n  IdentityFile {directory}/client_key\n  IdentitiesOnly yes\n"
        f"  UserKnownHostsFile {directory}/known_hosts\n  StrictHostKeyChecking yes\n"
    )
    Path("/run/sshd").mkdir(parents=True, exist_ok=True)  # privilege-separation directory
    process = subprocess.Popen(
        [SSHD, "-D", "-e", "-f", str(directory / "sshd_config")],
        stdout=subprocess.DEVNULL,
        stderr=open(directory / "sshd.log", "w"),  # noqa: SIM115 (closed with the process)
    )
    deadline = time.monotonic() + 120  # a loaded host starts sshd slowly
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("sshd exited: " + (directory / "sshd.log").read_text()[-500:])
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            time.sleep(0.1)
    else:
        process.kill()
        raise RuntimeError("sshd did not start listening")
    return SSHServer(port, directory / "ssh_config", process, directory)
