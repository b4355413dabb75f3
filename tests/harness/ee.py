"""Build the collection's execution environment (execution-environment.yml) for real, and run a
playbook in it the way AWX does (ansible-runner with process isolation in podman).

Public base images cannot be pulled here, so a local base image stands in for the documented one:
debootstrap minbase bookworm with python3, python3-venv (ensurepip, venv: ansible-builder's
scripts need both) and openssh-client, imported with ``podman import``. It is passed to
ansible-builder as the ``EE_BASE_IMAGE`` build argument; ``PKGMGR`` becomes apt-get.

The build runs offline: every wheel it needs is fetched on this machine first (``pip wheel``,
the same index the machine's pip uses) into a directory that ``podman build -v`` mounts in every
RUN step, with a pip.conf (``no-index``, ``find-links``) mounted the same way. Nothing of either
is left in the image. The build gets no network (``--network none``).

Both images are cached by content hash in their own podman storage (``CACHE_DIR``): the base
image by its recipe, the execution environment by the base image id, execution-environment.yml,
the collection's file checksums (FILES.json of its built tarball) and the wheel pins. A warm run
builds nothing. ``prune()`` keeps only the newest tag of each; ``cleanup_state()`` removes the
podman runroot and the default state directories podman made that did not exist before.

Command line: ``python tests/harness/ee.py build`` (prints the image name and times),
``python tests/harness/ee.py prune``.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EE_FILE = os.path.join(TOP, 'execution-environment.yml')
RUNNER_REQUIREMENTS = os.path.join(TOP, 'tests', 'ee', 'requirements.txt')
CACHE_DIR = os.environ.get('OOMGUARD_EE_CACHE', '/var/tmp/oomguard-ee')
STORAGE_ROOT = os.path.join(CACHE_DIR, 'storage')
RUN_ROOT = '/run/oomguard-ee-podman'
DEBIAN_MIRROR = os.environ.get('OOMGUARD_DEBIAN_MIRROR', 'http://deb.debian.org/debian')
BASE_RECIPE = {'suite': 'bookworm', 'variant': 'minbase', 'packages': ['python3', 'python3-venv', 'openssh-client'],
               'recipe': 2}
VENV_PYTHON = '/opt/python/bin/python3'
BASE_REPO = 'localhost/oomguard-ee-base'
EE_REPO = 'localhost/oomguard-fleet-ee'
# ansible-builder's own steps install these in the build (bindep, pyyaml, packaging in its
# builder stage; its default container init, dumb-init, in the final stage); the rest comes from
# execution-environment.yml and the collection's meta/.
BUILDER_PACKAGES = ('bindep', 'pyyaml', 'packaging', 'dumb-init==1.2.5')
PODMAN_STATE_DIRS = ('/run/libpod', '/run/containers', '/var/lib/containers')
_STATE_BEFORE = frozenset(path for path in PODMAN_STATE_DIRS if os.path.lexists(path))


class EEError(Exception):
    """A step of building or running the execution environment failed; the message says which."""


def unavailable_reason():
    if os.geteuid() != 0:
        return 'needs root (podman, debootstrap, chroot)'
    for tool in ('podman', 'runc', 'debootstrap', 'tar'):
        if shutil.which(tool) is None:
            return '%s is not installed (Debian package %s)' % (tool, tool)
    return None


def _run(cmd, timeout=1800, check=True, **kwargs):
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False, **kwargs)
    if check and proc.returncode != 0:
        command = ' '.join(str(c) for c in cmd[:8])
        raise EEError('%s failed (rc=%d): %s %s' % (command, proc.returncode, proc.stdout[-3000:], proc.stderr[-3000:]))
    return proc


def podman_env(base=None):
    """Environment in which a plain ``podman`` (as ansible-builder and ansible-runner call it) uses
    this harness's storage and the runtime settings this kind of VM needs (runc, cgroupfs, file
    events, explicit ulimits: no CAP_SYS_RESOURCE here)."""
    os.makedirs(CACHE_DIR, exist_ok=True)
    storage = os.path.join(CACHE_DIR, 'storage.conf')
    containers = os.path.join(CACHE_DIR, 'containers.conf')
    _write_if_changed(storage, '[storage]\ndriver = "overlay"\ngraphroot = "%s"\nrunroot = "%s"\n' % (STORAGE_ROOT, RUN_ROOT))
    _write_if_changed(containers, '\n'.join([
        '[containers]',
        'default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]',
        '[engine]',
        'runtime = "runc"',
        'cgroup_manager = "cgroupfs"',
        'events_logger = "file"',
        'events_logfile_path = "%s/events.log"' % RUN_ROOT,
        'tmp_dir = "%s/libpod"' % RUN_ROOT,
        '',
    ]))
    env = dict(base if base is not None else os.environ)
    env.update({'CONTAINERS_STORAGE_CONF': storage, 'CONTAINERS_CONF': containers})
    return env


def _write_if_changed(path, text):
    try:
        with open(path, encoding='utf-8') as handle:
            if handle.read() == text:
                return
    except OSError:
        pass
    with open(path + '.tmp', 'w', encoding='utf-8') as handle:
        handle.write(text)
    os.replace(path + '.tmp', path)


def podman(*args, check=True, timeout=600):
    return _run(['podman'] + list(args), check=check, timeout=timeout, env=podman_env())


def image_id(name):
    proc = podman('image', 'inspect', '--format', '{{.Id}}', name, check=False)
    return proc.stdout.strip() if proc.returncode == 0 else None


def _sha(data):
    return hashlib.sha256(data if isinstance(data, bytes) else data.encode('utf-8')).hexdigest()


class _Lock:
    def __init__(self, name):
        os.makedirs(CACHE_DIR, exist_ok=True)
        self.path = os.path.join(CACHE_DIR, name)
        self.handle = None

    def __enter__(self):
        self.handle = open(self.path, 'w', encoding='utf-8')  # pylint: disable=consider-using-with
        fcntl.flock(self.handle, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc):
        self.handle.close()


def base_image_name():
    return '%s:%s' % (BASE_REPO, _sha(json.dumps(BASE_RECIPE, sort_keys=True))[:16])


def _rootfs_tarball():
    """debootstrap's root file system as a tarball, cached by its recipe."""
    recipe = {k: BASE_RECIPE[k] for k in ('suite', 'variant', 'packages')}
    tarball = os.path.join(CACHE_DIR, 'rootfs-%s.tar' % _sha(json.dumps(recipe, sort_keys=True))[:16])
    if os.path.exists(tarball):
        return tarball
    rootfs = tempfile.mkdtemp(prefix='base-rootfs-', dir=CACHE_DIR)
    try:
        _run(['debootstrap', '--variant=' + recipe['variant'], '--include=' + ','.join(recipe['packages']),
              recipe['suite'], rootfs, DEBIAN_MIRROR])
        _run(['chroot', rootfs, 'apt-get', 'clean'])
        _run(['tar', '-C', rootfs, '-cf', tarball + '.partial', '.'])
        os.rename(tarball + '.partial', tarball)
    finally:
        _run(['rm', '-rf', '--one-file-system', rootfs], check=False)
    return tarball


