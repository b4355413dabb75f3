# Copyright (c) oomguard.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A Debian bookworm guest under qemu: a real kernel whose OOM killer can panic.

The disk image is built once (debootstrap, then ``mkfs.ext4 -d``: no loop mounts) and
cached outside the checkout, keyed by a hash of the package list and the guest's
configuration: ``$OOMGUARD_LAB_CACHE`` or ``${XDG_CACHE_HOME:-~/.cache}/oomguard-lab``.
Each boot runs on a throwaway qcow2 overlay in a temporary directory, so the cached
image never changes; teardown kills only the qemu it started and removes that
directory, leaving nothing but the cache.

The guest is the seed's host: sshd and systemd-udevd at -1000 as Debian packages them,
plus ``ballast.service`` (``OOMScoreAdjust=-1000``) holding ``BALLAST_MIB`` of memory in
a ``ramfs`` and growing without bound once ``/run/ballast.spike`` exists. ramfs pages
cannot be reclaimed, so the kernel reaches the OOM killer in seconds instead of
thrashing page cache. The ballast maps what it holds, so its RSS shows it and the OOM
killer picks it once its score is no longer -1000; its file is unlinked, so the memory
comes back when it dies.

pstore: ``memmap=`` reserves 1 MiB that ``ramoops`` (``pstore_ram``, loaded from the
initramfs) uses for the kernel log; qemu keeps RAM across the guest's reset, so after a
panic (``panic=5`` reboots) ``/sys/fs/pstore`` holds the dmesg of the crash.
``systemd-pstore.service`` is masked so the record stays there (systemd would move it to
``/var/lib/systemd/pstore``).

Networking is qemu's user mode with ``restrict=on``: the guest reaches nothing but the
SSH port forwarded from a free loopback port. Usage (as root)::

    python3 tests/harness/vm.py build                       # prints the cache directory
    python3 tests/harness/vm.py up --state /tmp/lab         # prints the inventory path
    python3 tests/harness/vm.py ssh --state /tmp/lab -- systemctl status ballast
    python3 tests/harness/vm.py down --state /tmp/lab       # idempotent

From Python::

    with Guest.booted() as guest:
        guest.ssh('systemctl show -p OOMScoreAdjust ballast')
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

SUITE = 'bookworm'
PACKAGES = ('systemd-sysv', 'openssh-server', 'python3', 'linux-image-cloud-amd64', 'initramfs-tools',
            'udev', 'kmod', 'iproute2', 'procps', 'sudo')
IMAGE_SIZE = '2G'
MEMORY_MIB = 512
CPUS = 2
BALLAST_MIB = 200
# ramoops: 1 MiB at 256 MiB, far below where qemu puts the initrd (top of RAM) on every boot.
RAMOOPS_ADDRESS = 0x10000000
RAMOOPS_SIZE = 0x100000
RAMOOPS_RECORD = 0x40000
PANIC_REBOOT_SECONDS = 5
KVM_PROBE_SECONDS = 20.0
SSH_TIMEOUT = 420.0
TOOLS = ('debootstrap', 'mkfs.ext4', 'qemu-system-x86_64', 'qemu-img', 'ssh', 'ssh-keygen', 'chroot', 'unshare')
SPIKE_TRIGGER = '/run/ballast.spike'
PANIC_LINES = ('Out of memory and no killable processes', 'Kernel panic - not syncing: System is deadlocked on memory')
CACHE_ENV = 'OOMGUARD_LAB_CACHE'
TMP_ENV = 'OOMGUARD_LAB_TMP'
KERNEL_READY = 'Run /init as init process'

