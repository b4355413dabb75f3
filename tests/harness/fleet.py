# Copyright (c) oomguard.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A throwaway fleet of SSH hosts on one Linux machine, built from namespaces.

Each host is a network namespace joined to a bridge by a veth pair, plus PID, mount
and UTS namespaces (``unshare --mount-proc``) running ``tini`` -> ``sshd``. The hosts
share the real kernel, its sysctls and its OOM killer: never apply sysctls to them.

Every resource is written to ``<state>/state.json`` *before* it is made, so ``down``
(also run automatically when ``up`` fails) removes exactly what was made, and nothing
that was not. Usage (as root)::

    python3 tests/harness/fleet.py up --hosts 3 --state /tmp/fleet
    python3 tests/harness/fleet.py inventory --state /tmp/fleet      # prints the inventory path
    python3 tests/harness/fleet.py down --state /tmp/fleet           # idempotent

From Python::

    with Fleet('/tmp/fleet').running(hosts=3) as fleet:
        subprocess.run(['ansible', 'all', '-i', fleet.inventory_path, '-m', 'ping'])
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import fcntl
import ipaddress
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid

STATE_VERSION = 1
DEFAULT_NETWORK = '10.213.0.0/16'
DEFAULT_PREFIX = 'ogf'
MAX_HOSTS = 250
MAX_SLOTS = 64
LOCK_PATH = '/run/lock/oomguard-fleet.lock'
READY_TIMEOUT = 20.0
DRAIN_TIMEOUT = 10.0
TOOLS = ('ip', 'unshare', 'tini', 'ssh-keygen', 'ssh')
SSHD = '/usr/sbin/sshd'
PYTHON = '/usr/bin/python3'

# Runs as PID 1's child inside the host's namespaces. Everything it mounts lives in
# this mount namespace only (unshare makes propagation private) and goes with it.
# /etc, /var/lib and /root get a per-host writable layer over the real ones (so the
# state directory stays readable even under /root); /run is a fresh tmpfs.
# $1 host name, $2 sshd_config path.
INIT_SCRIPT = r'''
set -eu
mount -t tmpfs -o mode=0755,size=64m oomguard-run /run
mkdir -p /run/sshd
for dir in /etc /var/lib /root; do
    layer=/run/oomguard/$(echo "$dir" | tr / _)
    mkdir -p "$layer/upper" "$layer/work"
    mount -t overlay -o "lowerdir=$dir,upperdir=$layer/upper,workdir=$layer/work" "oomguard$(echo "$dir" | tr / -)" "$dir"
done
# The collection's own state (baselines, journals) starts empty on every host.
mkdir -p /var/lib/oomguard
mount -t tmpfs -o mode=0700,size=16m oomguard-state /var/lib/oomguard
# The kernel is the machine's: sysctls, SysRq (f runs the OOM killer) and sysfs are
# read-only here, so a play cannot change the machine the tests run on.
for path in /proc/sys /proc/sysrq-trigger /sys; do
    [ -e "$path" ] || continue
    mount --bind "$path" "$path"
    mount -o remount,bind,ro "$path"
done
hostname "$1"
echo "$1" > /etc/hostname
printf '127.0.1.1\t%s\n' "$1" >> /etc/hosts
exec /usr/sbin/sshd -D -e -f "$2"
'''

SSHD_CONFIG = '''\
# sshd for fleet host {name}; generated, removed by `fleet.py down`.
ListenAddress {address}
Port 22
HostKey {host_key}
AuthorizedKeysFile {authorized_keys}
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
# The state directory may sit under a world-writable /tmp.
StrictModes no
UsePAM no
UseDNS no
PrintMotd no
PidFile none
MaxStartups 200:30:400
MaxSessions 100
LogLevel INFO
Subsystem sftp /usr/lib/openssh/sftp-server
'''


class FleetError(Exception):
    """A fleet could not be brought up or torn down; the message says what to do."""


def _run(argv, check=True):
    proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, check=False)
    if check and proc.returncode != 0:
        raise FleetError('command failed (rc=%d): %s: %s' % (proc.returncode, ' '.join(argv), proc.stderr.strip()))
    return proc