def ensure_base_image():
    """The local base image, built unless cached; returns (name, seconds spent building).

    Debian disables ensurepip for its system Python, which ansible-builder's first step runs, so
    the image's Python is a venv of it (``VENV_PYTHON``, with pip and ensurepip like an upstream
    build), first on PATH; the build gets ``--build-arg PYCMD=`` that interpreter."""
    reason = unavailable_reason()
    if reason:
        raise EEError(reason)
    name = base_image_name()
    with _Lock('base.lock'):
        if image_id(name):
            return name, 0.0
        start = time.monotonic()
        tarball = _rootfs_tarball()
        rootfs = tempfile.mkdtemp(prefix='base-rootfs-', dir=CACHE_DIR)
        try:
            _run(['tar', '-C', rootfs, '-xf', tarball])
            _run(['chroot', rootfs, '/usr/bin/python3', '-m', 'venv', os.path.dirname(os.path.dirname(VENV_PYTHON))])
            tar = subprocess.Popen(['tar', '-C', rootfs, '-c', '.'], stdout=subprocess.PIPE)  # pylint: disable=consider-using-with
            proc = subprocess.run(['podman', 'import', '--change', 'CMD=["/bin/bash"]', '--change',
                                   'ENV PATH=%s:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' % os.path.dirname(VENV_PYTHON),
                                   '-', name], stdin=tar.stdout, capture_output=True, text=True, timeout=900, check=False,
                                  env=podman_env())
            tar.stdout.close()
            tar_rc = tar.wait()
            if proc.returncode != 0 or tar_rc != 0:
                raise EEError('podman import of the base image failed (tar rc %d): %s' % (tar_rc, proc.stderr[-2000:]))
        finally:
            _run(['rm', '-rf', '--one-file-system', rootfs], check=False)
        return name, time.monotonic() - start


