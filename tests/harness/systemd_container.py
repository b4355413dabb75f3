"""Real systemd as PID 1 in a podman container, for tests that need systemctl.

Reusable by any test: ``ensure_image()`` builds the image once (debootstrap minbase bookworm with
systemd, systemd-sysv and python3, then ``podman import``) and caches it keyed by IMAGE_VERSION;
``SystemdContainer`` starts one container, runs commands in it, copies files in and out, and its
``stop()`` removes the container and every piece of podman state this harness created.

Measured constraints of this kind of VM (no CAP_SYS_RESOURCE, hybrid cgroups): crun cannot set
rlimits, so the runtime is runc with cgroupfs, a file events backend and explicit ulimits.
"""

from __future__ import annotations

import fcntl
import os
import shlex
import shutil
import subprocess
import tempfile
import time

IMAGE_VERSION = "bookworm-systemd-python3-v1"
IMAGE_NAME = "localhost/oomguard-systemd:" + IMAGE_VERSION
CACHE_DIR = os.environ.get("OOMGUARD_SYSTEMD_IMAGE_CACHE", "/var/tmp/oomguard-systemd-image")
STORAGE_ROOT = os.path.join(CACHE_DIR, "storage")
RUN_ROOT = "/run/oomguard-systemd-podman"
DEBIAN_MIRROR = os.environ.get("OOMGUARD_DEBIAN_MIRROR", "http://deb.debian.org/debian")
PACKAGES = ("systemd", "systemd-sysv", "python3")
# podman makes these even with --root/--runroot; whichever did not exist before this harness
# was first imported is removed by cleanup_state().
PODMAN_STATE_DIRS = ("/run/libpod", "/run/containers", "/var/lib/containers")
_STATE_BEFORE = frozenset(path for path in PODMAN_STATE_DIRS if os.path.lexists(path))


class HarnessUnavailable(Exception):
    """podman, runc or debootstrap cannot work here; the message says why (tests skip with it)."""


def _podman_base():
    return [
        "podman", "--root", STORAGE_ROOT, "--runroot", RUN_ROOT, "--runtime", "runc",
        "--cgroup-manager=cgroupfs", "--events-backend=file",
    ]


def _run(cmd, check=True, timeout=600, **kwargs):
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False, **kwargs)
    if check and proc.returncode != 0:
        raise RuntimeError("%s failed (rc=%d): %s %s" % (" ".join(cmd[:6]), proc.returncode, proc.stdout[-2000:], proc.stderr[-2000:]))
    return proc


def unavailable_reason():
    """Return why this harness cannot run here, or None when it can."""
    if os.geteuid() != 0:
        return "needs root (podman with runc and debootstrap)"
    for tool in ("podman", "runc", "debootstrap", "tar"):
        if shutil.which(tool) is None:
            return "%s is not installed (Debian package %s)" % (tool, tool)
    return None


def podman(*args, check=True, timeout=600):
    return _run(_podman_base() + list(args), check=check, timeout=timeout)


def image_exists():
    return podman("image", "exists", IMAGE_NAME, check=False).returncode == 0


def ensure_image():
    """Build and import the image unless the cache has it; safe when several tests race."""
    reason = unavailable_reason()
    if reason:
        raise HarnessUnavailable(reason)
    os.makedirs(CACHE_DIR, exist_ok=True)
    with open(os.path.join(CACHE_DIR, "build.lock"), "w", encoding="utf-8") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if image_exists():
            return IMAGE_NAME
        tarball = os.path.join(CACHE_DIR, IMAGE_VERSION + ".tar")
        if not os.path.exists(tarball):
            _build_rootfs_tarball(tarball)
        with open(tarball, "rb") as src:
            proc = subprocess.run(_podman_base() + ["import", "-", IMAGE_NAME], stdin=src, capture_output=True, text=True, timeout=600, check=False)
        if proc.returncode != 0:
            raise HarnessUnavailable("podman import failed: %s" % proc.stderr.strip()[-500:])
    return IMAGE_NAME


