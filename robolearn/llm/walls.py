"""The process-level walls of the sandbox child, put up after its imports and before the program runs.

Each wall reports its own state as one string: ``active...``, ``unavailable: <why>`` (the platform or
the privileges do not allow it; the child runs on behind the other walls and the parent logs it) or
``disabled by the caller`` (tests switch one wall off to show the others hold on their own).

- ``rlimits``: RLIMIT_NOFILE 0 (no new file or socket), RLIMIT_FSIZE 0 (no file grows) and
  RLIMIT_NPROC 0 (no fork, but only for non-root users: root ignores it and may raise every limit
  again, hence the next wall);
- ``privileges``: a child started as root drops to nobody (setgroups([]), setgid, setuid 65534), so it
  can neither raise its limits again nor write what only root may write;
- ``seccomp`` (Linux, libseccomp through pyseccomp): a syscall filter refuses with EPERM the creation
  of processes (fork, vfork, clone without CLONE_THREAD, execve), sockets, opening files for writing,
  creating, renaming and deleting files, raising limits, signalling other processes, ptrace and
  namespace changes;
- ``netns`` (Linux): the child moves into a new, empty network namespace (no interface is up, not even
  loopback); root can always, other users where unprivileged user namespaces are enabled.

CPU-time, address-space and core-dump limits are not walls but budgets: they are always on
(robolearn.llm.sandbox_child.apply_limits).
"""

from __future__ import annotations

import ctypes
import errno
import importlib
import os
import resource
import sys
from typing import Any

WALL_NAMES = ("guards", "rlimits", "privileges", "seccomp", "netns")
DISABLED = "disabled by the caller"
NOBODY = 65534

_CLONE_NEWUSER = 0x10000000
_CLONE_NEWNET = 0x40000000
_CLONE_THREAD = 0x00010000

# Refused outright (EPERM). Names a platform does not have (aarch64 has no fork or open) are skipped.
_DENIED_SYSCALLS = (
    # processes and programs
    "fork",
    "vfork",
    "execve",
    "execveat",
    # network (and local) sockets
    "socket",
    "socketpair",
    "connect",
    "bind",
    "listen",
    "accept",
    "accept4",
    # files: create, rename, delete, change
    "creat",
    "openat2",  # its flags sit in a struct the filter cannot read
    "truncate",
    "ftruncate",
    "unlink",
    "unlinkat",
    "rename",
    "renameat",
    "renameat2",
    "mkdir",
    "mkdirat",
    "rmdir",
    "link",
    "linkat",
    "symlink",
    "symlinkat",
    "mknod",
    "mknodat",
    "chmod",
    "fchmod",
    "fchmodat",
    "chown",
    "fchown",
    "fchownat",
    "lchown",
    # limits, other processes, privileges, namespaces
    "setrlimit",
    "prlimit64",
    "tkill",
    "pidfd_open",
    "pidfd_send_signal",
    "ptrace",
    "process_vm_readv",
    "process_vm_writev",
    "unshare",
    "setns",
    "mount",
    "umount2",
    "chroot",
    "pivot_root",
    "bpf",
    "perf_event_open",
)
_WRITE_FLAGS = (os.O_WRONLY, os.O_RDWR, os.O_CREAT, os.O_TRUNC, os.O_APPEND)


def is_active(status: str) -> bool:
    """True for a wall status that says the wall is up."""
    return status.startswith("active")


def limit_files_and_processes() -> str:
    """RLIMIT_NOFILE, RLIMIT_FSIZE and RLIMIT_NPROC to 0 (one-way for non-root users)."""
    try:
        resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))
        if hasattr(resource, "RLIMIT_NPROC"):
            resource.setrlimit(resource.RLIMIT_NPROC, (0, 0))
        resource.setrlimit(resource.RLIMIT_NOFILE, (0, 0))
    except (ValueError, OSError) as exc:
        return f"unavailable: setrlimit failed ({exc})"
    return "active: no new files or sockets, no file growth, no fork for non-root users"