def ensure_runner_venv():
    """The side venv .venv-ee with the pinned ansible-runner (tests/ee/requirements.txt); returns its bin."""
    venv = os.path.join(TOP, '.venv-ee')
    _run(['bash', '-c', '. "$1/scripts/venv.sh" && ensure_venv ee "$2" "$3" -r "$4"', 'ensure-venv', TOP, venv,
          os.environ.get('PYTHON', 'python3'), RUNNER_REQUIREMENTS], timeout=900)
    return os.path.join(venv, 'bin')


def _ee_pins():
    """The pip requirements the build installs: execution-environment.yml's ansible-core and
    ansible-runner, ansible-builder's own, and the collection's meta/ee-requirements.txt."""
    import yaml  # pylint: disable=import-outside-toplevel

    with open(EE_FILE, encoding='utf-8') as handle:
        definition = yaml.safe_load(handle)
    deps = definition['dependencies']
    wanted = [deps['ansible_core']['package_pip'], deps['ansible_runner']['package_pip']] + list(BUILDER_PACKAGES)
    with open(os.path.join(TOP, 'meta', 'ee-requirements.txt'), encoding='utf-8') as handle:
        wanted += [line.split('#')[0].strip() for line in handle if line.split('#')[0].strip()]
    return definition, wanted


def ensure_wheels():
    """Every wheel the offline build needs, downloaded once per set of pins; returns the directory.
    The main venv's pins (requirements.txt) and the runner's (tests/ee/requirements.txt) constrain
    the versions, so the image gets what the tests run with."""
    dummy, wanted = _ee_pins()
    constraints = [os.path.join(TOP, 'requirements.txt'), RUNNER_REQUIREMENTS]
    key = _sha(json.dumps(wanted) + ''.join(open(c, encoding='utf-8').read() for c in constraints))[:16]
    target = os.path.join(CACHE_DIR, 'wheels-' + key)
    with _Lock('wheels.lock'):
        if os.path.isfile(os.path.join(target, '.complete')):
            return target
        partial = target + '.partial'
        shutil.rmtree(partial, ignore_errors=True)
        # pip wheel: the few libraries published as sdists only (alibabacloud-tea...) become wheels here.
        cmd = [sys.executable, '-m', 'pip', 'wheel', '-q', '-w', partial]
        for constraint in constraints:
            cmd += ['-c', constraint]
        _run(cmd + wanted, timeout=1800)
        open(os.path.join(partial, '.complete'), 'w', encoding='utf-8').close()
        shutil.rmtree(target, ignore_errors=True)
        os.rename(partial, target)
    return target


def build_collection(dest):
    """``ansible-galaxy collection build`` of the checkout's files (tracked and new, not ignored)
    into dest; returns the tarball's path."""
    src = os.path.join(dest, 'src')
    listed = _run(['git', 'ls-files', '-co', '--exclude-standard'], cwd=TOP).stdout.split('\n')
    for path in listed:
        if path and os.path.isfile(os.path.join(TOP, path)):
            os.makedirs(os.path.dirname(os.path.join(src, path)), exist_ok=True)
            shutil.copy2(os.path.join(TOP, path), os.path.join(src, path))
    galaxy = os.path.join(os.path.dirname(sys.executable), 'ansible-galaxy')
    _run([galaxy, 'collection', 'build', '--force', '--output-path', dest, src], cwd=dest)
    shutil.rmtree(src)
    tarballs = [name for name in os.listdir(dest) if name.startswith('oomguard-fleet-') and name.endswith('.tar.gz')]
    if len(tarballs) != 1:
        raise EEError('expected one collection tarball in %s, found %s' % (dest, tarballs))
    return os.path.join(dest, tarballs[0])