BALLAST = r'''#!/usr/bin/python3
"""Stand-in for a large service at -1000: holds memory in ramfs, grows on a trigger."""
import mmap
import os
import subprocess
import time

MIB = 1 << 20
HOLD = int(os.environ.get("BALLAST_MIB", "200"))
DIRECTORY = "/run/ballast"
TRIGGER = "/run/ballast.spike"

os.makedirs(DIRECTORY, exist_ok=True)
if not os.path.ismount(DIRECTORY):
    subprocess.run(["mount", "-t", "ramfs", "-o", "mode=0700", "ballast", DIRECTORY], check=True)
path = os.path.join(DIRECTORY, "hold.%d" % os.getpid())
fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
os.unlink(path)  # the memory is freed when this process dies
zero = bytes(MIB)
maps = []
size = 0


def grow(mib):
    global size
    for i in range(mib):
        os.pwrite(fd, zero, size + i * MIB)
    maps.append(mmap.mmap(fd, mib * MIB, flags=mmap.MAP_SHARED | mmap.MAP_POPULATE, offset=size))
    size += mib * MIB


grow(HOLD)
print("ballast: holding %d MiB" % HOLD, flush=True)
while not os.path.exists(TRIGGER):
    time.sleep(0.2)
print("ballast: spike", flush=True)
while True:
    grow(8)
'''

BALLAST_UNIT = '''[Unit]
Description=Ballast: a large service configured never to be OOM-killed

[Service]
Environment=BALLAST_MIB=%d
ExecStart=/usr/local/sbin/ballast
OOMScoreAdjust=-1000

[Install]
WantedBy=multi-user.target
''' % BALLAST_MIB

# Files written into the image (path -> (mode, text)).
GUEST_FILES = {
    '/etc/hostname': (0o644, 'lab\n'),
    '/etc/hosts': (0o644, '127.0.0.1\tlocalhost\n127.0.1.1\tlab\n'),
    '/etc/fstab': (0o644, '/dev/vda\t/\text4\trw,errors=remount-ro\t0\t1\n'),
    '/etc/systemd/network/20-lab.network': (0o644, '[Match]\nName=en* eth*\n\n[Network]\nDHCP=ipv4\n'),
    '/etc/initramfs-tools/conf.d/lab.conf': (0o644, 'MODULES=list\n'),
    # ramoops is pstore's RAM backend (CONFIG_PSTORE_RAM=m); it takes its ramoops.* options from the command line.
    '/etc/initramfs-tools/modules': (0o644, 'virtio_pci\nvirtio_blk\nvirtio_net\nramoops\n'),
    '/etc/modules-load.d/pstore.conf': (0o644, 'ramoops\n'),
    # Thrashing prevention (multi-gen LRU): when the working set of the last 5 s cannot be
    # kept, kswapd calls the OOM killer at once instead of re-reading evicted program text for
    # minutes under TCG. The OOM path (and its panic) is the kernel's usual one.
    '/etc/tmpfiles.d/lab-lru.conf': (0o644, 'w /sys/kernel/mm/lru_gen/enabled - - - - y\n'
                                            'w /sys/kernel/mm/lru_gen/min_ttl_ms - - - - 5000\n'),
    '/etc/ssh/sshd_config.d/lab.conf': (0o644, 'PermitRootLogin prohibit-password\nUseDNS no\n'),
    '/usr/local/sbin/ballast': (0o755, BALLAST),
    '/etc/systemd/system/ballast.service': (0o644, BALLAST_UNIT),
}
CHROOT_SCRIPT = '''set -eu
mount -t proc proc /proc
systemd-machine-id-setup >/dev/null
systemctl enable systemd-networkd.service ballast.service >/dev/null 2>&1
systemctl mask systemd-pstore.service systemd-networkd-wait-online.service apt-daily.timer \
    apt-daily-upgrade.timer e2scrub_all.timer fstrim.timer getty@.service serial-getty@.service >/dev/null 2>&1
update-initramfs -u -k all
apt-get clean
rm -rf /var/lib/apt/lists/*
umount /proc
'''
BUILD_VERSION = 1


class VMError(Exception):
    pass


def image_key():
    """The cache key: what the image is made of."""
    digest = hashlib.sha256()
    digest.update(json.dumps({'version': BUILD_VERSION, 'suite': SUITE, 'packages': PACKAGES,
                              'files': sorted(GUEST_FILES.items()), 'chroot': CHROOT_SCRIPT,
                              'size': IMAGE_SIZE}, sort_keys=True).encode())
    return digest.hexdigest()[:16]


