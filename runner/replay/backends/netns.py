"""A private network (and mount) namespace on this machine, where nothing but the cassette proxy is reachable.

Input: whether the user allowed running without isolation (`--no-isolation`). Output: a `Namespace` inside a
`with` block: `enter(argv, cwd)` is the argv (and the folder to start it in) that runs a program in it,
`show(folder, at, root)` makes a folder appear at a fixed path inside it (the workspace at /workspace, as in a
container), `kill_all()` ends every process still in it. Without isolation `enter` is the identity and the
namespace is the host's.

Rules: what works is found by a real probe, not by uid: first `unshare --net --mount` (root, or
CAP_SYS_ADMIN), then with `--user --map-root-user` (unprivileged user namespaces), then both without the mount
namespace (the workspace then keeps its own path); each starts a holder process whose namespace has only
loopback, which it brings up itself (an ioctl, so `ip` need not be installed), and a program entered with
`nsenter` must then run there. The host's loopback services are a different loopback: unreachable by
construction. When none works, `EnvironmentProblem` says why in one line (exit 3) and names `--no-isolation`.
The holder reads its stdin, so it ends when this process ends, even killed; on leaving the block every process
left in the namespace is killed, then the holder. Nothing is written on the host outside `root` (a folder of
the replay's own): `show` has the holder make every mount private, mount a tmpfs on `root`, recreate the
host's top-level entries in it (folders and files bound recursively, symlinks copied), bind the folder at `at`
and chroot there; entered programs take the holder's root (`nsenter --root`), so they see the host's files and
`at` besides. The mounts are seen by no one else and go with the namespace, leaving `root` an empty folder.
When that cannot be done, `show` says why and the folder keeps its own path."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from runner.errors import EnvironmentProblem

__all__ = ["Namespace", "private_network"]

_HOLDER = """\
# runner-netns-holder: brings loopback up, then holds the namespace until its stdin closes; a request line
# (JSON: folder, at, root) makes a new root in `root` with the host's entries and `folder` at `at`, and enters it
import ctypes, fcntl, json, os, socket, struct, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
req = struct.pack("16sH14s", b"lo", 0, b"")
flags = struct.unpack("16sH14s", fcntl.ioctl(s, 0x8913, req))[1]
fcntl.ioctl(s, 0x8914, struct.pack("16sH14s", b"lo", flags | 1, b""))
libc = ctypes.CDLL(None, use_errno=True)
BIND, REC, UNBINDABLE, PRIVATE, DETACH = 4096, 16384, 1 << 17, 1 << 18, 2

def mount(source, target, flags, fstype=None, data=None):
    args = [None if v is None else v.encode() for v in (source, target, fstype)]
    if libc.mount(*args, flags, None if data is None else data.encode()) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{os.strerror(err)} (mounting on {target})")

def show(folder, at, root):
    mount(None, "/", REC | PRIVATE)  # first: nothing made below may propagate to the host
    mount("tmpfs", root, 0, "tmpfs", "mode=0755")
    try:
        mount(None, root, UNBINDABLE)  # so the host folder holding it is bound without it
        top = at.strip("/").split("/")[0]
        for entry in os.scandir("/"):
            path = os.path.join(root, entry.name)
            if entry.name == top:
                continue
            if entry.is_symlink():
                os.symlink(os.readlink(entry.path), path)
                continue
            if entry.is_dir(follow_symlinks=False):
                os.mkdir(path)
            else:
                open(path, "x").close()
            mount(entry.path, path, BIND | REC)
        os.makedirs(root + at)
        mount(folder, root + at, BIND | REC)
        os.chroot(root)
    except BaseException:
        libc.umount2(root.encode(), DETACH)  # the binds go with the tmpfs
        raise
    os.chdir("/")

print("ready", flush=True)
for line in iter(sys.stdin.readline, ""):
    try:
        show(**json.loads(line))
        print("shown", flush=True)
    except OSError as e:
        print(e.strerror + (f" ({e.filename})" if e.filename else ""), flush=True)