def _build_rootfs_tarball(tarball):
    rootfs = tempfile.mkdtemp(prefix="rootfs-", dir=CACHE_DIR)
    try:
        proc = _run(["debootstrap", "--variant=minbase", "bookworm", rootfs, DEBIAN_MIRROR], check=False, timeout=1800)
        if proc.returncode != 0:
            raise HarnessUnavailable("debootstrap failed: %s" % (proc.stderr or proc.stdout).strip()[-500:])
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        _run(["chroot", rootfs, "apt-get", "install", "-y", "-qq", "--no-install-recommends"] + list(PACKAGES), timeout=1800, env=env)
        _run(["chroot", rootfs, "apt-get", "clean"])
        partial = tarball + ".partial"
        _run(["tar", "-C", rootfs, "-cf", partial, "."], timeout=600)
        os.rename(partial, tarball)
    finally:
        _run(["rm", "-rf", "--one-file-system", rootfs], check=False)


def image_fixture():
    """A module-scoped pytest fixture named by the assignment, for test modules::

        image = systemd_container.image_fixture()

    It yields the image name, building it once; it skips the module's tests with the reason when
    podman cannot work here, and after the module removes the podman state (cleanup_state()).
    """
    import pytest

    @pytest.fixture(scope="module")
    def image():
        reason = unavailable_reason()
        if reason:
            pytest.skip("real systemd in podman: " + reason)
        try:
            name = ensure_image()
        except HarnessUnavailable as exc:
            pytest.skip("real systemd in podman: %s" % exc)
        yield name
        cleanup_state()
        assert not os.path.exists(RUN_ROOT)

    return image


