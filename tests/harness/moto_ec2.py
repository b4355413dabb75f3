"""moto's real EC2 emulator as a loopback server for tests, plus a fault-injecting proxy.

``MotoServer`` starts ``moto_server`` on a free 127.0.0.1 port and stops it by PID.
``FaultProxy`` sits in front of it (also on loopback) and can answer the next N calls
of an EC2 action with a throttling error, or report the snapshots of chosen volumes as ``error`` in
DescribeSnapshots, so retry and failure paths run against the real emulator.

    with MotoServer() as moto:
        ec2 = moto.client()
        instance_id, volume_ids = make_instance(ec2, data_disks=2)
"""

from __future__ import annotations

import http.client
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from urllib.parse import parse_qsl

from ansible_collections.oomguard.fleet.tests.harness.loopback_http import LoopbackServer

REGION = 'us-east-1'
TEST_ACCESS_KEY = 'AKIAOOMGUARDTEST0001'
TEST_SECRET_KEY = 'mOtO/OOMguard+Secret/DoNotLeak0000000001'


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


class MotoServer(object):
    def __init__(self):
        self.port = free_port()
        self.proc = None

    @property
    def endpoint(self):
        return 'http://127.0.0.1:%d' % self.port

    def start(self):
        exe = shutil.which('moto_server') or os.path.join(os.path.dirname(sys.executable), 'moto_server')
        self.proc = subprocess.Popen([exe, '-H', '127.0.0.1', '-p', str(self.port)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        deadline = time.time() + 30
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError('moto_server exited with %s' % self.proc.returncode)
            try:
                with socket.create_connection(('127.0.0.1', self.port), timeout=0.5):
                    return self
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError('moto_server did not listen on port %d' % self.port)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def client(self, endpoint=None):
        import boto3
        return boto3.client('ec2', region_name=REGION, endpoint_url=endpoint or self.endpoint,
                            aws_access_key_id=TEST_ACCESS_KEY, aws_secret_access_key=TEST_SECRET_KEY)


def make_instance(ec2, data_disks=2):
    """An instance with a root volume and ``data_disks`` data volumes (moto adds no root volume itself)."""
    image_id = ec2.describe_images(Owners=['amazon'])['Images'][0]['ImageId']
    mappings = [{'DeviceName': '/dev/sda1', 'Ebs': {'VolumeSize': 8}}]
    mappings += [{'DeviceName': '/dev/sd%s' % 'fghijk'[n], 'Ebs': {'VolumeSize': 10}} for n in range(data_disks)]
    instance = ec2.run_instances(ImageId=image_id, MinCount=1, MaxCount=1, InstanceType='t3.micro',
                                 BlockDeviceMappings=mappings)['Instances'][0]
    described = ec2.describe_instances(InstanceIds=[instance['InstanceId']])['Reservations'][0]['Instances'][0]
    volumes = [m['Ebs']['VolumeId'] for m in described['BlockDeviceMappings']]
    return instance['InstanceId'], volumes


_THROTTLE_XML = ('<?xml version="1.0" encoding="UTF-8"?><Response><Errors><Error><Code>%s</Code>'
                 '<Message>Request limit exceeded.</Message></Error></Errors><RequestID>%s</RequestID></Response>')


class FaultProxy(LoopbackServer):
    """Loopback HTTP proxy to moto with injectable faults."""

    name = 'moto-fault-proxy'

    def __init__(self, upstream_port):
        super().__init__()
        self.upstream_port = upstream_port
        self.lock = threading.Lock()
        self.throttle = {}          # action -> [remaining, code]
        self.failed_volumes = set()
        self.actions = []           # (action, status) per request

    @property
    def endpoint(self):
        return self.url

    def inject_throttling(self, action, times, code='RequestLimitExceeded'):
        with self.lock:
            self.throttle[action] = [times, code]

    def fail_snapshots_of(self, volume_id):
        with self.lock:
            self.failed_volumes.add(volume_id)

    def count(self, action, status=None):
        with self.lock:
            return sum(1 for a, s in self.actions if a == action and (status is None or s == status))

    def _answer(self, handler, status, data, action):
        with self.lock:
            self.actions.append((action, status))
        self.reply(handler, status, data, 'text/xml')

    def handle(self, handler):
        body = handler.rfile.read(int(handler.headers.get('content-length') or 0))
        action = dict(parse_qsl(body.decode('utf-8'))).get('Action', '')
        with self.lock:
            throttle = self.throttle.get(action)
            inject = throttle and throttle[0] > 0
            if inject:
                throttle[0] -= 1
        if inject:
            status = 503 if throttle[1] == 'ServiceUnavailable' else 400
            self._answer(handler, status, (_THROTTLE_XML % (throttle[1], 'fault-proxy')).encode(), action)
            return
        conn = http.client.HTTPConnection('127.0.0.1', self.upstream_port, timeout=30)
        headers = dict((k, v) for k, v in handler.headers.items() if k.lower() not in ('host', 'content-length'))
        conn.request(handler.command, handler.path, body=body, headers=headers)
        response = conn.getresponse()
        data = response.read()
        conn.close()
        if action == 'DescribeSnapshots' and self.failed_volumes:
            data = self._mark_failed(data)
        self._answer(handler, response.status, data, action)

    def _mark_failed(self, data):
        def item(match):
            if match.group(2) not in self.failed_volumes:
                return match.group(0)
            return match.group(1) + 'error' + match.group(4) + '37%' + match.group(6)
        # moto writes volumeId, status, startTime, progress in this order inside each snapshot item.
        pattern = r'(<volumeId>([^<]+)</volumeId>\s*<status>)([^<]*)(</status>\s*<startTime>[^<]*</startTime>\s*<progress>)([^<]*)(</progress>)'
        return re.sub(pattern, item, data.decode('utf-8')).encode('utf-8')