def collection_digest(tarball):
    """The collection's content: MANIFEST.json and FILES.json (a checksum of every file) of the
    tarball, which stay the same when the same files are built again (the tarball's bytes do not)."""
    with tarfile.open(tarball) as tar:
        return _sha(b''.join(tar.extractfile(name).read() for name in ('MANIFEST.json', 'FILES.json')))


def ensure_ee(workdir):
    """Build the execution environment from execution-environment.yml unless the cache has this
    exact content; returns a dict with the image name, whether it was built, and the seconds of
    each step."""
    times = {}
    start = time.monotonic()
    base, times['base_build'] = ensure_base_image()
    wheels = ensure_wheels()
    times['wheels'] = time.monotonic() - start - times['base_build']
    step = time.monotonic()
    context = os.path.join(workdir, 'ee')
    os.makedirs(context)
    tarball = build_collection(context)
    times['collection_build'] = time.monotonic() - step
    definition, dummy = _ee_pins()
    wanted = definition['additional_build_files'][0]['src']
    if os.path.basename(tarball) != wanted:
        raise EEError('execution-environment.yml installs %s but the build made %s: update its version'
                      % (wanted, os.path.basename(tarball)))
    with open(EE_FILE, 'rb') as handle:
        ee_text = handle.read()
    tag = _sha(b'\0'.join([image_id(base).encode(), ee_text, collection_digest(tarball).encode(),
                          '\n'.join(sorted(os.listdir(wheels))).encode()]))[:16]
    name = '%s:%s' % (EE_REPO, tag)
    built = False
    with _Lock('ee.lock'):
        if not image_id(name):
            step = time.monotonic()
            shutil.copy(EE_FILE, os.path.join(context, 'execution-environment.yml'))
            pipconf = os.path.join(context, 'pip')
            os.makedirs(pipconf)
            with open(os.path.join(pipconf, 'pip.conf'), 'w', encoding='utf-8') as handle:
                handle.write('[global]\nno-index = true\nfind-links = /oomguard-wheels\n')
            builder = os.path.join(os.path.dirname(sys.executable), 'ansible-builder')
            extra = '--network=none -v %s:/oomguard-wheels:ro -v %s:/etc/xdg/pip:ro' % (wheels, pipconf)
            _run([builder, 'build', '--container-runtime', 'podman', '-f', os.path.join(context, 'execution-environment.yml'),
                  '-c', os.path.join(context, 'context'), '-t', name, '--build-arg', 'EE_BASE_IMAGE=' + base,
                  '--build-arg', 'PKGMGR=/usr/bin/apt-get', '--build-arg', 'PYCMD=' + VENV_PYTHON,
                  '--extra-build-cli-args', extra, '--prune-images', '-v', '2'],
                 cwd=context, env=podman_env(), timeout=3600)
            times['ee_build'] = time.monotonic() - step
            built = True
    prune()
    times['total'] = time.monotonic() - start
    return {'image': name, 'base': base, 'built': built, 'times': times}


def prune():
    """Keep the newest base image and execution environment only, and the layer cache they use."""
    for repo, keep in ((BASE_REPO, base_image_name()), (EE_REPO, None)):
        proc = podman('images', '--format', '{{.Repository}}:{{.Tag}} {{.Id}} {{.CreatedAt}}', '--filter', 'reference=' + repo, check=False)
        rows = sorted((line.split(' ', 2) for line in proc.stdout.splitlines() if line.strip()), key=lambda r: r[2], reverse=True)
        keep = keep or (rows[0][0] if rows else None)
        for ref, dummy, dummy2 in rows:
            if ref != keep:
                podman('rmi', ref, check=False)
    podman('image', 'prune', '-f', check=False)
    # The build's layer cache: keep the intermediate images the kept images descend from (the EE's
    # base stage, reused when only the collection changed); older builds' stages go.
    every = podman('images', '-a', '--format', '{{.ID}}', check=False).stdout.split()
    parents = {}
    if every:
        for line in podman('image', 'inspect', '--format', '{{.Id}} {{.Parent}}', *every, check=False).stdout.splitlines():
            image, dummy, parent = line.partition(' ')
            parents[image[:12]] = parent.strip()[:12]
    keep_ids = set()
    for image in podman('images', '--format', '{{.ID}}', check=False).stdout.split():
        image = image[:12]
        while image and image not in keep_ids:
            keep_ids.add(image)
            image = parents.get(image, '')
    for image in reversed(every):  # podman lists the newest first; a child goes before its parent
        if image[:12] not in keep_ids:
            podman('rmi', image, check=False)