def drop_privileges() -> str:
    """Become nobody when running as root; nothing to do (but say so) otherwise."""
    if not hasattr(os, "geteuid"):
        return "unavailable: no POSIX user ids on this platform"
    uid = os.geteuid()
    if uid != 0:
        return f"active: not root (uid {uid})"
    try:
        os.setgroups([])
        os.setgid(NOBODY)
        os.setuid(NOBODY)
    except OSError as exc:
        return f"unavailable: cannot drop root to uid {NOBODY} ({exc})"
    if os.geteuid() == 0 or os.getegid() == 0:
        return f"unavailable: still root after setuid({NOBODY})"
    return f"active: root dropped to uid/gid {NOBODY}"


class SeccompFilter:
    """A syscall filter built before the limits go on (building it loads libseccomp) and loaded last."""

    def __init__(self) -> None:
        self.status = ""
        self._filter: Any = None
        if not sys.platform.startswith("linux"):
            self.status = f"unavailable: seccomp is Linux-only (this is {sys.platform})"
            return
        try:
            seccomp = importlib.import_module("pyseccomp")
        except ImportError:
            self.status = "unavailable: pyseccomp is not installed (pip install 'pyseccomp>=0.1.2')"
            return
        except (OSError, RuntimeError) as exc:
            self.status = f"unavailable: libseccomp cannot be loaded ({exc}; apt-get install libseccomp2)"
            return
        try:
            self._filter = _build_filter(seccomp)
        except (OSError, RuntimeError, ValueError) as exc:
            self.status = f"unavailable: the filter cannot be built ({exc})"

    def load(self) -> str:
        """Install the filter on this process (irreversible); returns the wall's status."""
        if self._filter is None:
            return self.status
        try:
            self._filter.load()
        except OSError as exc:
            return f"unavailable: the kernel refused the filter ({exc})"
        return "active: no fork/clone/exec, sockets, file writes or deletes, limit raising, signals to others"


def _build_filter(seccomp: Any) -> Any:
    deny = seccomp.ERRNO(errno.EPERM)
    filt = seccomp.SyscallFilter(defaction=seccomp.ALLOW)
    arch = seccomp.system_arch()

    def known(name: str) -> bool:
        try:
            return int(seccomp.resolve_syscall(arch, name)) >= 0
        except (OSError, ValueError, RuntimeError):
            return False

    for name in _DENIED_SYSCALLS:
        if known(name):
            filt.add_rule(deny, name)
    # clone makes threads and processes; only threads (CLONE_THREAD set) are let through. clone3 keeps
    # its flags in a struct the filter cannot read: ENOSYS makes the C library fall back to clone.
    filt.add_rule(deny, "clone", seccomp.Arg(0, seccomp.MASKED_EQ, _CLONE_THREAD, 0))
    if known("clone3"):
        filt.add_rule(seccomp.ERRNO(errno.ENOSYS), "clone3")
    # Opening for reading stays allowed (numpy may read its own files); any write flag is refused.
    for name, flags_arg in (("open", 1), ("openat", 2)):
        if known(name):
            for flag in _WRITE_FLAGS:
                filt.add_rule(deny, name, seccomp.Arg(flags_arg, seccomp.MASKED_EQ, flag, flag))
    # Signals only to this process itself (SIGXCPU comes from the kernel, not a syscall).
    own = os.getpid()
    filt.add_rule(deny, "kill", seccomp.Arg(0, seccomp.NE, own))
    filt.add_rule(deny, "tgkill", seccomp.Arg(0, seccomp.NE, own))
    return filt


def isolate_network() -> str:
    """Move this process into a new network namespace with no interface up."""
    if not sys.platform.startswith("linux"):
        return f"unavailable: network namespaces are Linux-only (this is {sys.platform})"
    try:
        libc = ctypes.CDLL(None, use_errno=True)  # the C library this interpreter already links
        unshare = libc.unshare
    except (OSError, AttributeError) as exc:
        return f"unavailable: no unshare in the C library ({exc})"
    flags = _CLONE_NEWNET if os.geteuid() == 0 else _CLONE_NEWUSER | _CLONE_NEWNET
    if unshare(flags) != 0:
        err = ctypes.get_errno()
        how = (
            "as root"
            if os.geteuid() == 0
            else "through a user namespace (needs unprivileged user namespaces)"
        )
        hint = "; the process already has threads" if err == errno.EINVAL else ""
        return f"unavailable: unshare {how} failed ({os.strerror(err)}{hint})"
    return "active: an empty network namespace (no interfaces up)"