def cache_root():
    root = os.environ.get(CACHE_ENV)
    if not root:
        root = os.path.join(os.environ.get('XDG_CACHE_HOME') or os.path.expanduser('~/.cache'), 'oomguard-lab')
    return os.path.abspath(root)


def apt_mirror():
    """The Debian mirror this machine's apt uses (deb822 or one-line sources)."""
    candidates = []
    for path in sorted(_glob('/etc/apt/sources.list.d', '.sources')):
        with open(path) as handle:
            for line in handle:
                if line.startswith('URIs:'):
                    candidates.extend(line.split()[1:])
    for path in ['/etc/apt/sources.list'] + sorted(_glob('/etc/apt/sources.list.d', '.list')):
        if os.path.isfile(path):
            with open(path) as handle:
                for line in handle:
                    fields = line.split()
                    if fields and fields[0] == 'deb':
                        candidates.extend(f for f in fields[1:] if '://' in f)
    for uri in candidates:
        if re.search(r'/debian/?$', uri):
            return uri
    raise VMError('no Debian mirror in /etc/apt/sources.list*: set one (URIs: http://deb.debian.org/debian)')


def _glob(directory, suffix):
    if not os.path.isdir(directory):
        return []
    return [os.path.join(directory, n) for n in os.listdir(directory) if n.endswith(suffix)]


def _run(argv, log=None, **kwargs):
    proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=False, **kwargs)
    if log is not None:
        log.write('$ %s\n%s' % (' '.join(argv), proc.stdout))
    if proc.returncode != 0:
        raise VMError('%s exited %d:\n%s' % (' '.join(argv), proc.returncode, proc.stdout[-4000:]))
    return proc.stdout


def missing_tools():
    return [t for t in TOOLS if shutil.which(t) is None]


@contextlib.contextmanager
def _locked(path):
    with open(path, 'a+') as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _mounts_under(path):
    prefix = os.path.realpath(path).rstrip('/') + '/'
    found = []
    with open('/proc/self/mounts') as handle:
        for line in handle:
            point = line.split()[1].replace('\\040', ' ')
            if point.startswith(prefix):
                found.append(point)
    return found


def remove_tree(path):
    """rm -rf that first unmounts what debootstrap may have left mounted inside (proc, sys, dev)
    and refuses to go on while anything is still mounted there."""
    if not os.path.isdir(path):
        return
    for point in sorted(_mounts_under(path), key=len, reverse=True):
        subprocess.run(['umount', '-l', point], check=False, capture_output=True)
    still = _mounts_under(path)
    if still:
        raise VMError('not removing %s: still mounted inside: %s' % (path, ', '.join(still)))
    shutil.rmtree(path, ignore_errors=True)


class Image:
    """The cached image: ``disk.img``, ``vmlinuz``, ``initrd.img``, the root SSH key."""

    def __init__(self, directory):
        self.directory = directory
        self.disk = os.path.join(directory, 'disk.img')
        self.kernel = os.path.join(directory, 'vmlinuz')
        self.initrd = os.path.join(directory, 'initrd.img')
        self.key = os.path.join(directory, 'id_ed25519')
        with open(os.path.join(directory, 'manifest.json')) as handle:
            self.manifest = json.load(handle)