def runner_private_data_dir(path, fleet, playbook_text, extravars, ssh_key):
    """Lay out an ansible-runner private data directory as AWX does for a job: the project with the
    playbook, the inventory, extra vars and the machine credential's key in env/ssh_key (runner
    hands it to ssh-agent inside the container). Host keys are checked against the fleet's."""
    import yaml  # pylint: disable=import-outside-toplevel

    for sub in ('project', 'inventory', 'env'):
        os.makedirs(os.path.join(path, sub), exist_ok=True)
    with open(os.path.join(path, 'project', 'playbook.yml'), 'w', encoding='utf-8') as handle:
        handle.write(playbook_text)
    shutil.copy(fleet.known_hosts_path, os.path.join(path, 'known_hosts'))
    hosts = {h['name']: {'ansible_host': h['address']} for h in fleet.hosts}
    inventory = {'all': {'children': {'fleet': {'hosts': hosts, 'vars': {
        'ansible_connection': 'ssh', 'ansible_user': 'root', 'ansible_ssh_pipelining': True,
        'ansible_python_interpreter': '/usr/bin/python3',
        'ansible_ssh_common_args': '-o UserKnownHostsFile=/runner/known_hosts -o GlobalKnownHostsFile=/dev/null '
                                   '-o StrictHostKeyChecking=yes -o BatchMode=yes'}}}}}
    with open(os.path.join(path, 'inventory', 'hosts.yml'), 'w', encoding='utf-8') as handle:
        yaml.safe_dump(inventory, handle)
    with open(os.path.join(path, 'env', 'extravars'), 'w', encoding='utf-8') as handle:
        yaml.safe_dump(extravars, handle)
    with open(ssh_key, encoding='ascii') as src, open(os.path.join(path, 'env', 'ssh_key'), 'w', encoding='ascii') as dst:
        dst.write(src.read())
    os.chmod(os.path.join(path, 'env', 'ssh_key'), 0o600)
    return path


def run_in_ee(image, private_data_dir, ident='job', forks=10, timeout=1800):
    """``ansible-runner run`` with --process-isolation in podman and the image, as an AWX job.

    Two container options beyond AWX's defaults: ``--network=host``, because the namespace fleet's
    hosts are reachable only from this machine's network namespace (its bridge has no route out and
    no NAT), which a container's own namespace cannot reach; and ``--user=root``, because podman
    runs as root here (AWX runs it rootless as the job's user, who owns the mounted directory),
    so the image's user 1000 could not write the root-owned /runner."""
    runner = os.path.join(ensure_runner_venv(), 'ansible-runner')
    cmd = [runner, 'run', private_data_dir, '--ident', ident, '-p', 'playbook.yml', '--process-isolation',
           '--process-isolation-executable', 'podman', '--container-image', image,
           '--container-option=--network=host', '--container-option=--user=root',
           '--cmdline', '--forks %d' % forks]
    start = time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False, env=podman_env())
    proc.seconds = time.monotonic() - start
    return proc


def containers():
    """Ids of every container in this harness's storage (none after a clean run)."""
    return podman('ps', '-a', '-q', check=False).stdout.split()


def cleanup_state():
    """Remove the podman runroot and the default state directories podman made that did not
    exist before this module was imported. The image storage (the cache) stays."""
    left = containers()
    if left:
        raise EEError('containers still exist, remove them first: %s' % ' '.join(left))
    removed = []
    for path in (RUN_ROOT,) + tuple(p for p in PODMAN_STATE_DIRS if p not in _STATE_BEFORE):
        if os.path.lexists(path):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


def main(argv=None):
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ['build']:
        with tempfile.TemporaryDirectory(prefix='oomguard-ee-') as work:
            print(json.dumps(ensure_ee(work), indent=1))
        return 0
    if args[:1] == ['prune']:
        prune()
        return 0
    print('usage: ee.py build | prune', file=sys.stderr)
    return 2


if __name__ == '__main__':
    sys.exit(main())
