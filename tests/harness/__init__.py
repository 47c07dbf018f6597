"""Test harnesses that run real external servers (OpenSSH sshd, ...) on 127.0.0.1.

Imports are relative so the package works whether pytest imports it as
``harness`` (rootdir-relative) or ``tests.harness`` (when ``tests`` is a package).
"""

from .sshd import SSHD_PATH, SftpServer, SshdError, sshd_available

__all__ = ["SSHD_PATH", "SftpServer", "SshdError", "sshd_available"]
