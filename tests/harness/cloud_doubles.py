# Copyright (c) oomguard.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The two cloud APIs of the snapshot role on loopback, as one background process for a scenario.

``up`` starts a process that serves the ECS double (tests/harness/ecs_double.py) and runs
moto's EC2 emulator (tests/harness/moto_ec2.py, ``moto_server`` in its own process group),
registers one instance per named host, and records endpoints, instance ids and PIDs in
``<state>/state.json``. ``down`` stops them by those PIDs (checking each PID's start time, so a
reused PID is never signalled) and fails when one is still there. Usage::

    ALIBABA_CLOUD_ACCESS_KEY_ID=... ALIBABA_CLOUD_ACCESS_KEY_SECRET=... \\
    python3 tests/harness/cloud_doubles.py up --state DIR --alicloud node01 --alicloud-failing node04 --aws node02
    python3 tests/harness/cloud_doubles.py down --state DIR       # idempotent

The ECS double accepts only the key pair in ``ALIBABA_CLOUD_ACCESS_KEY_ID`` /
``ALIBABA_CLOUD_ACCESS_KEY_SECRET`` (the SDK's own variables). The disks of an
``--alicloud-failing`` host fail every snapshot (``Status: failed``). Nothing listens
anywhere but 127.0.0.1.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time

try:
    from ansible_collections.oomguard.fleet.tests.harness.ecs_double import EcsDouble
    from ansible_collections.oomguard.fleet.tests.harness.moto_ec2 import MotoServer
    from ansible_collections.oomguard.fleet.tests.harness.fleet import process_starttime
except ImportError:  # run as a script from a checkout: the collection is linked under .build/collections
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                                    '.build', 'collections'))
    from ansible_collections.oomguard.fleet.tests.harness.ecs_double import EcsDouble
    from ansible_collections.oomguard.fleet.tests.harness.moto_ec2 import MotoServer
    from ansible_collections.oomguard.fleet.tests.harness.fleet import process_starttime

ECS_REGION = 'cn-hangzhou'
AWS_REGION = 'us-east-1'
READY_TIMEOUT = 60.0
STOP_TIMEOUT = 15.0


class DoublesError(Exception):
    """The doubles could not be started or stopped; the message says what to do."""


def _alive(pid, starttime):
    return bool(pid) and starttime is not None and process_starttime(pid) == starttime


def _state_path(state_dir):
    return os.path.join(state_dir, 'state.json')


def load_state(state_dir):
    try:
        with open(_state_path(state_dir), encoding='utf-8') as handle:
            return json.load(handle)
    except FileNotFoundError:
        return None


def _save_state(state_dir, state):
    tmp = _state_path(state_dir) + '.tmp'
    with open(tmp, 'w', encoding='utf-8') as handle:
        json.dump(state, handle, indent=1)
    os.replace(tmp, _state_path(state_dir))


def make_instance(ec2, image_id):
    """An EC2 instance with a root and a data volume (moto adds no root volume by itself)."""
    mappings = [{'DeviceName': '/dev/sda1', 'Ebs': {'VolumeSize': 8}}, {'DeviceName': '/dev/sdf', 'Ebs': {'VolumeSize': 10}}]
    instance = ec2.run_instances(ImageId=image_id, MinCount=1, MaxCount=1, InstanceType='t3.micro',
                                 BlockDeviceMappings=mappings)['Instances'][0]
    described = ec2.describe_instances(InstanceIds=[instance['InstanceId']])['Reservations'][0]['Instances'][0]
    return instance['InstanceId'], [m['Ebs']['VolumeId'] for m in described['BlockDeviceMappings']]


def serve(state_dir, alicloud, failing, aws):
    """Run in the background process: start both APIs, record them, wait for SIGTERM, stop them."""
    key_id = os.environ.get('ALIBABA_CLOUD_ACCESS_KEY_ID')
    secret = os.environ.get('ALIBABA_CLOUD_ACCESS_KEY_SECRET')
    if not key_id or not secret:
        raise DoublesError('set ALIBABA_CLOUD_ACCESS_KEY_ID and ALIBABA_CLOUD_ACCESS_KEY_SECRET: the ECS double '
                           'accepts that key pair only')
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    state = load_state(state_dir)
    ecs = EcsDouble({key_id: secret}, snapshot_seconds=0.5).start()
    # moto's hundreds of default AMIs take seconds to load; the scenario registers the one it needs.
    os.environ['MOTO_EC2_LOAD_DEFAULT_AMIS'] = 'false'
    moto = MotoServer()
    try:
        moto.start()
        state.update(moto_pid=moto.proc.pid, moto_starttime=process_starttime(moto.proc.pid))
        _save_state(state_dir, state)
        hosts = {}
        for host in alicloud + failing:
            instance_id = 'i-%s' % host
            disks = ecs.add_instance(instance_id, ECS_REGION, data_disks=1)
            if host in failing:
                for disk in disks:
                    ecs.fail_snapshots_of(disk)
            hosts[host] = {'provider': 'alicloud', 'instance_id': instance_id, 'region': ECS_REGION, 'disks': disks,
                           'snapshots_fail': host in failing}
        if aws:
            client = moto.client()
            image_id = client.register_image(Name='oomguard-scenario', RootDeviceName='/dev/sda1',
                                             Architecture='x86_64')['ImageId']
            for host in aws:
                instance_id, volumes = make_instance(client, image_id)
                hosts[host] = {'provider': 'aws', 'instance_id': instance_id, 'region': AWS_REGION, 'disks': volumes,
                               'snapshots_fail': False}
        state.update(status='up', ecs_endpoint=ecs.endpoint, moto_endpoint=moto.endpoint, hosts=hosts)
        _save_state(state_dir, state)
        while not stop.wait(0.5):
            pass
    finally:
        moto.stop()
        ecs.stop()


