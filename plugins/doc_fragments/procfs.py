# -*- coding: utf-8 -*-
# Copyright: oomguard.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):

    # Options shared by every module that reads procfs.
    DOCUMENTATION = r"""
options:
  proc_path:
    description:
      - Where procfs is mounted on the managed host.
      - Point it at a copy of a procfs tree (captured files laid out like C(/proc)) to run the module on fixtures,
        or at the host's procfs seen from a container, for example C(/host/proc).
    type: path
    default: /proc
"""

    # Attributes every read-only facts module here shares (check_mode differs per module).
    FACTS = r"""
options: {}
attributes:
  diff_mode:
    support: none
  facts:
    support: full
  platform:
    platforms: posix
    details: Linux only (procfs).
"""

    # The slab options, shared by oomguard.fleet.slabinfo_facts (as is) and
    # oomguard.fleet.oom_score_facts (with a slabinfo_ prefix).
    SLABINFO_BASELINE = r"""
options: {}
notes:
  - C(/proc/slabinfo) is mode 0400 (root only) on most kernels, so without C(become) the slab facts come back with
    C(available=false) and a C(reason) saying so; the run does not fail.
  - C(/proc/slabinfo) exists only on kernels built with C(CONFIG_SLUB_DEBUG) or C(CONFIG_SLAB).
    Without it, only the C(Slab), C(SReclaimable) and C(SUnreclaim) lines of C(/proc/meminfo) are returned.
  - Storing a baseline writes one small JSON file on the managed host (atomically, mode 0600, in a directory of
    mode 0700). The module still reports C(changed=false), because the baseline is bookkeeping for the next
    comparison, not a change to the system; in check mode nothing is written.
"""
