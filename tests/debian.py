"""Server programs the tests run privately, installed from Debian when missing.

Under ``CI=true`` (which runs as root on a Debian machine) a test needing one never
skips: the program is installed with apt-get, and a failure to install fails the test.
Elsewhere, without the program and without the right to install it, the test skips
and says what to install.
"""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

#: apt-get, waiting up to 10 minutes for another install to release dpkg's lock:
#: ``make test``'s parts start at once, and several may install something.
APT_GET = ["apt-get", "-o", "DPkg::Lock::Timeout=600"]


def installed(program: str, package: str) -> str | None:
    """The path of ``program``, after installing Debian's ``package`` if it was missing
    and this process may (root, apt-get); ``None`` when it is still missing."""
    found = which(program)
    if found or os.geteuid() != 0 or not shutil.which("apt-get"):
        return found
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = [*APT_GET, "install", "-y", "-qq", "--no-install-recommends", package]
    if subprocess.run(install, env=env, capture_output=True).returncode != 0:
        subprocess.run([*APT_GET, "update", "-qq"], env=env, capture_output=True)
        subprocess.run(install, env=env, capture_output=True)
    return which(program)


def which(program: str) -> str | None:
    """On ``PATH``, or where Debian puts daemons (``/usr/sbin``, off a user's ``PATH``)."""
    return shutil.which(program) or shutil.which(program, path="/usr/sbin:/sbin")


def missing_reason(program: str, package: str) -> str:
    return f"{program} is not installed (Debian package {package}; as root the tests install it)"


def required(program: str, package: str) -> str:
    """The path of ``program``; a test without it skips, or fails under ``CI=true``."""
    path = installed(program, package)
    if path is None:
        if os.environ.get("CI") == "true":
            pytest.fail(missing_reason(program, package))
        pytest.skip(missing_reason(program, package))
    return path