def build_image(root=None, log_stream=None):
    """The cached image, built first if absent. Returns (Image, seconds spent building or 0.0)."""
    if os.geteuid() != 0:
        raise VMError('building the lab image needs root (debootstrap, chroot)')
    missing = [t for t in ('debootstrap', 'mkfs.ext4', 'chroot', 'unshare', 'ssh-keygen') if shutil.which(t) is None]
    if missing:
        raise VMError('missing tools: %s (run scripts/bootstrap.sh)' % ', '.join(missing))
    root = root or cache_root()
    os.makedirs(root, exist_ok=True)
    final = os.path.join(root, image_key())
    with _locked(os.path.join(root, '.lock')):
        if os.path.isfile(os.path.join(final, 'manifest.json')):
            return Image(final), 0.0
        started = time.monotonic()
        for name in os.listdir(root):  # a build that died half-way, images of an older configuration
            if name.startswith('.build-') or re.match(r'^[0-9a-f]{16}$', name):
                remove_tree(os.path.join(root, name))
        work = tempfile.mkdtemp(prefix='.build-', dir=root)
        try:
            _build(work, log_stream or open(os.devnull, 'w'))
            with open(os.path.join(work, 'manifest.json'), 'w') as handle:
                json.dump({'key': image_key(), 'suite': SUITE, 'packages': PACKAGES,
                           'built_seconds': round(time.monotonic() - started, 1),
                           'built_at': time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}, handle)
            os.rename(work, final)
        except BaseException:
            remove_tree(work)
            raise
        return Image(final), time.monotonic() - started


def _build(work, log):
    rootfs = os.path.join(work, 'rootfs')
    _run(['debootstrap', '--variant=minbase', '--include=' + ','.join(PACKAGES), SUITE, rootfs, apt_mirror()],
         log=log)
    key = os.path.join(work, 'id_ed25519')
    _run(['ssh-keygen', '-q', '-t', 'ed25519', '-N', '', '-C', 'oomguard-lab', '-f', key], log=log)
    for path, (mode, text) in GUEST_FILES.items():
        target = rootfs + path
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with open(target, 'w') as handle:
            handle.write(text)
        os.chmod(target, mode)
    ssh_dir = os.path.join(rootfs, 'root', '.ssh')
    os.makedirs(ssh_dir, mode=0o700, exist_ok=True)
    shutil.copyfile(key + '.pub', os.path.join(ssh_dir, 'authorized_keys'))
    os.chmod(os.path.join(ssh_dir, 'authorized_keys'), 0o600)
    # A private mount namespace: /proc inside the chroot goes away with the process.
    _run(['unshare', '--mount', '--propagation', 'private', 'chroot', rootfs, '/bin/sh', '-c', CHROOT_SCRIPT],
         log=log, env=dict(os.environ, DEBIAN_FRONTEND='noninteractive', LC_ALL='C'))
    boot = os.path.join(rootfs, 'boot')
    kernels = sorted(n for n in os.listdir(boot) if n.startswith('vmlinuz-'))
    if not kernels:
        raise VMError('no kernel in %s after debootstrap' % boot)
    version = kernels[-1][len('vmlinuz-'):]
    shutil.copyfile(os.path.join(boot, 'vmlinuz-' + version), os.path.join(work, 'vmlinuz'))
    shutil.copyfile(os.path.join(boot, 'initrd.img-' + version), os.path.join(work, 'initrd.img'))
    _run(['mkfs.ext4', '-q', '-F', '-L', 'oomguard-lab', '-d', rootfs, os.path.join(work, 'disk.img'), IMAGE_SIZE],
         log=log)
    remove_tree(rootfs)


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def port_listening(port):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(('127.0.0.1', port)) == 0


def kernel_cmdline():
    return ' '.join([
        'root=/dev/vda', 'rw', 'console=ttyS0,115200', 'systemd.firstboot=off', 'mitigations=off',
        'panic=%d' % PANIC_REBOOT_SECONDS,
        # The region ramoops keeps the kernel log in across the reset after a panic.
        'memmap=%#x$%#x' % (RAMOOPS_SIZE, RAMOOPS_ADDRESS),
        'ramoops.mem_address=%#x' % RAMOOPS_ADDRESS, 'ramoops.mem_size=%#x' % RAMOOPS_SIZE,
        'ramoops.record_size=%#x' % RAMOOPS_RECORD, 'ramoops.console_size=0', 'ramoops.ecc=1',
    ])


def _kvm_probe_path(root):
    return os.path.join(root, 'kvm-probe.json')


