# -*- coding: utf-8 -*-
# Copyright: oomguard.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    # Options shared by oomguard.fleet.oom_score_adj and oomguard.fleet.oom_rollback.
    DOCUMENTATION = r"""
options:
  journal:
    description:
      - Path of the on-host change journal (JSON lines, mode V(0600) in a V(0700) directory).
      - Every change is appended and fsynced here before it is made; P(oomguard.fleet.oom_rollback#module) reads it back.
      - The lock file C(oomguard.lock) in the same directory keeps two runs from working on one host at once.
    type: path
    default: /var/lib/oomguard/journal.jsonl
  run_id:
    description:
      - Identifier of this run, written into every journal record and returned.
      - Defaults to a new C(oomguard-<UTC timestamp>-<random>) id.
      - Pass the play's C(oomguard_run_id) so that the snapshot, the changes and the report share one id.
    type: str
  restart:
    description:
      - Restart each unit whose drop-in changed, after C(systemctl daemon-reload).
      - A restart is an outage of that service, so it is off by default; without it the new value applies
        to running processes at once (runtime write) and to the service from its next start.
    type: bool
    default: false
  proc_path:
    description:
      - Where procfs is mounted. Tests point this at a fixture tree; writes then go to the fixture files.
    type: path
    default: /proc
  root:
    description:
      - Root of the file system that holds C(etc/systemd/system). Drop-ins are written below it.
      - C(systemctl) is only run when O(root=/) and systemd is running (C(/run/systemd/system) exists);
        with any other root the module edits files only.
    type: path
    default: /
notes:
  - Lowering C(oom_score_adj) below a process's floor (the lowest value ever set for it by a holder of
    CAP_SYS_RESOURCE) needs CAP_SYS_RESOURCE. Containers and some VMs drop that capability even for root;
    the kernel then answers EACCES and the module fails with a message that says so.
  - Setting the environment variable C(OOMGUARD_TEST_CRASH_AFTER_INTENT=N) makes the module kill itself with
    SIGKILL right after the N-th journal intent record is fsynced. It exists for crash tests only.
"""