"""
# (in words, a user namespace?, a mount namespace?), best first; without a mount namespace the workspace
# cannot be shown at /workspace, which is only a warning.
_MODES = (
    ("network namespace", False, True),
    ("user and network namespace", True, True),
    ("network namespace without a mount namespace", False, False),
    ("user and network namespace without a mount namespace", True, False),
)
_START_TIMEOUT = 15.0


@dataclass(frozen=True)
class Namespace:
    how: str  # in words, for the report
    holder: subprocess.Popen[bytes] | None = None
    prefix: tuple[str, ...] = ()

    @property
    def isolated(self) -> bool:
        return self.holder is not None

    def enter(self, argv: list[str], cwd: str | None = None) -> tuple[list[str], str | None]:
        """The argv running `argv` in the namespace, in the folder `cwd` as seen there, and the folder to
        start that argv in (None: nsenter changes into `cwd` once inside)."""
        if not self.prefix:
            return argv, cwd
        if cwd is None:
            return [*self.prefix, *argv], None
        # `cd` once inside: the folder may exist only there (nsenter --wdns is too recent to rely on)
        return [*self.prefix, "sh", "-c", 'cd "$0" && exec "$@"', cwd, *argv], None

    def show(self, folder: Path, at: PurePosixPath, root: Path) -> PurePosixPath | str:
        """Show `folder` at `at` inside the namespace, in a new root made on `root` (a folder of the replay's
        own, left empty): `at`, or why not (then the folder keeps its path)."""
        if self.holder is None or self.holder.stdin is None:
            return "there is no private namespace (--no-isolation)"
        if not any(arg.startswith("--mount=") for arg in self.prefix):
            return "no mount namespace could be made here"
        root.mkdir(exist_ok=True)
        request = {"folder": str(folder.resolve()), "at": str(at), "root": str(root.resolve())}
        try:
            self.holder.stdin.write(json.dumps(request).encode() + b"\n")
            self.holder.stdin.flush()
        except OSError as e:
            return f"the namespace's holder has ended ({e.strerror})"
        answer = _answer(self.holder, _START_TIMEOUT)
        if answer != "shown":
            return f"making a root with {at} in {root} failed: {answer or 'no answer'}"
        return at

    def _inode(self) -> str | None:
        if self.holder is None:
            return None
        with contextlib.suppress(OSError):
            return os.readlink(f"/proc/{self.holder.pid}/ns/net")
        return None

    def members(self) -> list[int]:
        """The processes in this namespace (the holder included); none without isolation."""
        inode = self._inode()
        if inode is None:
            return []
        found = []
        for entry in os.scandir("/proc"):
            if entry.name.isdigit():
                with contextlib.suppress(OSError):
                    if os.readlink(f"/proc/{entry.name}/ns/net") == inode:
                        found.append(int(entry.name))
        return found

    def kill_all(self) -> None:
        """Kill every process left in the namespace, then the holder."""
        assert self.holder is not None
        holder = self.holder.pid
        for pid in self.members():
            if pid != holder:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
        self.holder.kill()
        self.holder.wait()


def _answer(proc: subprocess.Popen[bytes], timeout: float) -> str:
    """The next line the holder prints; empty when it ended or took longer."""
    line: list[bytes] = []
    reader = threading.Thread(target=lambda: line.append(proc.stdout.readline() if proc.stdout else b""))
    reader.daemon = True
    reader.start()
    reader.join(timeout)
    return line[0].decode("utf-8", "replace").strip() if line else ""


def _try(user: bool, mount: bool) -> Namespace | str:
    """A namespace made by `unshare` with these options, or why it could not be made."""
    launcher = (
        "unshare", *(("--user", "--map-root-user") if user else ()), "--net",
        *(("--mount", "--propagation", "private") if mount else ()), "--",
    )  # fmt: skip
    try:
        holder = subprocess.Popen(
            [*launcher, sys.executable, "-c", _HOLDER], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, start_new_session=True,
        )  # fmt: skip
    except OSError as e:
        return f"{launcher[0]}: {e.strerror}"
    if _answer(holder, _START_TIMEOUT) != "ready":
        holder.kill()
        lines = holder.communicate()[1].decode("utf-8", "replace").strip().splitlines()
        return lines[-1] if lines else "no answer"
    ns, root = f"/proc/{holder.pid}/ns", f"/proc/{holder.pid}/root"  # its root: / until `show` changes it
    prefix = (
        "nsenter", *((f"--user={ns}/user", "--preserve-credentials") if user else ()), f"--net={ns}/net",
        *((f"--mount={ns}/mnt", f"--root={root}", f"--wd={root}") if mount else ()), "--",
    )  # fmt: skip
    namespace = Namespace("", holder, prefix)
    try:
        check = subprocess.run(
            namespace.enter([sys.executable, "-c", "pass"])[0], capture_output=True, check=False, timeout=60
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        namespace.kill_all()
        return f"nsenter: {getattr(e, 'strerror', None) or e}"
    if check.returncode != 0:
        namespace.kill_all()
        text = check.stderr.decode("utf-8", "replace").strip().splitlines()
        return text[-1] if text else f"nsenter exited {check.returncode}"
    return namespace


@contextmanager
def private_network(no_isolation: bool) -> Iterator[Namespace]:
    """A fresh network namespace for one replay (or, with `no_isolation`, the host's)."""
    if no_isolation:
        yield Namespace("NO network isolation (--no-isolation): commands reach this machine's network")
        return
    reasons: dict[str, None] = {}
    for how, user, mount in _MODES:
        made = _try(user, mount)
        if isinstance(made, Namespace):
            namespace = Namespace(f"{how}: only the cassette proxy is reachable", made.holder, made.prefix)
            break
        reasons[made] = None  # the same reason for every mode is said once
    else:
        raise EnvironmentProblem(
            f"no network isolation is possible here ({'; '.join(reasons)}); run as root, enable unprivileged "
            "user namespaces (sysctl kernel.unprivileged_userns_clone=1), use --backend docker, or pass "
            "--no-isolation to replay with this machine's network"
        )
    try:
        yield namespace
    finally:
        namespace.kill_all()