class SystemdContainer:
    """One running container with systemd as PID 1; use as a context manager."""

    def __init__(self, name_prefix="oomguard-systemd"):
        self.name = "%s-%d-%d" % (name_prefix, os.getpid(), int(time.time() * 1000) % 10**8)
        self.container_id = None
        self.pythonpath = None

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    def start(self, timeout=60):
        image = ensure_image()
        proc = podman(
            "run", "-d", "--name", self.name, "--systemd=always", "--network=none",
            "--ulimit", "nofile=20000:20000", "--ulimit", "nproc=32768:32768",
            image, "/lib/systemd/systemd",
        )
        self.container_id = proc.stdout.strip()
        deadline = time.time() + timeout
        state = ""
        while time.time() < deadline:
            state = self.exec("systemctl", "is-system-running", check=False).stdout.strip()
            if state in ("running", "degraded"):
                return self
            time.sleep(0.3)
        self.stop()
        raise HarnessUnavailable("systemd in the container did not come up (last state %r)" % state)

    def exec(self, *cmd, check=True, env=None, timeout=120):
        args = ["exec"]
        for key, value in (env or {}).items():
            args += ["--env", "%s=%s" % (key, value)]
        return podman(*(args + [self.container_id] + list(cmd)), check=check, timeout=timeout)

    def copy_in(self, src, dest):
        podman("cp", src, "%s:%s" % (self.container_id, dest))

    def write_file(self, path, content):
        with tempfile.NamedTemporaryFile("w", delete=False, encoding="utf-8") as tmp:
            tmp.write(content)
        try:
            self.exec("mkdir", "-p", os.path.dirname(path))
            self.copy_in(tmp.name, path)
        finally:
            os.unlink(tmp.name)

    def read_file(self, path):
        return self.exec("cat", path).stdout

    def path_exists(self, path):
        return self.exec("test", "-e", path, check=False).returncode == 0

    def show(self, unit, prop):
        return self.exec("systemctl", "show", "-p", prop, "--value", unit).stdout.strip()

    def install_collection(self, repo_root, dest="/opt/oomguard"):
        """Copy the collection's plugins and ansible's module_utils in, so that a module runs with
        ``python3 -m ansible_collections.oomguard.fleet.plugins.modules.<name> <args.json>``."""
        import ansible  # the controller's own ansible-core: same module_utils the modules ship with

        ansible_dir = os.path.dirname(ansible.__file__)
        coll = dest + "/ansible_collections/oomguard/fleet"
        self.exec("mkdir", "-p", coll, dest + "/ansible")
        self.copy_in(os.path.join(repo_root, "plugins"), coll + "/plugins")
        for name in ("__init__.py", "release.py", "_vendor", "module_utils"):
            self.copy_in(os.path.join(ansible_dir, name), dest + "/ansible/" + name)
        for pkg in (dest + "/ansible_collections", dest + "/ansible_collections/oomguard", coll):
            self.exec("touch", pkg + "/__init__.py")
        self.pythonpath = dest
        return dest

    def run_module(self, name, args, env=None):
        """Run one collection module in the container; returns (rc, parsed JSON result or raw output)."""
        import json

        self.write_file("/tmp/oomguard-args.json", json.dumps({"ANSIBLE_MODULE_ARGS": args}))
        environ = dict(env or {}, PYTHONPATH=self.pythonpath)
        proc = self.exec("python3", "-m", "ansible_collections.oomguard.fleet.plugins.modules." + name,
                         "/tmp/oomguard-args.json", env=environ, check=False)
        try:
            return proc.returncode, json.loads(proc.stdout)
        except ValueError:
            return proc.returncode, {"stdout": proc.stdout, "stderr": proc.stderr}

    def ansible_host_vars(self, directory):
        """Inventory variables that make this container an Ansible host without SSH.

        Writes an executable ``python3-in-<container name>`` into ``directory`` (a directory the
        test owns, such as pytest's ``tmp_path``) that runs ``podman exec -i <container> python3``
        with its arguments, and returns ``ansible_connection: local``, ``ansible_pipelining: true``
        and ``ansible_python_interpreter`` pointing at that script. With pipelining the local
        connection pipes each module's AnsiballZ payload to the interpreter's stdin, so modules
        (also those an action plugin runs) execute in the container against its systemd, files
        and procfs. A wrapper script is needed because ansible-core quotes the interpreter as one
        path. What does not work this way: anything that transfers files to the host
        (``copy``, ``template``, ``script``, non-pipelined modules) and ``become`` (it would wrap
        the controller's command; the container runs as root, so set it off). Tasks delegated to
        localhost still run on the controller.
        """
        if self.container_id is None:
            raise RuntimeError("start the container before asking for its inventory variables")
        script = os.path.join(str(directory), "python3-in-" + self.name)
        command = " ".join(shlex.quote(arg) for arg in _podman_base() + ["exec", "-i", self.container_id, "python3"])
        with open(script, "w", encoding="utf-8") as handle:
            handle.write('#!/bin/sh\n# python3 inside podman container %s\nexec %s "$@"\n' % (self.name, command))
        os.chmod(script, 0o755)
        return {"ansible_connection": "local", "ansible_pipelining": True, "ansible_python_interpreter": script}

    def stop(self):
        if self.container_id is None:
            return
        podman("rm", "-f", "-t", "2", self.container_id, check=False, timeout=120)
        self.container_id = None


def cleanup_state():
    """Remove the podman state this harness created: its runroot, and the default state
    directories that did not exist before it ran. The cached image storage is kept on purpose.
    Call it after every container was stopped; returns the paths removed."""
    leftovers = podman("ps", "-a", "-q", check=False).stdout.split() if shutil.which("podman") else []
    if leftovers:
        raise RuntimeError("containers still exist, stop them first: %s" % " ".join(leftovers))
    removed = []
    for path in (RUN_ROOT,) + tuple(p for p in PODMAN_STATE_DIRS if p not in _STATE_BEFORE):
        if os.path.lexists(path):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed
