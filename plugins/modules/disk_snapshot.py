#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: oomguard.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
---
module: disk_snapshot
short_description: Snapshot every disk of a cloud instance, wait, tag and keep the newest N
version_added: 0.1.0
description:
  - Snapshots the disks of one Alibaba Cloud ECS or AWS EC2 instance in parallel, before anything on the host changes.
  - Every snapshot is tagged C(oomguard:managed-by=oomguard.fleet) and C(oomguard:run-id=<run id>).
    A second call with the same O(run_id) finds those snapshots and creates none
    (Alibaba Cloud also gets a C(ClientToken) per run and disk, so a retried request cannot make a second snapshot).
  - With O(wait=true) the module polls until every snapshot is accomplished, one fails, or O(wait_timeout) passes.
    A failed snapshot or a timeout fails the task, and the result still lists each snapshot id with its state.
  - O(retention) deletes older snapshots that this collection made of the same disk, keeping the newest N.
    Snapshots without the C(oomguard:managed-by) tag are never deleted, and older snapshots of a disk are only
    deleted once this run's snapshot of that disk is accomplished.
  - Run it on the controller (C(delegate_to=localhost)); the role M(oomguard.fleet.snapshot) does that for a whole play.
author:
  - oomguard.fleet maintainers (@oomguard)
requirements:
  - With O(provider=aws), C(boto3) >= 1.44.8 and C(botocore) >= 1.44.8 where the module runs (normally the controller).
  - With O(provider=alicloud), the Alibaba Cloud SDK where the module runs, C(alibabacloud_ecs20140526) >= 7.11.8,
    C(alibabacloud_tea_openapi) >= 0.4.6 and C(alibabacloud_credentials) >= 1.0.12.