def _ip_json(*args):
    out = _run(['ip', '-j'] + list(args)).stdout.strip()
    return json.loads(out) if out else []


def bridge_name(prefix, slot):
    return '%s%dbr' % (prefix, slot)


def link_exists(name):
    return _run(['ip', 'link', 'show', 'dev', name], check=False).returncode == 0


def link_alias(name):
    """The interface's alias: None when it does not exist, '' when it has none."""
    proc = _run(['ip', '-j', 'link', 'show', 'dev', name], check=False)
    if proc.returncode:
        return None
    return json.loads(proc.stdout)[0].get('ifalias', '')


def netns_list():
    return {entry['name'] for entry in _ip_json('netns', 'list')}


def netns_pids(netns):
    proc = _run(['ip', 'netns', 'pids', netns], check=False)
    return [int(p) for p in proc.stdout.split()] if proc.returncode == 0 else []


def netns_processes(namespaces):
    """PIDs of the processes in each named network namespace, in one pass over /proc."""
    inodes = {}
    for name in namespaces:
        with contextlib.suppress(OSError):
            inodes[os.stat('/run/netns/%s' % name).st_ino] = name
    found = {name: [] for name in namespaces}
    for entry in os.listdir('/proc'):
        if entry.isdigit():
            try:
                inode = os.stat('/proc/%s/ns/net' % entry).st_ino
            except OSError:
                continue  # exited meanwhile
            if inode in inodes:
                found[inodes[inode]].append(int(entry))
    return found


def _ip_batch(commands):
    """Run ``ip`` commands in one process; what failed is found by checking afterwards."""
    if commands:
        subprocess.run(['ip', '-force', '-batch', '-'], input='\n'.join(commands) + '\n', text=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)


def process_starttime(pid):
    """Field 22 of /proc/<pid>/stat (clock ticks since boot): tells a reused PID from ours."""
    try:
        with open('/proc/%d/stat' % pid, encoding='ascii', errors='replace') as handle:
            data = handle.read()
    except OSError:
        return None
    fields = data[data.rfind(')') + 2:].split()
    if fields[0] == 'Z':
        return None
    return int(fields[19])


def route_conflicts(subnet):
    """Routes and addresses on this machine (any namespace-visible table) that overlap ``subnet``."""
    conflicts = []
    for route in _ip_json('route', 'show', 'table', 'all'):
        dst = route.get('dst', '')
        if dst in ('default', '') or ':' in dst or route.get('type') in ('broadcast', 'local'):
            continue
        try:
            net = ipaddress.ip_network(dst, strict=False)
        except ValueError:
            continue
        if net.overlaps(subnet):
            conflicts.append('route %s dev %s' % (dst, route.get('dev', '?')))
    for link in _ip_json('addr', 'show'):
        for addr in link.get('addr_info', []):
            if addr.get('family') != 'inet':
                continue
            if ipaddress.ip_address(addr['local']) in subnet:
                conflicts.append('address %s on %s' % (addr['local'], link.get('ifname')))
    return conflicts


