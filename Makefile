# Two entry points for people: `make demo` and `make test`. Everything else is a step of those.
SHELL := /bin/bash
TOP := $(CURDIR)
VENV := $(TOP)/.venv
export PATH := $(VENV)/bin:$(PATH)
export ANSIBLE_COLLECTIONS_PATH := $(TOP)/.build/collections
export ANSIBLE_COLLECTIONS_SCAN_SYS_PATH := false
export ANSIBLE_LOCALHOST_WARNING := false
export ANSIBLE_INVENTORY_UNPARSED_WARNING := false
export PYTHONPATH := $(TOP)/.build/collections
PYTEST := $(VENV)/bin/python -m pytest -p no:cacheprovider --import-mode=importlib

.PHONY: demo audit-local test check bootstrap bootstrap-demo unit system ee pythons lab sanity units lint galaxy molecule lab-molecule compat bench clean

bootstrap:
	@scripts/bootstrap.sh test

bootstrap-demo:
	@scripts/bootstrap.sh demo

# A bundled fleet of recorded hosts (tests/fixtures/hosts): audit, flag, and a --check --diff reset.
demo: bootstrap-demo
	@scripts/demo.sh

# The audit of this machine; the report goes to artifacts/audit-local/.
audit-local: bootstrap-demo
	@scripts/audit-local.sh

test: bootstrap
	$(MAKE) unit system ee pythons lab sanity units lint galaxy molecule compat
	@echo "make test: all suites passed"

# The fast inner loop for developers: unit tests, lint, and sanity of the files changed since HEAD.
check: bootstrap
	$(PYTEST) -q -x tests/unit tests/system/test_changelog_release.py
	ansible-lint --profile production --offline
	@changed=$$( { git diff --name-only HEAD; git ls-files -o --exclude-standard; } | sort -u | while read -r f; do [ -f "$$f" ] && echo "$$f"; done); \
	if [ -n "$$changed" ]; then scripts/ansible-test.sh sanity $$changed; else echo "check: no changed files for sanity"; fi

unit:
	$(PYTEST) -q tests/unit

system:
	$(PYTEST) -q tests/system --ignore=tests/system/test_panic_lab.py --ignore=tests/system/test_target_pythons.py --ignore=tests/system/test_ee_audit.py

# The execution environment (docs/scale.md): execution-environment.yml built by ansible-builder with podman on a local
# Debian base image, then the audit run in it by ansible-runner with --process-isolation, as an AWX job, against a
# namespace fleet. The images are cached by content hash in /var/tmp/oomguard-ee: a warm run builds nothing.
ee: bootstrap
	$(PYTEST) -q -s tests/system/test_ee_audit.py

# The host-side modules on every target Python the supported ansible-cores admit (pyenv's 2.7 to 3.10,
# one play each: 2.7/3.6 under ansible-core 2.16, 3.7 under 2.17, 3.8 under 2.19, 3.9/3.10 under the
# newest), and ansible-test's compile and
# import tests on those Pythons. About 4 minutes once the venvs exist; it builds missing ones of
# tests/compat/versions side by side first, which make compat then reuses (docs/testing.md, "Target Pythons").
pythons: bootstrap
	COMPAT_BUILD_ONLY=1 scripts/compat.sh
	scripts/sanity-targets.sh
	$(PYTEST) -q tests/system/test_target_pythons.py

# The panic lab: a real kernel under qemu panics, then the collection prevents it (docs/lab.md).
# Needs root; the guest image is cached in $OOMGUARD_LAB_CACHE or ~/.cache/oomguard-lab.
# Each run keeps its guests' temporary directories in a directory of its own, checked empty after.
lab: bootstrap
	@export OOMGUARD_LAB_TMP=$$(mktemp -d /tmp/oomguard-lab.XXXXXX); \
	$(PYTEST) -q -s tests/system/test_panic_lab.py; rc=$$?; \
	left=$$($(VENV)/bin/python tests/harness/vm.py leftovers); \
	rmdir "$$OOMGUARD_LAB_TMP" 2>/dev/null; \
	if [ -n "$$left" ]; then echo "make lab: leftovers:"; echo "$$left"; exit 1; fi; exit $$rc

sanity:
	scripts/ansible-test.sh sanity

units:
	scripts/ansible-test.sh units

lint:
	ansible-lint --profile production --offline

# Galaxy's own import check on the built tarball (galaxy-importer, in .venv-galaxy).
galaxy:
	scripts/galaxy-import.sh

# Every scenario but `lab`: the lab's real kernel already runs once in make test (make lab), and
# twice would cost CI about a quarter of an hour; make lab-molecule runs the lab scenario.
molecule:
	cd extensions && for s in $$(ls molecule); do [ -d "molecule/$$s" ] && [ "$$s" != lab ] || continue; molecule test -s "$$s" || exit 1; done

lab-molecule: bootstrap
	cd extensions && molecule test -s lab

# Unit and role-level system tests under ansible-core 2.16, 2.17, 2.18, 2.20 and 2.21 (tests/compat/versions);
# the newest also runs ansible-test sanity, ansible-lint and molecule (docs/testing.md).
compat:
	scripts/compat.sh

bench: bootstrap
	@for b in tests/bench/bench_*.py; do $(VENV)/bin/python "$$b" || exit 1; done

clean:
	rm -rf .build tests/output artifacts .venv-compat .venv-galaxy .venv-inventory .venv-ee
