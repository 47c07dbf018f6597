"""A real OpenSSH ``sshd`` serving SFTP on 127.0.0.1, for tests of the partner exchanges.

``SftpServer`` starts ``/usr/sbin/sshd -D -e -f <config>`` on a free loopback port with a
freshly generated ed25519 host key and a freshly generated client ("partner") key pair,
authorised through a private ``AuthorizedKeysFile``. Password and keyboard-interactive
authentication are off, the only thing a login can do is SFTP (``ForceCommand internal-sftp``).

Root vs non-root
----------------
* **Running as root** (CI, developer machines): no OS user is created. The partner logs in
  as ``root`` with its key only (``PermitRootLogin prohibit-password``) and is locked by
  ``ChrootDirectory`` into a root-owned folder holding ``inbox/`` and ``outbox/``: through
  SFTP it sees ``/``, ``/inbox`` and ``/outbox`` and nothing else. OpenSSH requires every
  component of the chroot path to be root-owned and not writable by group or others, which
  rules out ``/tmp`` (mode 1777); the working directory is therefore created under
  ``<parent>/massar-sshd-harness/`` where ``<parent>`` is the first of ``tempfile.gettempdir()``,
  ``/run``, ``/var/lib`` that satisfies the rule (or the ``base_dir`` you pass).
  ``/run/sshd`` (privilege separation directory) is created when missing.
* **Not root**: sshd can then only authenticate the user running it and cannot chroot.
  The partner logs in as the current user, without chroot; its SFTP session starts in the
  same folder (``internal-sftp -d``), whose remote path is its absolute path on disk.
  That user must be a normal account: sshd refuses one it sees as locked (e.g. ``nobody``).

In both modes relative remote paths (``"inbox/file.xml"``) resolve to the same place, and
``remote_root`` / ``remote_inbox`` / ``remote_outbox`` give the absolute remote paths.

Typical use::

    with SftpServer() as server:
        client = server.connect()          # paramiko.SSHClient, RejectPolicy + pinned key
        sftp = client.open_sftp()
        sftp.put(local, "inbox/x.csv")
        assert (server.inbox / "x.csv").exists()
"""

from __future__ import annotations

import base64
import functools
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import weakref
from pathlib import Path
from typing import Any

import paramiko

SSHD_PATH = "/usr/sbin/sshd"
HOST = "127.0.0.1"
_HARNESS_DIRNAME = "massar-sshd-harness"


class SshdError(RuntimeError):
    """sshd could not be prepared, started or stopped; the message carries its stderr."""


def sshd_available() -> bool:
    """True when OpenSSH's server and ssh-keygen are installed."""
    return os.access(SSHD_PATH, os.X_OK) and shutil.which("ssh-keygen") is not None