class Fleet:
    """One fleet, described by the state directory that records it."""

    def __init__(self, state_dir):
        self.state_dir = os.path.abspath(state_dir)
        self.state_path = os.path.join(self.state_dir, 'state.json')
        self.inventory_path = os.path.join(self.state_dir, 'inventory.yml')
        self.key_path = os.path.join(self.state_dir, 'id_ed25519')
        self.known_hosts_path = os.path.join(self.state_dir, 'known_hosts')
        self.control_dir = os.path.join(self.state_dir, 'cp')
        self.state = None
        self._children = {}  # pid -> Popen, for the hosts this process started

    # -- state ----------------------------------------------------------------------
    def load(self):
        try:
            with open(self.state_path, encoding='utf-8') as handle:
                self.state = json.load(handle)
        except FileNotFoundError:
            self.state = None
        except ValueError as exc:
            raise FleetError('%s is not a fleet state file (%s); remove it by hand after checking `ip netns list`'
                             % (self.state_path, exc)) from exc
        return self.state

    def _save(self):
        tmp = self.state_path + '.tmp'
        with open(tmp, 'w', encoding='utf-8') as handle:
            json.dump(self.state, handle, indent=1)
        os.replace(tmp, self.state_path)

    @property
    def hosts(self):
        return list((self.state or {}).get('hosts', []))

    # -- up ---------------------------------------------------------------------------
    def up(self, hosts, slot=None, prefix=DEFAULT_PREFIX, network=DEFAULT_NETWORK, extra_inventory=None, name_format='node%02d'):
        """Build the fleet; on any failure tear down what was made and re-raise.

        ``name_format`` makes each inventory name from the host's index (1 up): two fleets used
        together need different ones.
        """
        self._preflight(hosts, prefix)
        if os.path.commonpath([self.state_dir, '/run']) == '/run':
            raise FleetError('the state directory %s is under /run, which each host replaces with its own tmpfs; '
                             'use a directory under /tmp, /var/tmp or /root' % self.state_dir)
        os.makedirs(self.state_dir, mode=0o700, exist_ok=True)
        if self.load() and self.state.get('status') != 'down':
            raise FleetError('%s already records a fleet (status %s); run `fleet.py down --state %s` first'
                             % (self.state_dir, self.state.get('status'), self.state_dir))
        self.state = {'version': STATE_VERSION, 'status': 'creating', 'hosts': [], 'bridge': None,
                      'prefix': prefix, 'extra_inventory': extra_inventory, 'name_format': name_format,
                      'owner': 'oomguard-fleet:%s' % uuid.uuid4().hex[:16]}
        self._save()
        try:
            self._claim_slot(slot, prefix, network)
            self._make_keys()
            children = []
            for index in range(1, hosts + 1):
                children.append(self._make_host(index))
            self._wait_ready(children)
            self._write_known_hosts()
            self.write_inventory(extra_inventory)
            self.state['status'] = 'up'
            self._save()
        except BaseException:
            with contextlib.suppress(Exception):
                self.down()
            raise
        return self

    @staticmethod
    def _preflight(hosts, prefix):
        if os.geteuid() != 0:
            raise FleetError('the fleet needs root (namespaces, veths, a bridge); run it as root')
        if not 1 <= hosts <= MAX_HOSTS:
            raise FleetError('--hosts must be between 1 and %d, got %d' % (MAX_HOSTS, hosts))
        if not prefix.isalnum() or len(prefix) > 5:
            raise FleetError('--prefix must be 1-5 letters or digits (interface names are limited to 15 characters)')
        missing = [tool for tool in TOOLS if shutil.which(tool) is None]
        missing += [path for path in (SSHD, PYTHON) if not os.access(path, os.X_OK)]
        if missing:
            raise FleetError('missing tools: %s; run `make bootstrap` (Debian packages iproute2 util-linux tini '
                             'openssh-server openssh-client python3)' % ', '.join(missing))

    def _slot_free(self, slot, prefix, subnet, namespaces):
        """Why ``slot`` cannot be used, or an empty list."""
        reasons = []
        ours = re.compile(r'^%s%d(br|v[0-9]+)$' % (re.escape(prefix), slot))
        links = sorted(link['ifname'] for link in _ip_json('link', 'show') if ours.match(link.get('ifname', '')))
        if links:
            reasons.append('interfaces exist: %s' % ', '.join(links[:5]))
        ours = re.compile(r'^%s%dh[0-9]+$' % (re.escape(prefix), slot))
        clash = sorted(ns for ns in namespaces if ours.match(ns))
        if clash:
            reasons.append('network namespaces exist: %s' % ', '.join(clash[:5]))
        reasons.extend(route_conflicts(subnet))
        return reasons

    def _claim_slot(self, slot, prefix, network):
        try:
            base = ipaddress.ip_network(network)
        except ValueError as exc:
            raise FleetError('--network %s is not a network: %s' % (network, exc)) from exc
        if base.version != 4 or base.prefixlen > 24:
            raise FleetError('--network must be an IPv4 network of /24 or larger, got %s' % network)
        subnets = list(base.subnets(new_prefix=24))[:MAX_SLOTS]
        os.makedirs(os.path.dirname(LOCK_PATH), exist_ok=True)
        # The lock covers choose-and-create, so two fleets started at once get two slots.
        with open(LOCK_PATH, 'a', encoding='ascii') as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            namespaces = netns_list()
            if slot is not None:
                if not 0 <= slot < len(subnets):
                    raise FleetError('--slot must be between 0 and %d for network %s' % (len(subnets) - 1, network))
                reasons = self._slot_free(slot, prefix, subnets[slot], namespaces)
                if reasons:
                    raise FleetError('fleet slot %d (%s, bridge %s) is in use: %s; pick another --slot, '
                                     'or tear the other fleet down with `fleet.py down --state DIR`'
                                     % (slot, subnets[slot], bridge_name(prefix, slot), '; '.join(reasons)))
            else:
                slot = next((i for i in range(len(subnets)) if not self._slot_free(i, prefix, subnets[i], namespaces)),
                            None)
                if slot is None:
                    raise FleetError('no free fleet slot in %s: every /24 clashes with a route or an existing fleet '
                                     '(%s: %s); pass --network with a free private range'
                                     % (network, subnets[0], '; '.join(self._slot_free(0, prefix, subnets[0], namespaces))))
            subnet = subnets[slot]
            bridge = bridge_name(prefix, slot)
            self.state.update({'slot': slot, 'subnet': str(subnet), 'bridge': bridge,
                               'gateway': str(subnet[1])})
            self._save()
            _run(['ip', 'link', 'add', bridge, 'type', 'bridge'])
            # Marks the slot as this fleet's: `down` of an older state file that names the
            # same slot leaves a newer fleet's bridge, veths and namespaces alone.
            _run(['ip', 'link', 'set', bridge, 'alias', self.state['owner']])
        _run(['ip', 'addr', 'add', '%s/24' % subnet[1], 'dev', bridge])
        _run(['ip', 'link', 'set', bridge, 'up'])

    def _make_keys(self):
        for path in (self.key_path, os.path.join(self.state_dir, 'ssh_host_ed25519_key')):
            for old in (path, path + '.pub'):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(old)
            _run(['ssh-keygen', '-q', '-t', 'ed25519', '-N', '', '-C', 'oomguard-fleet', '-f', path])
        shutil.copyfile(self.key_path + '.pub', os.path.join(self.state_dir, 'authorized_keys'))
        os.makedirs(self.control_dir, mode=0o700, exist_ok=True)
        os.makedirs(os.path.join(self.state_dir, 'hosts'), mode=0o700, exist_ok=True)

    def _make_host(self, index):
        slot, prefix = self.state['slot'], self.state['prefix']
        subnet = ipaddress.ip_network(self.state['subnet'])
        host = {'name': self.state.get('name_format', 'node%02d') % index, 'netns': '%s%dh%d' % (prefix, slot, index),
                'veth': '%s%dv%d' % (prefix, slot, index), 'address': str(subnet[index + 1]),
                'pid': None, 'starttime': None}
        self.state['hosts'].append(host)
        self._save()
        _run(['ip', 'netns', 'add', host['netns']])
        _run(['ip', 'link', 'add', host['veth'], 'type', 'veth', 'peer', 'name', 'eth0', 'netns', host['netns']])
        _run(['ip', 'link', 'set', host['veth'], 'master', self.state['bridge'], 'up'])
        _run(['ip', '-n', host['netns'], 'addr', 'add', '%s/24' % host['address'], 'dev', 'eth0'])
        _run(['ip', '-n', host['netns'], 'link', 'set', 'eth0', 'up'])
        _run(['ip', '-n', host['netns'], 'link', 'set', 'lo', 'up'])
        host_dir = os.path.join(self.state_dir, 'hosts')
        config = os.path.join(host_dir, host['name'] + '.sshd_config')
        with open(config, 'w', encoding='utf-8') as handle:
            handle.write(self.sshd_config_text(host))
        with open(os.path.join(host_dir, host['name'] + '.log'), 'ab') as log:
            # `ip netns exec` and `unshare` exec in place, so the PID is unshare's; with
            # --kill-child its death takes the host's PID namespace down with it.
            child = subprocess.Popen(  # pylint: disable=consider-using-with
                ['ip', 'netns', 'exec', host['netns'], 'unshare', '--pid', '--mount', '--uts', '--fork',
                 '--kill-child', '--mount-proc', 'tini', '-s', '--', '/bin/sh', '-c', INIT_SCRIPT,
                 'fleet-init', host['name'], config],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True, close_fds=True)
        host['pid'] = child.pid
        self._children[child.pid] = child
        host['starttime'] = process_starttime(child.pid)
        self._save()
        return child

    def sshd_config_text(self, host):
        return SSHD_CONFIG.format(name=host['name'], address=host['address'],
                                  host_key=os.path.join(self.state_dir, 'ssh_host_ed25519_key'),
                                  authorized_keys=os.path.join(self.state_dir, 'authorized_keys'))

    def _wait_ready(self, children):
        deadline = time.monotonic() + READY_TIMEOUT
        pending = dict(zip((h['name'] for h in self.state['hosts']), children))
        while pending:
            for name, child in list(pending.items()):
                host = self.host(name)
                if child.poll() is not None:
                    raise FleetError('host %s (netns %s) exited with rc=%s before sshd listened; its log:\n%s'
                                     % (name, host['netns'], child.returncode, self.log_tail(name)))
                with contextlib.suppress(OSError), socket.create_connection((host['address'], 22), timeout=0.5):
                    del pending[name]
            if pending and time.monotonic() > deadline:
                raise FleetError('sshd did not listen within %.0fs on %s; first log:\n%s'
                                 % (READY_TIMEOUT, ', '.join(sorted(pending)), self.log_tail(sorted(pending)[0])))
            if pending:
                time.sleep(0.05)

    def host(self, name):
        for host in self.hosts:
            if host['name'] == name:
                return host
        raise KeyError(name)

    def log_tail(self, name, lines=20):
        try:
            with open(os.path.join(self.state_dir, 'hosts', name + '.log'), encoding='utf-8', errors='replace') as log:
                return ''.join(log.readlines()[-lines:])
        except OSError as exc:
            return '(no log: %s)' % exc

    def _write_known_hosts(self):
        with open(os.path.join(self.state_dir, 'ssh_host_ed25519_key.pub'), encoding='ascii') as handle:
            keytype, key = handle.read().split()[:2]
        with open(self.known_hosts_path, 'w', encoding='ascii') as handle:
            for host in self.hosts:
                handle.write('%s %s %s\n' % (host['address'], keytype, key))

    def ssh_args(self):
        """Options for plain ``ssh`` (and Ansible's common args) to reach fleet hosts."""
        return ['-o', 'UserKnownHostsFile=%s' % self.known_hosts_path, '-o', 'GlobalKnownHostsFile=/dev/null',
                '-o', 'StrictHostKeyChecking=yes', '-o', 'IdentitiesOnly=yes', '-o', 'BatchMode=yes']

    def inventory_text(self):
        lines = ['# Fleet inventory; generated by tests/harness/fleet.py, removed by `fleet.py down`.',
                 'all:', '  children:', '    fleet:', '      hosts:']
        for host in self.hosts:
            lines += ['        %s:' % host['name'], '          ansible_host: %s' % host['address'],
                      '          oomguard_fleet_netns: %s' % host['netns']]
        fleet_vars = {
            'ansible_connection': 'ssh',
            'ansible_user': 'root',
            'ansible_ssh_private_key_file': self.key_path,
            'ansible_ssh_common_args': ' '.join(self.ssh_args()),
            'ansible_ssh_pipelining': True,
            'ansible_control_path_dir': self.control_dir,
            'ansible_python_interpreter': PYTHON,
            'oomguard_fleet_state_dir': self.state_dir,
        }
        lines.append('      vars:')
        # JSON scalars are valid YAML scalars, and quoting keeps paths with odd characters safe.
        lines += ['        %s: %s' % (key, json.dumps(value)) for key, value in fleet_vars.items()]
        return '\n'.join(lines) + '\n'

    def write_inventory(self, extra=None):
        text = self.inventory_text()
        for path in [self.inventory_path] + ([extra] if extra else []):
            with open(path, 'w', encoding='utf-8') as handle:
                handle.write(text)

    # -- down -------------------------------------------------------------------------
    def down(self):
        """Remove everything the state file records; safe to run again and on a half-made fleet."""
        if self.load() is None or self.state.get('status') == 'down':
            return []
        problems = []
        self.state['status'] = 'deleting'
        self._save()
        self._close_ssh_masters()
        self._kill_hosts(problems)
        alias = link_alias(self.state['bridge']) if self.state.get('bridge') else None
        if alias not in (None, '', self.state.get('owner')):
            # Our bridge is gone and another fleet took the slot: its names are not ours.
            self.state.update({'status': 'down', 'note': 'slot reused by %s; nothing of it was touched' % alias})
            self._save()
            return self.hosts
        ours = {host['netns'] for host in self.hosts} & netns_list()
        self._drain_netns(ours, problems)
        _ip_batch(['netns del %s' % name for name in sorted(ours)])
        # A deleted namespace's veth peer goes away asynchronously; delete ours now.
        links = {link['ifname'] for link in _ip_json('link', 'show')}
        doomed = [host['veth'] for host in self.hosts if host['veth'] in links]
        if self.state.get('bridge') in links:
            doomed.append(self.state['bridge'])
        _ip_batch(['link del %s' % name for name in doomed])
        left = sorted(ours & netns_list())
        links = {link['ifname'] for link in _ip_json('link', 'show')}
        left += [name for name in doomed if name in links]
        if left:
            problems.append('could not delete: %s' % ', '.join(left))
        if problems:
            self.state['status'] = 'down-incomplete'
            self._save()
            raise FleetError('teardown incomplete (run `fleet.py down --state %s` again): %s'
                             % (self.state_dir, '; '.join(problems)))
        for path in (self.inventory_path, self.state.get('extra_inventory')):
            if path:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)
        shutil.rmtree(self.control_dir, ignore_errors=True)
        self.state['status'] = 'down'
        self._save()
        return self.hosts

    def _close_ssh_masters(self):
        """Ask ControlPersist masters that Ansible left in our control dir to exit."""
        if not os.path.isdir(self.control_dir):
            return
        for sock in os.listdir(self.control_dir):
            _run(['ssh', '-o', 'ControlPath=%s' % os.path.join(self.control_dir, sock), '-O', 'exit', 'fleet'],
                 check=False)

    def _kill_hosts(self, problems):
        """SIGKILL every recorded host process that is still ours, then wait for them all."""
        killed = []
        for host in self.hosts:
            pid, starttime = host.get('pid'), host.get('starttime')
            child = self._children.pop(pid, None) if pid else None
            if not pid or starttime is None or process_starttime(pid) != starttime:
                if child is not None:
                    child.poll()  # reap our own child if it died by itself
                continue  # never started, already gone, or the PID now belongs to someone else
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            killed.append((host, child))
        deadline = time.monotonic() + DRAIN_TIMEOUT
        for host, child in killed:
            if child is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    child.wait(timeout=max(0.1, deadline - time.monotonic()))
                    continue
            else:
                # Started by another process (the `up` command line): its new parent reaps it.
                while time.monotonic() < deadline and process_starttime(host['pid']) == host['starttime']:
                    time.sleep(0.02)
                if process_starttime(host['pid']) != host['starttime']:
                    continue
            problems.append('process %d (host %s) did not exit after SIGKILL' % (host['pid'], host['name']))

    @staticmethod
    def _drain_netns(namespaces, problems):
        """Wait until no process is left in ``namespaces``: deleting one earlier leaves it half-alive."""
        deadline = time.monotonic() + DRAIN_TIMEOUT
        while True:
            busy = {name: pids for name, pids in netns_processes(namespaces).items() if pids}
            if not busy:
                return
            if time.monotonic() > deadline:
                problems.extend('processes still in netns %s: %s' % (name, pids) for name, pids in sorted(busy.items()))
                return
            time.sleep(0.02)

    @contextlib.contextmanager
    def running(self, hosts, **kwargs):
        self.up(hosts, **kwargs)
        try:
            yield self
        finally:
            self.down()