def _host_boot_id():
    try:
        with open('/proc/sys/kernel/random/boot_id') as handle:
            return handle.read().strip()
    except OSError:
        return ''


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _pid_starttime(pid):
    try:
        with open('/proc/%d/stat' % pid) as handle:
            return int(handle.read().rsplit(')', 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return None


class Guest:
    """One booted guest: its qemu, its temporary directory and its SSH port.

    ``state`` is a directory for the guest's files (overlay, console log, state.json);
    ``state.json`` is written before qemu starts, so ``down`` removes exactly what ``up``
    made even from another process.
    """

    def __init__(self, state=None, image=None, memory_mib=MEMORY_MIB, accel=None, cpus=None):
        self.image = image
        self.cpus = cpus or int(os.environ.get('OOMGUARD_LAB_CPUS') or CPUS)
        self.state = os.path.abspath(state) if state else None
        self.memory_mib = memory_mib
        self.accel_wanted = accel or os.environ.get('OOMGUARD_LAB_ACCEL') or 'auto'
        self.accel = None
        self.port = None
        self.pid = None
        self.starttime = None
        self.owns_state = False
        self.boot_seconds = None

    # paths -------------------------------------------------------------------------
    @property
    def console_path(self):
        return os.path.join(self.state, 'console.log')

    @property
    def inventory_path(self):
        return os.path.join(self.state, 'inventory.ini')

    @property
    def state_file(self):
        return os.path.join(self.state, 'state.json')

    def _save(self):
        record = {'version': 1, 'pid': self.pid, 'starttime': self.starttime, 'port': self.port,
                  'accel': self.accel, 'image': self.image.directory if self.image else None,
                  'owns_state': self.owns_state}
        tmp = self.state_file + '.tmp'
        with open(tmp, 'w') as handle:
            json.dump(record, handle)
        os.rename(tmp, self.state_file)

    @classmethod
    def load(cls, state):
        guest = cls(state)
        with open(guest.state_file) as handle:
            record = json.load(handle)
        guest.pid, guest.starttime, guest.port = record['pid'], record['starttime'], record['port']
        guest.accel, guest.owns_state = record['accel'], record['owns_state']
        if record.get('image') and os.path.isdir(record['image']):
            guest.image = Image(record['image'])
        return guest

    # lifecycle ---------------------------------------------------------------------
    def up(self, timeout=SSH_TIMEOUT):
        if self.image is None:
            self.image = build_image()[0]
        missing = [t for t in ('qemu-system-x86_64', 'qemu-img', 'ssh') if shutil.which(t) is None]
        if missing:
            raise VMError('missing tools: %s (run scripts/bootstrap.sh)' % ', '.join(missing))
        if self.state is None:
            self.state = tempfile.mkdtemp(prefix='oomguard-vm-', dir=lab_tmp())
            self.owns_state = True
        else:
            os.makedirs(self.state, exist_ok=True)
        started = time.monotonic()
        try:
            self._save()
            _run(['qemu-img', 'create', '-q', '-f', 'qcow2', '-F', 'raw', '-b', self.image.disk,
                  os.path.join(self.state, 'overlay.qcow2')])
            for accel in self._accels():
                self._start_qemu(accel)
                if accel == 'kvm' and not self._kvm_works():
                    self._stop_qemu()
                    continue
                break
            self._write_inventory()
            self.wait_for_ssh(timeout)
        except BaseException:
            self.down()
            raise
        self.boot_seconds = time.monotonic() - started
        return self

    def _accels(self):
        if self.accel_wanted in ('tcg', 'kvm'):
            return [self.accel_wanted]
        if not os.access('/dev/kvm', os.R_OK | os.W_OK):
            return ['tcg']
        probe = _kvm_probe_path(os.path.dirname(self.image.directory))
        try:
            with open(probe) as handle:
                known = json.load(handle)
            if known.get('boot_id') == _host_boot_id():
                return ['kvm', 'tcg'] if known.get('kvm') else ['tcg']
        except (OSError, ValueError):
            pass
        return ['kvm', 'tcg']

    def _kvm_works(self):
        """A short probe: a kernel that works under KVM reaches its init within seconds."""
        deadline = time.monotonic() + KVM_PROBE_SECONDS
        works = False
        while time.monotonic() < deadline:
            if not self.qemu_running():
                break
            if KERNEL_READY in self.console():
                works = True
                break
            time.sleep(0.5)
        try:
            with open(_kvm_probe_path(os.path.dirname(self.image.directory)), 'w') as handle:
                json.dump({'boot_id': _host_boot_id(), 'kvm': works}, handle)
        except OSError:
            pass
        return works

    def _start_qemu(self, accel):
        self.port = free_port()
        self.accel = accel
        cpu = ['-accel', 'kvm'] if accel == 'kvm' else ['-accel', 'tcg', '-cpu', 'max']
        if os.path.exists(self.console_path):
            os.unlink(self.console_path)
        argv = ['qemu-system-x86_64', '-name', 'oomguard-lab', '-machine', 'pc'] + cpu + [
            '-m', str(self.memory_mib), '-smp', str(self.cpus),
            '-display', 'none', '-monitor', 'none', '-serial', 'file:' + self.console_path,
            '-kernel', self.image.kernel, '-initrd', self.image.initrd, '-append', kernel_cmdline(),
            '-drive', 'file=%s,if=virtio,format=qcow2,cache=unsafe' % os.path.join(self.state, 'overlay.qcow2'),
            # restrict=on: the guest reaches nothing but this forwarded port.
            '-netdev', 'user,id=net0,restrict=on,hostfwd=tcp:127.0.0.1:%d-:22' % self.port,
            '-device', 'virtio-net-pci,netdev=net0',
        ]
        with open(os.path.join(self.state, 'qemu.log'), 'ab') as log:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)
        self.pid = proc.pid
        self._proc = proc
        self.starttime = _pid_starttime(proc.pid)
        self._save()

    def qemu_running(self):
        if not self.pid:
            return False
        proc = getattr(self, '_proc', None)
        if proc is not None:
            return proc.poll() is None
        return _pid_alive(self.pid) and _pid_starttime(self.pid) == self.starttime

    def _stop_qemu(self):
        if not self.pid:
            return
        if self.qemu_running():
            os.kill(self.pid, signal.SIGTERM)
            deadline = time.monotonic() + 10
            while self.qemu_running() and time.monotonic() < deadline:
                time.sleep(0.1)
            if self.qemu_running():
                os.kill(self.pid, signal.SIGKILL)
        proc = getattr(self, '_proc', None)
        if proc is not None:
            proc.wait()
        else:
            deadline = time.monotonic() + 10
            while self.qemu_running() and time.monotonic() < deadline:
                time.sleep(0.1)
        self.pid = None
        self._proc = None

    def down(self):
        """Kill this guest's qemu (only it) and remove its files. Idempotent."""
        self.close_ssh()
        self._stop_qemu()
        if self.state and os.path.isdir(self.state):
            for name in ('overlay.qcow2', 'console.log', 'qemu.log', 'inventory.ini', 'state.json',
                         'state.json.tmp', 'cm'):
                path = os.path.join(self.state, name)
                if os.path.exists(path):
                    os.unlink(path)
            if self.owns_state:
                shutil.rmtree(self.state, ignore_errors=True)
            else:
                with contextlib.suppress(OSError):
                    os.rmdir(self.state)

    @classmethod
    @contextlib.contextmanager
    def booted(cls, state=None, **kwargs):
        guest = cls(state, **kwargs)
        guest.up()
        try:
            yield guest
        finally:
            guest.down()

    # access ------------------------------------------------------------------------
    @property
    def control_path(self):
        return os.path.join(self.state, 'cm')

    def ssh_argv(self):
        # One multiplexed connection for the harness's many short commands (a new SSH
        # handshake costs the TCG guest a second or more); down() closes it.
        return ['ssh', '-q', '-i', self.image.key, '-p', str(self.port), '-o', 'BatchMode=yes',
                '-o', 'ControlMaster=auto', '-o', 'ControlPath=' + self.control_path, '-o', 'ControlPersist=120',
                '-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null', '-o', 'ConnectTimeout=10',
                '-o', 'ServerAliveInterval=5', '-o', 'ServerAliveCountMax=3', 'root@127.0.0.1']

    def ssh(self, command, check=True, timeout=120):
        proc = subprocess.run(self.ssh_argv() + [command], stdin=subprocess.DEVNULL, capture_output=True,
                              text=True, timeout=timeout, check=False)
        if check and proc.returncode != 0:
            raise VMError('guest command %r exited %d: %s' % (command, proc.returncode, (proc.stderr or proc.stdout)[-2000:]))
        return proc.stdout

    def close_ssh(self):
        """Stop the multiplexing SSH master, if one runs (after a reboot it talks to a dead connection)."""
        if self.state and os.path.exists(self.control_path):
            subprocess.run(['ssh', '-q', '-o', 'ControlPath=' + self.control_path, '-O', 'exit', 'root@127.0.0.1'],
                           stdin=subprocess.DEVNULL, capture_output=True, timeout=20, check=False)

    def ssh_ok(self):
        try:
            return subprocess.run(self.ssh_argv() + ['true'], stdin=subprocess.DEVNULL, capture_output=True,
                                  timeout=20, check=False).returncode == 0
        except subprocess.TimeoutExpired:
            return False

    def wait_for_ssh(self, timeout=SSH_TIMEOUT):
        deadline = time.monotonic() + timeout
        self.close_ssh()
        while time.monotonic() < deadline:
            if not self.qemu_running():
                raise VMError('qemu exited before SSH came up; console tail:\n' + self.console()[-3000:])
            if port_listening(self.port) and self.ssh_ok():
                return
            time.sleep(2)
        raise VMError('no SSH on 127.0.0.1:%d after %.0f s; console tail:\n%s' % (self.port, timeout, self.console()[-3000:]))

    def console(self, offset=0):
        try:
            with open(self.console_path, 'rb') as handle:
                handle.seek(offset)
                return handle.read().decode('utf-8', 'replace')
        except OSError:
            return ''

    def console_size(self):
        try:
            return os.path.getsize(self.console_path)
        except OSError:
            return 0

    def wait_for_console(self, patterns, offset=0, timeout=300):
        """Wait until every pattern (regex) shows on the console after ``offset``; returns that text."""
        deadline = time.monotonic() + timeout
        while True:
            text = self.console(offset)
            if all(re.search(p, text) for p in patterns):
                return text
            if time.monotonic() > deadline:
                raise VMError('console never showed %r within %.0f s; tail:\n%s' % (
                    [p for p in patterns if not re.search(p, text)], timeout, text[-3000:]))
            if not self.qemu_running():
                raise VMError('qemu exited; console tail:\n' + text[-3000:])
            time.sleep(0.5)

    def spike(self):
        """Make ballast grow without bound (returns at once; the guest may not answer afterwards)."""
        self.ssh('touch %s' % SPIKE_TRIGGER, timeout=30)

    def _write_inventory(self):
        with open(self.inventory_path, 'w') as handle:
            handle.write(self.inventory_text())

    def inventory_text(self, group='guests', name='lab', extra=''):
        return ('[%s]\n%s ansible_host=127.0.0.1 ansible_port=%d ansible_user=root ansible_ssh_private_key_file=%s '
                'ansible_python_interpreter=/usr/bin/python3 '
                "ansible_ssh_common_args='-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null' %s\n" % (
                    group, name, self.port or 0, self.image.key, extra))


def lab_tmp():
    """Where guests without a state directory put theirs: ``$OOMGUARD_LAB_TMP`` (``make lab`` gives
    each run its own, so that concurrent runs do not see each other's guests) or the temp dir."""
    return os.environ.get(TMP_ENV) or tempfile.gettempdir()


def _build_running(root):
    try:
        with open(os.path.join(root, '.lock'), 'a+') as handle:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            fcntl.flock(handle, fcntl.LOCK_UN)
        return False
    except BlockingIOError:
        return True


def leftovers(state=None):
    """What lab runs left behind: qemu processes of the lab and their directories, half-built
    images (not one being built now). With ``state``, only what belongs to that state directory;
    without, what belongs to the temporary directories ``Guest`` makes (``oomguard-vm-*`` in
    ``lab_tmp()``)."""
    prefix = os.path.abspath(state) + os.sep if state else os.path.join(lab_tmp(), 'oomguard-vm-')
    found = []
    for pid in os.listdir('/proc'):
        if not pid.isdigit():
            continue
        try:
            with open('/proc/%s/cmdline' % pid, 'rb') as handle:
                argv = handle.read().split(b'\0')
        except OSError:
            continue
        # An SSH master shows as "ssh: <control path> [mux]".
        name = os.path.basename(argv[0].split(b' ')[0]).rstrip(b':')
        if name in (b'qemu-system-x86_64', b'ssh') and any(prefix.encode() in arg for arg in argv):
            found.append('%s pid %s' % (name.decode(), pid))
    if state:
        found.extend(os.path.join(state, n) for n in ('state.json', 'overlay.qcow2') if os.path.exists(os.path.join(state, n)))
    else:
        tmp = lab_tmp()
        found.extend(os.path.join(tmp, n) for n in os.listdir(tmp) if n.startswith('oomguard-vm-'))
    root = cache_root()
    if os.path.isdir(root) and not _build_running(root):
        found.extend(os.path.join(root, n) for n in os.listdir(root) if n.startswith('.build-'))
    return found


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n', 1)[0])
    sub = parser.add_subparsers(dest='command', required=True)
    sub.add_parser('build', help='build the cached image if absent; print its directory')
    up = sub.add_parser('up', help='boot a guest; print its inventory path')
    up.add_argument('--state', required=True)
    up.add_argument('--accel', choices=('auto', 'kvm', 'tcg'), default=None)
    up.add_argument('--inventory-copy', help='also write the inventory here (e.g. beside molecule\'s)')
    down = sub.add_parser('down', help='stop the guest and remove its files (idempotent)')
    down.add_argument('--state', required=True)
    ssh = sub.add_parser('ssh', help='run a command in the guest')
    ssh.add_argument('--state', required=True)
    ssh.add_argument('cmd', nargs=argparse.REMAINDER)
    left = sub.add_parser('leftovers', help='list what lab runs left behind (exit 1 if any)')
    left.add_argument('--state', help='only what belongs to this state directory')
    args = parser.parse_args(argv)
    try:
        if args.command == 'build':
            image, seconds = build_image(log_stream=sys.stderr)
            print(image.directory)
            if seconds:
                print('built in %.1f s' % seconds, file=sys.stderr)
        elif args.command == 'up':
            guest = Guest(args.state, accel=args.accel).up()
            if args.inventory_copy:
                os.makedirs(os.path.dirname(os.path.abspath(args.inventory_copy)), exist_ok=True)
                shutil.copyfile(guest.inventory_path, args.inventory_copy)
            print(guest.inventory_path)
            print('booted (%s) in %.1f s, SSH on 127.0.0.1:%d' % (guest.accel, guest.boot_seconds, guest.port),
                  file=sys.stderr)
        elif args.command == 'down':
            if os.path.exists(os.path.join(args.state, 'state.json')):
                Guest.load(args.state).down()
        elif args.command == 'ssh':
            guest = Guest.load(args.state)
            cmd = args.cmd[1:] if args.cmd[:1] == ['--'] else args.cmd
            return subprocess.run(guest.ssh_argv() + [' '.join(cmd)], check=False).returncode
        elif args.command == 'leftovers':
            found = leftovers(args.state)
            print('\n'.join(found))
            return 1 if found else 0
    except VMError as exc:
        print('vm.py: %s' % exc, file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