def up(state_dir, alicloud, failing, aws):
    os.makedirs(state_dir, mode=0o700, exist_ok=True)
    state = load_state(state_dir)
    if state and (_alive(state.get('pid'), state.get('starttime')) or _alive(state.get('moto_pid'), state.get('moto_starttime'))):
        raise DoublesError('%s records running doubles; run `cloud_doubles.py down --state %s` first' % (state_dir, state_dir))
    _save_state(state_dir, {'status': 'starting', 'pid': None, 'starttime': None, 'moto_pid': None, 'moto_starttime': None})
    argv = [sys.executable, os.path.abspath(__file__), 'serve', '--state', state_dir]
    for flag, hosts in (('--alicloud', alicloud), ('--alicloud-failing', failing), ('--aws', aws)):
        for host in hosts:
            argv += [flag, host]
    with open(os.path.join(state_dir, 'doubles.log'), 'ab') as log:
        child = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log,  # pylint: disable=consider-using-with
                                 start_new_session=True, close_fds=True)
    state = load_state(state_dir)
    state.update(pid=child.pid, starttime=process_starttime(child.pid))
    _save_state(state_dir, state)
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if child.poll() is not None:
            down(state_dir)
            raise DoublesError('the doubles exited with rc=%s before they were ready; see %s/doubles.log'
                               % (child.returncode, state_dir))
        state = load_state(state_dir)
        if state.get('status') == 'up':
            return state
        time.sleep(0.1)
    down(state_dir)
    raise DoublesError('the doubles were not ready within %.0f s; see %s/doubles.log' % (READY_TIMEOUT, state_dir))


def _wait_gone(pid, starttime, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _alive(pid, starttime):
            return True
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)  # our own child when up() cleans after a failure
        time.sleep(0.05)
    return not _alive(pid, starttime)


def down(state_dir):
    """Stop what the state file records; returns the names of what was stopped."""
    state = load_state(state_dir)
    if not state or state.get('status') == 'down':
        return []
    stopped = []
    pid, starttime = state.get('pid'), state.get('starttime')
    if _alive(pid, starttime):
        os.kill(pid, signal.SIGTERM)   # it stops moto and the ECS double itself
        if not _wait_gone(pid, starttime, STOP_TIMEOUT):
            os.kill(pid, signal.SIGKILL)
            _wait_gone(pid, starttime, STOP_TIMEOUT)
        stopped.append('doubles process %d' % pid)
    moto_pid, moto_starttime = state.get('moto_pid'), state.get('moto_starttime')
    if _alive(moto_pid, moto_starttime):  # its parent died before it could stop it
        with contextlib.suppress(ProcessLookupError):
            os.killpg(moto_pid, signal.SIGKILL)
        _wait_gone(moto_pid, moto_starttime, STOP_TIMEOUT)
        stopped.append('moto_server %d' % moto_pid)
    left = [name for name, (p, s) in (('doubles process', (pid, starttime)), ('moto_server', (moto_pid, moto_starttime)))
            if _alive(p, s)]
    if left:
        raise DoublesError('still running after SIGKILL: %s; run `cloud_doubles.py down --state %s` again'
                           % (', '.join(left), state_dir))
    state['status'] = 'down'
    _save_state(state_dir, state)
    return stopped


def main(argv=None):
    parser = argparse.ArgumentParser(description='The ECS double and moto on loopback, in the background.')
    sub = parser.add_subparsers(dest='command', required=True)
    for name in ('up', 'serve'):
        cmd = sub.add_parser(name)
        cmd.add_argument('--state', required=True)
        cmd.add_argument('--alicloud', action='append', default=[], help='a host on the ECS double')
        cmd.add_argument('--alicloud-failing', action='append', default=[],
                         help='a host on the ECS double whose snapshots fail')
        cmd.add_argument('--aws', action='append', default=[], help='a host on moto')
    sub.add_parser('down').add_argument('--state', required=True)
    args = parser.parse_args(argv)
    state_dir = os.path.abspath(args.state)
    try:
        if args.command == 'serve':
            serve(state_dir, args.alicloud, args.alicloud_failing, args.aws)
        elif args.command == 'up':
            state = up(state_dir, args.alicloud, args.alicloud_failing, args.aws)
            print('cloud doubles up: ECS %s, EC2 %s, %d instances'
                  % (state['ecs_endpoint'], state['moto_endpoint'], len(state['hosts'])))
        else:
            stopped = down(state_dir)
            print('cloud doubles down: stopped %s' % ', '.join(stopped) if stopped else 'cloud doubles down: nothing to stop')
    except DoublesError as exc:
        print('cloud_doubles.py %s: error: %s' % (args.command, exc), file=sys.stderr)
        return 2
    return 0


if __name__ == '__main__':
    sys.exit(main())