def leftovers(state):
    """What of a fleet's resources still exists (empty when teardown was complete)."""
    found = []
    alias = link_alias(state['bridge']) if state.get('bridge') else None
    names_are_ours = alias in (None, '', state.get('owner'))
    namespaces = netns_list() if names_are_ours else set()
    for host in state.get('hosts', []):
        if host['netns'] in namespaces:
            found.append('netns %s' % host['netns'])
        if names_are_ours and link_exists(host['veth']):
            found.append('link %s' % host['veth'])
        if host.get('pid') and host.get('starttime') is not None and process_starttime(host['pid']) == host['starttime']:
            found.append('process %d' % host['pid'])
    if state.get('bridge') and alias is not None and names_are_ours:
        found.append('link %s' % state['bridge'])
    with open('/proc/self/mountinfo', encoding='utf-8') as handle:
        for line in handle:
            if names_are_ours and any('/run/netns/%s ' % h['netns'] in line for h in state.get('hosts', [])):
                found.append('mount %s' % line.split()[4])
    return found


def _terminate(signum, _frame):
    raise SystemExit(128 + signum)


def main(argv=None):
    parser = argparse.ArgumentParser(description='A fleet of SSH hosts in namespaces on this machine.')
    sub = parser.add_subparsers(dest='command', required=True)
    up = sub.add_parser('up', help='create the fleet and write its inventory')
    up.add_argument('--hosts', type=int, default=3)
    up.add_argument('--state', required=True, help='directory for keys, configs, logs, state and inventory')
    up.add_argument('--slot', type=int, default=None, help='fixed fleet slot (default: first free one)')
    up.add_argument('--prefix', default=DEFAULT_PREFIX, help='name prefix for netns, veths and the bridge')
    up.add_argument('--network', default=DEFAULT_NETWORK, help='IPv4 range carved into one /24 per fleet')
    up.add_argument('--inventory-copy', default=None, help='also write the inventory here (e.g. molecule\'s)')
    down = sub.add_parser('down', help='tear the fleet down (idempotent)')
    down.add_argument('--state', required=True)
    inv = sub.add_parser('inventory', help='print the inventory path')
    inv.add_argument('--state', required=True)
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)
    fleet = Fleet(args.state)
    try:
        if args.command == 'up':
            fleet.up(args.hosts, slot=args.slot, prefix=args.prefix, network=args.network,
                     extra_inventory=os.path.abspath(args.inventory_copy) if args.inventory_copy else None)
            print('fleet up: %d hosts in %s (bridge %s); inventory %s'
                  % (len(fleet.hosts), fleet.state['subnet'], fleet.state['bridge'], fleet.inventory_path))
        elif args.command == 'down':
            removed = fleet.down()
            print('fleet down: %d hosts removed' % len(removed) if removed else 'fleet down: nothing to remove')
        else:
            state = fleet.load()
            if not state or state.get('status') != 'up':
                raise FleetError('no running fleet recorded in %s; run `fleet.py up --state %s`'
                                 % (fleet.state_dir, fleet.state_dir))
            print(fleet.inventory_path)
    except FleetError as exc:
        print('fleet.py %s: error: %s' % (args.command, exc), file=sys.stderr)
        return 2
    except OSError as exc:
        if exc.errno in (errno.EPERM, errno.EACCES):
            print('fleet.py %s: error: %s (run as root)' % (args.command, exc), file=sys.stderr)
            return 2
        raise
    return 0


if __name__ == '__main__':
    sys.exit(main())
