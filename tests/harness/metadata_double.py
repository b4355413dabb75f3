"""Loopback doubles of the cloud instance metadata services, token flows included.

``flavour='alicloud'``: Alibaba Cloud ECS in hardened (token) mode.
    PUT /latest/api/token with X-aliyun-ecs-metadata-token-ttl-seconds (1..21600) -> token;
    GET /latest/meta-data/{instance-id,region-id,zone-id} needs X-aliyun-ecs-metadata-token.
``flavour='aws'``: EC2 IMDSv2.
    PUT /latest/api/token with X-aws-ec2-metadata-token-ttl-seconds (1..21600) -> token;
    GET /latest/meta-data/{instance-id,placement/region,placement/availability-zone}
    needs X-aws-ec2-metadata-token.

A GET without a valid token is refused (401), as both services do when tokens are required.

    with MetadataDouble('aws', instance_id='i-0abc', region='us-east-1') as md:
        md.url   # 'http://127.0.0.1:PORT'
"""

from __future__ import annotations

import secrets
import threading
import time

from ansible_collections.oomguard.fleet.tests.harness.loopback_http import LoopbackServer

FLAVOURS = {
    'alicloud': ('X-aliyun-ecs-metadata-token-ttl-seconds', 'X-aliyun-ecs-metadata-token',
                 {'meta-data/instance-id': 'instance_id', 'meta-data/region-id': 'region', 'meta-data/zone-id': 'zone'}),
    'aws': ('X-aws-ec2-metadata-token-ttl-seconds', 'X-aws-ec2-metadata-token',
            {'meta-data/instance-id': 'instance_id', 'meta-data/placement/region': 'region',
             'meta-data/placement/availability-zone': 'zone'}),
}


class MetadataDouble(LoopbackServer):
    name = 'metadata-double'

    def __init__(self, flavour, instance_id, region, zone=None):
        super().__init__()
        self.flavour = flavour
        self.ttl_header, self.token_header, self.paths = FLAVOURS[flavour]
        self.values = {'instance_id': instance_id, 'region': region, 'zone': zone or region + 'a'}
        self.tokens = {}            # token -> expiry
        self.log = []               # (method, path, status)
        self.lock = threading.Lock()

    def count(self, method=None):
        with self.lock:
            return sum(1 for m, p, s in self.log if method is None or m == method)

    def _answer(self, handler, status, text=''):
        with self.lock:
            self.log.append((handler.command, handler.path, status))
        self.reply(handler, status, text.encode('utf-8'), 'text/plain')

    def _put(self, handler):
        if handler.path != '/latest/api/token':
            return self._answer(handler, 404)
        ttl = handler.headers.get(self.ttl_header)
        if ttl is None or not ttl.isdigit() or not 1 <= int(ttl) <= 21600:
            return self._answer(handler, 400, 'missing or invalid %s' % self.ttl_header)
        token = secrets.token_urlsafe(32)
        with self.lock:
            self.tokens[token] = time.time() + int(ttl)
        return self._answer(handler, 200, token)

    def _get(self, handler):
        token = handler.headers.get(self.token_header)
        with self.lock:
            valid = token is not None and self.tokens.get(token, 0) > time.time()
        if not valid:
            return self._answer(handler, 401)
        key = self.paths.get(handler.path[len('/latest/'):] if handler.path.startswith('/latest/') else None)
        if key is None:
            return self._answer(handler, 404)
        return self._answer(handler, 200, self.values[key])

    def handle(self, handler):
        if handler.command == 'PUT':
            return self._put(handler)
        if handler.command == 'GET':
            return self._get(handler)
        return self._answer(handler, 405)