extends_documentation_fragment:
  - oomguard.fleet.cloud
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.flow
options:
  provider:
    description:
      - Which cloud the instance runs in.
      - V(alicloud) uses the ECS API through C(alibabacloud_ecs20140526) and C(alibabacloud_tea_openapi).
      - V(aws) uses the EC2 API through C(boto3).
    type: str
    required: true
    choices: [alicloud, aws]
  region:
    description:
      - The region of the instance, for example V(cn-hangzhou) or V(us-east-1).
      - Required with O(instance_id); with O(instances) the default for entries that name no region.
      - A zone id (V(cn-hangzhou-h), V(us-east-1a)) is refused with a message naming the region id to give instead.
    type: str
  instance_id:
    description:
      - The instance whose disks to snapshot, for example V(i-bp1abc...) or V(i-0abc...).
      - Exactly one of O(instance_id) and O(instances) is required.
    type: str
  instances:
    description:
      - Many instances in one call, snapshotted concurrently (O(concurrency) at a time) by one process on the controller.
        This is how the role M(oomguard.fleet.snapshot) handles a whole play without starting a process per host.
      - In this form the task does not fail when one instance fails; see RV(hosts) and RV(failed_hosts).
    type: list
    elements: dict
    suboptions:
      host:
        description: A key for the result in RV(hosts), normally C(inventory_hostname). Defaults to the instance id.
        type: str
      instance_id:
        description: The instance id.
        type: str
        required: true
      region:
        description: The region id (not a zone id); defaults to O(region).
        type: str
  concurrency:
    description:
      - How many instances of O(instances) are worked on at the same time.
    type: int
    default: 16
  progress_interval:
    description:
      - With O(instances) and O(wait=true), the seconds between two progress reports, each one line per snapshot with
        the host, snapshot id, disk id, status and percent done.
      - On the controller (a local connection without become, as the role M(oomguard.fleet.snapshot) runs it), the action
        plugin does the work in its own process with the module's code, so no module process is started; the cloud
        SDK must be importable by Ansible's own Python.
        The credential variables the task's C(environment) keyword sets (E(ALIBABA_CLOUD_ACCESS_KEY_ID), E(AWS_PROFILE), ...)
        are passed to the SDK as the options they stand for.
        When the SDK is not importable there, or the task is delegated to another host or uses become, or its C(environment)
        sets other variables, the module runs in rounds of this length
        (the first creates every snapshot and waits, the others wait) and the states are printed after each round.
    type: int
    default: 15
  disks:
    description:
      - Which disks to snapshot. V(all), V(system) (the boot disk), V(data) (every other disk), or disk/volume ids.
      - Ids that are not attached to the instance are an error.
    type: list
    elements: str
    default: [all]
  name:
    description:
      - Template of each snapshot's name (the C(Name) tag on AWS).
      - Fields C({run_id}), C({instance_id}), C({disk_id}), C({disk_type}), C({device}).
      - Must give 2 to 128 characters and may not start with C(auto), C(http://) or C(https://).
    type: str
    default: '{run_id}-{disk_id}'
  description:
    description:
      - Template of each snapshot's description, with the fields of O(name).
    type: str
    default: 'oomguard.fleet snapshot of {disk_type} disk {disk_id} of {instance_id}, run {run_id}'
  tags:
    description:
      - Extra tags for every snapshot. The C(oomguard:*) tags are always set and win over these.
    type: dict
    default: {}
  run_id:
    description:
      - The id of this run, tagged on every snapshot and the key of idempotence.
      - When omitted, a new id C(oomguard-<UTC time>-<random>) is made, so every call creates snapshots.
    type: str
  wait:
    description:
      - Wait until every snapshot is accomplished (or failed, or O(wait_timeout) passes).
      - With V(false) the module returns right after creating, with the states of that moment.
    type: bool
    default: true
  wait_timeout:
    description:
      - Seconds to wait with O(wait=true).
    type: int
    default: 1800
  poll_interval:
    description:
      - Longest time in seconds between two looks at the snapshots' progress while waiting.
      - When the progress seen so far says a snapshot ends sooner, the next look comes then, but not sooner than 1 second
        (or O(poll_interval) when that is shorter). The wait ends at the look that finds every snapshot done.
    type: float
    default: 5.0
  on_timeout:
    description:
      - What a timeout does. V(fail) fails the task with the states so far.
        V(return) returns them with RV(timed_out=true) and RV(status=progressing), for callers that poll in rounds.
    type: str
    choices: [fail, return]
    default: fail
  retention:
    description:
      - Keep the newest N snapshots per disk that this collection made (this run's included) and delete the older ones.
      - V(0) keeps everything.
    type: int
    default: 0
attributes:
  check_mode:
    support: full
    details: Lists the snapshots it would create (RV(would_create)) and delete (RV(would_delete)); creates and deletes nothing.
  diff_mode:
    support: partial
    details: With O(instance_id), the ids of this run's snapshots before and after (O(instances) gives no diff).
  action:
    support: full
    details: An action plugin drives the waiting rounds and prints progress with O(instances).
  async:
    support: none
  bypass_host_loop:
    support: none
  platform:
    support: full
    platforms: posix
    details: Runs where the SDKs are installed, normally the controller.
seealso:
  - module: oomguard.fleet.cloud_instance_facts
  - name: Snapshots in oomguard.fleet
    description: Credentials, endpoints, retention, progress output and the RAM/IAM permissions needed.
    link: https://github.com/oomguard/fleet/blob/main/docs/snapshots.md
'''

EXAMPLES = r'''
- name: Snapshot all disks of an ECS instance and wait
  oomguard.fleet.disk_snapshot:
    provider: alicloud
    region: cn-hangzhou
    instance_id: i-bp1g6zv0ce8oghu7k5jd
    run_id: "{{ oomguard_run_id }}"
    retention: 3
  delegate_to: localhost

- name: Start snapshots of the data disks of an EC2 instance without waiting
  oomguard.fleet.disk_snapshot:
    provider: aws
    region: eu-west-1
    instance_id: i-0123456789abcdef0
    disks: [data]
    wait: false
    tags:
      ticket: OPS-4711
  delegate_to: localhost
  register: started

- name: Snapshot the instances of a whole play from one process
  oomguard.fleet.disk_snapshot:
    provider: alicloud
    region: cn-hangzhou
    run_id: "{{ oomguard_run_id }}"
    instances:
      - {host: web01, instance_id: i-bp1g6zv0ce8oghu7k5jd}
      - {host: web02, instance_id: i-bp1c2j8d3cwx8i5zzmrs, region: cn-shanghai}
  run_once: true
  delegate_to: localhost
  register: batch

- name: Credentials once for the cloud action group, from a vault
  module_defaults:
    group/oomguard.fleet.cloud:
      access_key: "{{ vault_ecs_access_key }}"
      secret_key: "{{ vault_ecs_secret_key }}"
  block:
    - name: Snapshot before the change
      oomguard.fleet.disk_snapshot:
        provider: alicloud
        region: cn-shanghai
        instance_id: "{{ instance_id }}"
      delegate_to: localhost
'''

RETURN = r'''
run_id:
  description: The run id tagged on the snapshots.
  returned: always
  type: str
  sample: oomguard-20261129T020000Z-4711
provider:
  description: The cloud.
  returned: always
  type: str
  sample: alicloud
instance_id:
  description: The instance.
  returned: with O(instance_id)
  type: str
  sample: i-bp1g6zv0ce8oghu7k5jd
region:
  description: The region.
  returned: with O(instance_id)
  type: str
  sample: cn-hangzhou
status:
  description: V(ok) when every snapshot is accomplished (or would be created in check mode), V(progressing), or V(failed).
  returned: with O(instance_id)
  type: str
  sample: ok
message:
  description: A one-line summary.
  returned: always
  type: str
  sample: '3 snapshots: 3 accomplished'
snapshots:
  description: This run's snapshots, one per selected disk, with their latest state.
  returned: with O(instance_id)
  type: list
  elements: dict
  contains:
    snapshot_id:
      description: The snapshot id.
      type: str
      sample: s-bp1c2j8d3cwx8i5zzmrs
    disk_id:
      description: The disk (volume) id.
      type: str
      sample: d-bp1bq5g3dxxo1x4o0gpm
    name:
      description: The snapshot name.
      type: str
      sample: oomguard-oomguard-20261129T020000Z-4711-d-bp1bq5g3dxxo1x4o0gpm
    status:
      description: V(progressing), V(accomplished) or V(failed).
      type: str
      sample: accomplished
    progress:
      description: Percent done.
      type: int
      sample: 100
    created_at:
      description: When the cloud started the snapshot (UTC), null until the cloud lists it.
      type: str
      sample: '2026-11-29T02:00:03Z'
progress:
  description: One line per snapshot with its id, disk id, status and percent done.
  returned: with O(instance_id)
  type: list
  elements: str
  sample: ['s-bp1c2j8d3cwx8i5zzmrs (d-bp1bq5g3dxxo1x4o0gpm): progressing 40%']
disks:
  description: The selected disks.
  returned: with O(instance_id)
  type: list
  elements: dict
  sample: [{disk_id: d-bp1bq5g3dxxo1x4o0gpm, type: system, device: /dev/xvda, size_gb: 40}]
created:
  description: Ids of the snapshots this call created.
  returned: with O(instance_id)
  type: list
  elements: str
  sample: [s-bp1c2j8d3cwx8i5zzmrs]
reused:
  description: Ids of this run's snapshots that already existed, so were not created again.
  returned: with O(instance_id)
  type: list
  elements: str
  sample: []
would_create:
  description: In check mode, the snapshots a real run would create.
  returned: with O(instance_id)
  type: list
  elements: dict
  sample: [{disk_id: d-bp1bq5g3dxxo1x4o0gpm, name: run1-d-bp1bq5g3dxxo1x4o0gpm}]
deleted:
  description: Ids of older snapshots of ours deleted by O(retention).
  returned: with O(instance_id)
  type: list
  elements: str
  sample: [s-bp1aaaa8d3cwx8i5zzmr]
would_delete:
  description: In check mode, the ids O(retention) would delete.
  returned: with O(instance_id)
  type: list
  elements: str
  sample: []
timed_out:
  description: Whether O(wait_timeout) passed before every snapshot finished.
  returned: with O(instance_id)
  type: bool
  sample: false
hosts:
  description:
    - With O(instances), the result of each instance keyed by its O(instances[].host), with the keys above
      plus C(failed) and, when failed, C(msg).
  returned: when O(instances) is used
  type: dict
  sample: {web01: {status: ok, failed: false, message: '3 snapshots: 3 accomplished', snapshots: []}}
failed_hosts:
  description: With O(instances), the keys of the instances that failed.
  returned: when O(instances) is used
  type: list
  elements: str
  sample: []
'''

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.oomguard.fleet.plugins.module_utils.cloud.backends import MissingSdk, build_backend
from ansible_collections.oomguard.fleet.plugins.module_utils.cloud.common import CloudError
from ansible_collections.oomguard.fleet.plugins.module_utils.cloud.runner import SnapshotRun, SnapshotRunError, prepare, run_batch, snapshot_argument_spec


def diff_of(result):
    before = sorted(result['reused'] + result['deleted'] + result['would_delete'])
    gone = set(result['deleted'] + result['would_delete'])
    after = sorted([s for s in before if s not in gone] + result['created']
                   + ['(new snapshot of %s)' % item['disk_id'] for item in result['would_create']])
    return {'before': {'snapshots': before}, 'after': {'snapshots': after}}


def run_one(module, params):
    """One instance: the result, with a diff in diff mode."""
    result = SnapshotRun(build_backend(params['provider'], params), params, check_mode=module.check_mode).run()
    if module._diff:
        result['diff'] = diff_of(result)
    return result


def main():
    module = AnsibleModule(argument_spec=snapshot_argument_spec(), supports_check_mode=True)
    params = dict(module.params)
    problem = prepare(params)
    if problem:
        module.fail_json(msg=problem)
    try:
        if params['instance_id']:
            result = run_one(module, params)
        else:
            result = run_batch(params, check_mode=module.check_mode)
    except MissingSdk as exc:
        module.fail_json(msg=missing_required_lib(exc.library), exception=exc.import_error)
    except SnapshotRunError as exc:
        module.fail_json(msg=str(exc), **exc.result)
    except CloudError as exc:
        module.fail_json(msg=str(exc))
    module.exit_json(**result)


if __name__ == '__main__':
    main()