@functools.cache
def sshd_version() -> tuple[int, int]:
    """(major, minor) of the installed OpenSSH server, (0, 0) when unknown."""
    try:
        out = subprocess.run(
            [SSHD_PATH, "-V"], capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return (0, 0)
    match = re.search(r"OpenSSH_(\d+)\.(\d+)", out.stderr + out.stdout)
    return (int(match.group(1)), int(match.group(2))) if match else (0, 0)


def _ssh_keygen(key_type: str, path: Path, comment: str) -> None:
    args = ["ssh-keygen", "-q", "-t", key_type, "-N", "", "-C", comment, "-f", str(path)]
    if key_type == "rsa":
        args[4:4] = ["-b", "3072"]
    try:
        subprocess.run(args, check=True, capture_output=True, text=True, timeout=60)
    except FileNotFoundError as exc:
        raise SshdError("ssh-keygen is not installed (run scripts/system-packages.sh)") from exc
    except subprocess.CalledProcessError as exc:
        raise SshdError(f"ssh-keygen failed for {path}: {exc.stderr.strip()}") from exc


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def _chroot_safe(path: Path) -> bool:
    """Every component root-owned and not writable by group/others (sshd's ChrootDirectory rule)."""
    try:
        resolved = path.resolve()
        for component in (resolved, *resolved.parents):
            st = component.stat()
            if st.st_uid != 0 or st.st_mode & 0o022:
                return False
    except OSError:
        return False
    return True


def _proc_table() -> dict[int, tuple[int, str]]:
    """pid -> (ppid, state) for every process visible in /proc."""
    table: dict[int, tuple[int, str]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat") as fh:
                stat = fh.read()
        except OSError:
            continue
        # The command name is in parentheses and may itself contain spaces or ')'.
        fields = stat[stat.rfind(")") + 2 :].split()
        if len(fields) >= 2:
            table[int(entry.name)] = (int(fields[1]), fields[0])
    return table


def _live_descendants(pid: int) -> list[int]:
    """Live (non-zombie) descendants of ``pid``, found through /proc."""
    table = _proc_table()
    children: dict[int, list[int]] = {}
    for child, (ppid, _state) in table.items():
        children.setdefault(ppid, []).append(child)
    found: list[int] = []
    stack = [pid]
    while stack:
        for child in children.get(stack.pop(), []):
            stack.append(child)
            if table[child][1] != "Z":
                found.append(child)
    return found


def _kill_tree(pid: int, timeout: float = 3.0) -> int:
    """SIGKILL every live descendant of ``pid`` (not ``pid`` itself); returns how many."""
    killed: set[int] = set()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        alive = _live_descendants(pid)
        # Also wait for previously killed pids that were re-parented and are not reaped yet.
        pending = [p for p in killed if _is_alive(p)]
        if not alive and not pending:
            break
        for child in alive:
            try:
                os.kill(child, signal.SIGKILL)
                killed.add(child)
            except ProcessLookupError:
                pass
        time.sleep(0.02)
    return len(killed)


def _is_alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            stat = fh.read()
    except OSError:
        return False
    return stat[stat.rfind(")") + 2 :].split()[0] != "Z"


def _shutdown(state: dict[str, Any]) -> None:
    """Stop sshd and its connections, delete the working directory. Used by a finalizer."""
    proc: subprocess.Popen[bytes] | None = state.get("proc")
    if proc is not None:
        _terminate(proc)
        state["proc"] = None
    log = state.get("log")
    if log is not None:
        log.close()
        state["log"] = None
    workdir = state.get("workdir")
    if workdir:
        shutil.rmtree(workdir, ignore_errors=True)
        state["workdir"] = None


def _terminate(proc: subprocess.Popen[bytes]) -> None:
    """Kill the per-connection processes (found through the listener), then the listener."""
    if proc.poll() is None:
        _kill_tree(proc.pid)
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


class SftpServer:
    """A real OpenSSH sshd serving only SFTP, on ``127.0.0.1:<free port>``.

    Constructor (keyword-only):
      port: TCP port; ``None`` (default) picks a free one, kept across restarts/rotations.
      client_key_type: ``"ed25519"`` (default) or ``"rsa"`` for the partner's key pair.
      startup_timeout: seconds ``start()`` waits for the SSH banner (default 10).
      chroot: lock the partner into ``root`` with ChrootDirectory; default: when root.
        ``True`` without root raises ``SshdError``.
      base_dir: parent directory for the working directory (see the module docstring).

    The working directory (keys, config, log, the partner's tree) is created by the
    constructor, so every path attribute is usable before ``start()``. ``stop()`` deletes it;
    the object cannot be started again after ``stop()``.
    """

    host: str = HOST

    def __init__(
        self,
        *,
        port: int | None = None,
        client_key_type: str = "ed25519",
        startup_timeout: float = 10.0,
        chroot: bool | None = None,
        base_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        if not sshd_available():
            raise SshdError(
                f"{SSHD_PATH} or ssh-keygen is missing: run scripts/system-packages.sh "
                "(Debian package openssh-server)"
            )
        if client_key_type not in ("ed25519", "rsa"):
            raise ValueError("client_key_type must be 'ed25519' or 'rsa'")
        is_root = os.geteuid() == 0
        self.chrooted: bool = is_root if chroot is None else chroot
        if self.chrooted and not is_root:
            raise SshdError("ChrootDirectory needs sshd to run as root")
        self.startup_timeout = startup_timeout
        self._fixed_port = port is not None
        self.port: int = port if port is not None else _free_port()
        self.username: str = self._login_name()

        self.workdir = self._make_workdir(base_dir)
        self._state: dict[str, Any] = {"proc": None, "log": None, "workdir": str(self.workdir)}
        self._finalizer = weakref.finalize(self, _shutdown, self._state)
        self._log_offset = 0
        self._host_key_generation = 0

        # The partner's tree: what the partner sees as its root.
        self.root: Path = self.workdir / "sftp-root"
        self.inbox: Path = self.root / "inbox"
        self.outbox: Path = self.root / "outbox"
        for folder in (self.root, self.inbox, self.outbox):
            folder.mkdir(mode=0o755)
            folder.chmod(0o755)  # not affected by umask; ChrootDirectory refuses g/o-writable
        self.remote_root: str = "/" if self.chrooted else str(self.root)
        self.remote_inbox: str = f"{self.remote_root.rstrip('/')}/inbox"
        self.remote_outbox: str = f"{self.remote_root.rstrip('/')}/outbox"

        self.client_key_path: Path = self.workdir / f"partner_{client_key_type}"
        _ssh_keygen(client_key_type, self.client_key_path, "massar-partner@sshd-harness")
        self.client_public_key_line: str = (
            self.client_key_path.with_suffix(".pub").read_text().strip()
        )
        self.authorized_keys_path: Path = self.workdir / "authorized_keys"
        self.authorized_keys_path.write_text(f"restrict {self.client_public_key_line}\n")

        self.host_key_path: Path = self._new_host_key()
        self.config_path: Path = self.workdir / "sshd_config"
        self.pid_file: Path = self.workdir / "sshd.pid"
        self.log_path: Path = self.workdir / "sshd.log"

    # ------------------------------------------------------------------ setup helpers
    def _login_name(self) -> str:
        if os.geteuid() == 0:
            return "root"
        import pwd

        return pwd.getpwuid(os.geteuid()).pw_name

    def _make_workdir(self, base_dir: str | os.PathLike[str] | None) -> Path:
        if not self.chrooted:
            return Path(tempfile.mkdtemp(prefix="massar-sshd-", dir=base_dir))
        if base_dir is not None:
            parents = [Path(base_dir)]
        else:
            parents = [Path(tempfile.gettempdir()), Path("/run"), Path("/var/lib")]
        for parent in parents:
            if not _chroot_safe(parent):
                continue
            harness_dir = parent / _HARNESS_DIRNAME
            harness_dir.mkdir(mode=0o755, exist_ok=True)
            if not _chroot_safe(harness_dir):
                raise SshdError(
                    f"{harness_dir} must be owned by root and not writable by group/others "
                    "to hold a ChrootDirectory"
                )
            return Path(tempfile.mkdtemp(prefix="massar-sshd-", dir=harness_dir))
        raise SshdError(
            "no directory usable for ChrootDirectory (every path component must be "
            f"root-owned and not group/world-writable) among {[str(p) for p in parents]}"
        )

    def _new_host_key(self) -> Path:
        self._host_key_generation += 1
        path = self.workdir / f"ssh_host_ed25519_key.{self._host_key_generation}"
        _ssh_keygen("ed25519", path, f"sshd-harness-host-{self._host_key_generation}")
        return path

    def _write_config(self) -> None:
        for path in (self.workdir, self.root):
            if re.search(r"\s", str(path)):
                raise SshdError(f"path with whitespace cannot go into sshd_config: {path}")
        lines = [
            "# Generated by tests/harness/sshd.py: an SFTP-only test server.",
            f"ListenAddress {self.host}:{self.port}",
            "AddressFamily inet",
            f"HostKey {self.host_key_path}",
            f"PidFile {self.pid_file}",
            f"AuthorizedKeysFile {self.authorized_keys_path}",
            f"AllowUsers {self.username}",
            "AuthenticationMethods publickey",
            "PubkeyAuthentication yes",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            "HostbasedAuthentication no",
            "PermitEmptyPasswords no",
            "PermitRootLogin prohibit-password",
            "UsePAM no",
            "StrictModes no",
            "UseDNS no",
            "LogLevel VERBOSE",
            "PrintMotd no",
            "PrintLastLog no",
            "X11Forwarding no",
            "AllowTcpForwarding no",
            "AllowAgentForwarding no",
            "AllowStreamLocalForwarding no",
            "PermitTunnel no",
            "PermitTTY no",
            "PermitUserRC no",
            "LoginGraceTime 30",
            "MaxStartups 100",
            "MaxSessions 20",
            "Subsystem sftp internal-sftp",
            f"ForceCommand internal-sftp -d {self.remote_root}",
            f"ChrootDirectory {self.root if self.chrooted else 'none'}",
        ]
        if sshd_version() >= (9, 8):
            # Newer sshd penalises sources that fail auth or drop connections; tests do both.
            lines.append("PerSourcePenalties no")
        self.config_path.write_text("\n".join(lines) + "\n")

    # ------------------------------------------------------------------ lifecycle
    @property
    def pid(self) -> int | None:
        """Pid of the listening sshd, or None when not running."""
        proc = self._state["proc"]
        return proc.pid if proc is not None and proc.poll() is None else None

    @property
    def running(self) -> bool:
        return self.pid is not None

    def start(self) -> SftpServer:
        """Start sshd and wait until it accepts connections and sends its SSH banner."""
        if self._state["workdir"] is None:
            raise SshdError("this SftpServer was stopped; create a new one")
        if self.running:
            return self
        if os.geteuid() == 0:
            Path("/run/sshd").mkdir(mode=0o755, parents=True, exist_ok=True)
        attempts = 1 if self._fixed_port else 3
        for attempt in range(attempts):
            try:
                self._spawn_and_wait()
                return self
            except SshdError as exc:
                in_use = "Address already in use" in str(exc)
                if not in_use or attempt == attempts - 1:
                    raise
                self.port = _free_port()
        return self  # pragma: no cover

    def _spawn_and_wait(self) -> None:
        self._write_config()
        if self._state["log"] is None:
            self._state["log"] = open(self.log_path, "ab")  # noqa: SIM115 (closed in _shutdown)
        log = self._state["log"]
        log.flush()
        self._log_offset = self.log_path.stat().st_size
        proc = subprocess.Popen(
            [SSHD_PATH, "-D", "-e", "-f", str(self.config_path)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
            close_fds=True,
        )
        self._state["proc"] = proc
        deadline = time.monotonic() + self.startup_timeout
        while True:
            rc = proc.poll()
            if rc is not None:
                self._state["proc"] = None
                raise SshdError(
                    f"sshd exited with code {rc} before accepting connections on "
                    f"{self.host}:{self.port}; its stderr:\n{self.current_log()}"
                )
            if self._banner_ready(deadline):
                return
            if time.monotonic() >= deadline:
                _terminate(proc)
                self._state["proc"] = None
                raise SshdError(
                    f"sshd did not send an SSH banner on {self.host}:{self.port} within "
                    f"{self.startup_timeout:g} s; its stderr:\n{self.current_log()}"
                )
            time.sleep(0.05)

    def _banner_ready(self, deadline: float) -> bool:
        try:
            with socket.create_connection((self.host, self.port), timeout=0.5) as sock:
                # Short reads: if sshd died, whatever else holds the port must not stall us.
                sock.settimeout(min(0.25, max(0.05, deadline - time.monotonic())))
                data = b""
                while b"\n" not in data and len(data) < 512:
                    chunk = sock.recv(256)
                    if not chunk:
                        break
                    data += chunk
                return data.startswith(b"SSH-")
        except OSError:
            return False

    def stop(self) -> None:
        """Stop sshd, kill its open connections and delete the working directory."""
        self._finalizer()

    def go_offline(self) -> None:
        """Stop listening (open connections are cut) but keep everything: ``start()`` brings
        the same server back on the same port, as a partner's server after an outage."""
        proc = self._state["proc"]
        if proc is not None:
            self.kill_connections()
            _terminate(proc)
            self._state["proc"] = None
        self._fixed_port = True

    def restart(self) -> None:
        """Stop and start sshd again, same host key and port (open connections are cut)."""
        proc = self._state["proc"]
        if proc is not None:
            _terminate(proc)
            self._state["proc"] = None
        self.start()

    def rotate_host_key(self) -> paramiko.PKey:
        """Restart sshd on the same port with a NEW ed25519 host key; returns the new key."""
        old = self.host_key_path
        self.host_key_path = self._new_host_key()
        fixed, self._fixed_port = self._fixed_port, True  # keep the port a client pinned
        try:
            self.restart()
        finally:
            self._fixed_port = fixed
        for path in (old, old.with_suffix(old.suffix + ".pub")):
            path.unlink(missing_ok=True)
        return self.host_key

    def connection_pids(self) -> list[int]:
        """Pids of sshd's per-connection processes (all live descendants of the listener)."""
        pid = self.pid
        return _live_descendants(pid) if pid is not None else []

    def kill_connections(self) -> int:
        """Simulate a network cut: SIGKILL every per-connection process, keep the listener.

        Returns how many processes were killed; new connections are accepted afterwards.
        """
        pid = self.pid
        if pid is None:
            raise SshdError("sshd is not running")
        return _kill_tree(pid)

    def __enter__(self) -> SftpServer:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ logs
    def log(self) -> str:
        """Everything sshd wrote to stderr since the first start."""
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def current_log(self) -> str:
        """What sshd wrote to stderr since its latest (re)start."""
        try:
            with open(self.log_path, "rb") as fh:
                fh.seek(self._log_offset)
                return fh.read().decode(errors="replace")
        except OSError:
            return ""

    # ------------------------------------------------------------------ keys
    @property
    def host_key_line(self) -> str:
        """``ssh-ed25519 AAAA...`` for the current host key."""
        key_type, b64 = (
            self.host_key_path.with_suffix(self.host_key_path.suffix + ".pub")
            .read_text()
            .split()[:2]
        )
        return f"{key_type} {b64}"

    @property
    def host_key(self) -> paramiko.PKey:
        """The current host public key as a paramiko PKey."""
        key_type, b64 = self.host_key_line.split()
        return paramiko.PKey.from_type_string(key_type, base64.b64decode(b64))

    @property
    def known_hosts_name(self) -> str:
        """The host name under which OpenSSH and paramiko look the key up."""
        return self.host if self.port == 22 else f"[{self.host}]:{self.port}"

    @property
    def known_hosts_line(self) -> str:
        """``[127.0.0.1]:PORT ssh-ed25519 AAAA...`` for the current host key."""
        return f"{self.known_hosts_name} {self.host_key_line}"

    def write_known_hosts(self, path: str | os.PathLike[str]) -> Path:
        """Write a known_hosts file that pins the current host key; returns its path."""
        target = Path(path)
        target.write_text(self.known_hosts_line + "\n")
        return target

    @property
    def client_key(self) -> paramiko.PKey:
        """The partner's private key as a paramiko PKey."""
        return paramiko.PKey.from_path(self.client_key_path)

    def authorize_key(self, public_key_line: str) -> None:
        """Authorise one more client public key (``ssh-ed25519 AAAA... comment``)."""
        with open(self.authorized_keys_path, "a") as fh:
            fh.write(f"restrict {public_key_line.strip()}\n")

    # ------------------------------------------------------------------ client helper
    def connect(
        self, host_key: paramiko.PKey | None = None, timeout: float = 10.0
    ) -> paramiko.SSHClient:
        """A paramiko SSHClient logged in as the partner, RejectPolicy, host key pinned.

        ``host_key`` pins another key than the current one (e.g. the one before a rotation).
        """
        pinned = host_key if host_key is not None else self.host_key
        client = paramiko.SSHClient()
        client.get_host_keys().add(self.known_hosts_name, pinned.get_name(), pinned)
        client.set_missing_host_key_policy(paramiko.RejectPolicy())
        try:
            client.connect(
                self.host,
                port=self.port,
                username=self.username,
                pkey=self.client_key,
                allow_agent=False,
                look_for_keys=False,
                timeout=timeout,
                banner_timeout=timeout,
                auth_timeout=timeout,
            )
        except BaseException:
            client.close()
            raise
        return client

    def __repr__(self) -> str:
        state = f"pid={self.pid}" if self.running else "stopped"
        return (
            f"<SftpServer {self.username}@{self.host}:{self.port} root={self.root} "
            f"chroot={self.chrooted} {state}>"
        )
