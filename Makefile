# Test and CI harness for the berth.ports collection (GNU make).
#
# Every target installs what it needs: `venv` builds .venv/ from
# tests/requirements.txt, `collection` mirrors the checkout to the path
# ansible-test insists on (.build/collections/ansible_collections/berth/ports).
# `make test` runs the whole suite; .ci/run calls it on a bare Debian box.

SHELL        := /bin/bash
.SHELLFLAGS  := -eu -o pipefail -c
.DEFAULT_GOAL := help
MAKEFLAGS    += --no-print-directory

ROOT         := $(abspath $(dir $(lastword $(MAKEFILE_LIST))))
PYTHON       ?= python3
VENV         := $(ROOT)/.venv
VBIN         := $(VENV)/bin
STAMP        := $(VENV)/.installed-requirements
REQUIREMENTS := $(ROOT)/tests/requirements.txt
COLLECTIONS  := $(ROOT)/.build/collections
COLL         := $(COLLECTIONS)/ansible_collections/berth/ports
DEMO_DB      := $(ROOT)/demo/ports.db

# Python that ansible-test's --venv environments are built from (the venv's own).
TEST_PYTHON  ?= $(shell $(PYTHON) -c 'import sys; print("%d.%d" % sys.version_info[:2])')
# Extra arguments, e.g. `make sanity ANSIBLE_TEST_ARGS="--test pep8"`.
ANSIBLE_TEST_ARGS ?=
PYTEST_ARGS  ?=

# The venv first on PATH, the built copy first on the collections path
# (ansible.posix & co. come from the `ansible` package in the venv).
RUN := env PATH="$(VBIN):$$PATH" VIRTUAL_ENV="$(VENV)" \
	ANSIBLE_COLLECTIONS_PATH="$(COLLECTIONS)" \
	ANSIBLE_FORCE_COLOR=0 PY_COLORS=0 ANSIBLE_NOCOLOR=1

header = @printf '\n==== %s ====\n' "$(1)"

.PHONY: help venv collection demo unit artifact sanity units integration molecule lint nox test clean bench matrix mutation

help:
	@echo 'berth.ports harness:'
	@echo '  make venv         .venv/ with the pinned toolchain (tests/requirements.txt)'
	@echo '  make collection   copy the checkout to $(COLL:$(ROOT)/%=%)'
	@echo '  make demo         allocate ports for sample services into demo/ports.db'
	@echo '  make unit         pytest tests/unit (+ tests/reliability if present) and tests/playbooks'
	@echo '  make artifact     build from a dirty work tree copy: exact file list, installed demo, galaxy-importer'
	@echo '  make sanity       ansible-test sanity, every Python here (offline-safe --venv)'
	@echo '  make units        ansible-test units'
	@echo '  make integration  ansible-test integration --allow-destructive (local, root)'
	@echo '  make matrix       sanity, units, integration on every supported ansible-core and Python'
	@echo '  make lint         ansible-lint over the whole repository (.ansible-lint: production profile)'
	@echo '  make nox          antsibull-nox sessions: lint, ansible-lint, changelog-lint, docs-check, extra-checks, build-import-check'
	@echo '  make docs         antsibull-docs lint and the docsite build, failing on any warning'
	@echo '  make molecule     extensions/molecule/run.sh'
	@echo '  make test         all of the above (demo as a smoke test)'
	@echo '  make bench        benchmarks/bench.py: eight rows next to same-run baselines'
	@echo '  make mutation     mutmut over the allocator core, score per file (slow; not in make test)'
	@echo '  make clean        remove .venv, .build, demo/ and test output'

# ---------------------------------------------------------------- venv
venv: $(STAMP)

$(STAMP): $(REQUIREMENTS)
	$(call header,venv: $(VENV))
	@if ! $(PYTHON) -c 'import ensurepip, venv' 2>/dev/null; then \
		echo 'python3 has no venv/ensurepip: installing python3-venv with apt'; \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-venv; \
	fi
	@test -x $(VBIN)/python || $(PYTHON) -m venv $(VENV)
	$(VBIN)/python -m pip install --disable-pip-version-check -q --upgrade pip
	$(VBIN)/python -m pip install --disable-pip-version-check -q -r $(REQUIREMENTS)
	@# ansible-test --venv downloads a get-pip.py from a host that is not on
	@# the allowed list here; put an ensurepip-based stand-in in its cache.
	$(VBIN)/python $(ROOT)/tests/utils/install_get_pip_standin.py
	@touch $@

# ---------------------------------------------------------- collection
# Always re-synced: it is cheap and make cannot see every source file.
collection: venv
	$(call header,collection: $(COLL:$(ROOT)/%=%))
	@$(VBIN)/python $(ROOT)/tests/utils/sync_collection.py $(ROOT) $(COLL)

# ---------------------------------------------------------------- demo
demo: collection
	$(call header,demo: sample services into $(DEMO_DB:$(ROOT)/%=%))
	@mkdir -p $(dir $(DEMO_DB))
	@# the venv's python runs the modules too: interpreter discovery may
	@# otherwise pick a pyenv shim for a version that is not active
	cd $(ROOT) && $(RUN) ansible-playbook -i localhost, -c local \
		-e ansible_python_interpreter=$(VBIN)/python \
		-e berth_demo_db=$(DEMO_DB) playbooks/demo.yml

# -------------------------------------------------------- unit (pytest)
unit: collection
	$(call header,unit: pytest tests/unit$(if $(wildcard $(ROOT)/tests/reliability), tests/reliability) tests/playbooks)
	cd $(COLL) && $(RUN) PYTHONPATH=$(COLLECTIONS) python -m pytest -p no:cacheprovider \
		tests/unit $(if $(wildcard $(ROOT)/tests/reliability),tests/reliability) tests/playbooks $(PYTEST_ARGS)

# ----------------------------------------------------------- artifact
# tests/artifact builds the collection from a copy of this work tree (git
# lists the files, so it runs here, not in the .build copy), installs it, runs
# the demo from it, and imports it with galaxy-importer, which pins its own
# ansible-core and ansible-lint and so gets a venv of its own.
IMPORTER_VENV  := $(ROOT)/.build/galaxy-importer
IMPORTER_STAMP := $(IMPORTER_VENV)/.installed-requirements
IMPORTER_REQS  := $(ROOT)/tests/artifact/requirements.txt

$(IMPORTER_STAMP): $(IMPORTER_REQS)
	$(call header,venv: $(IMPORTER_VENV:$(ROOT)/%=%))
	@test -x $(IMPORTER_VENV)/bin/python || $(PYTHON) -m venv $(IMPORTER_VENV)
	$(IMPORTER_VENV)/bin/python -m pip install --disable-pip-version-check -q -r $(IMPORTER_REQS)
	@touch $@

artifact: venv $(IMPORTER_STAMP)
	$(call header,artifact: pytest tests/artifact)
	cd $(ROOT) && $(RUN) GALAXY_IMPORTER_PYTHON=$(IMPORTER_VENV)/bin/python \
		python -m pytest -p no:cacheprovider -rs tests/artifact $(PYTEST_ARGS)

# ------------------------------------------------------------- sanity
# Every supported Python found here is tested (3.8-3.10 for modules and
# module_utils, 3.11+ for everything); tests/utils/python_bin.py builds a
# PATH without pyenv shims of inactive versions, which would fail with 127.
# SANITY_PYTHON=3.11 restricts the run to one version.
SANITY_PYTHON ?=

sanity: collection
	$(call header,sanity: ansible-test sanity --venv$(if $(SANITY_PYTHON), --python $(SANITY_PYTHON)))
	@path=$$($(VBIN)/python $(ROOT)/tests/utils/python_bin.py $(ROOT)/.build/python-bin $(VBIN)); \
	cd $(COLL) && $(RUN) PATH="$$path" ansible-test sanity --venv \
		$(if $(SANITY_PYTHON),--python $(SANITY_PYTHON)) --color no $(ANSIBLE_TEST_ARGS)

# -------------------------------------------------------------- units
units: collection
	$(call header,units: ansible-test units --venv --python $(TEST_PYTHON))
	cd $(COLL) && $(RUN) ansible-test units --venv --python $(TEST_PYTHON) \
		--color no $(ANSIBLE_TEST_ARGS)

# -------------------------------------------------------- integration
# --local: the targets run in .venv, where the `ansible` package supplies
# ansible.posix and community.general; they change the host, hence root.
integration: collection
	$(call header,integration: ansible-test integration --local --allow-destructive)
	cd $(COLL) && $(RUN) ansible-test integration --local --python $(TEST_PYTHON) \
		--allow-destructive --color no $(ANSIBLE_TEST_ARGS)

# ------------------------------------------------------------- matrix
# The support matrix behind README's "Tested with" table. Each ansible-core
# release gets a venv of its own, .build/core-X.Y, from a controller Python it
# supports (RELEASE@PYTHON). sanity and units run on the releases .venv does
# not have (its 2.19 is `make sanity`/`make units`); the integration targets
# run once per managed-host Python (CORE:PYTHONS), the controller staying the
# core's: 3.8 on 2.19 only, 2.19 and 2.20 at their oldest and newest, 3.9-3.13
# on 2.21 (3.11 on 2.19 is `make integration`). Pythons come from PATH or
# pyenv; a cell whose Python is missing is SKIPPED loudly, and fails the run
# with MATRIX_STRICT=1.
MATRIX_CORES       ?= 2.19.14@3.11 2.20.10@3.12 2.21.5@3.13
MATRIX_SANITY      ?= 2.20 2.21
MATRIX_UNITS       ?= 2.20 2.21
MATRIX_INTEGRATION ?= 2.19:3.8,3.13 2.20:3.9,3.13 2.21:3.9,3.10,3.11,3.12,3.13
MATRIX_STRICT      ?=

matrix: collection
	$(call header,matrix: $(MATRIX_CORES))
	$(VBIN)/python $(ROOT)/tests/utils/matrix.py --collection $(COLL) --build $(ROOT)/.build \
		--sanity '$(MATRIX_SANITY)' --units '$(MATRIX_UNITS)' \
		$(foreach i,$(MATRIX_INTEGRATION),--integration $(i)) \
		--pip-extra '$(shell grep -m1 '^jmespath==' $(REQUIREMENTS))' \
		$(if $(MATRIX_STRICT),--strict) --ansible-test-args '$(ANSIBLE_TEST_ARGS)' $(MATRIX_CORES)

# --------------------------------------------------------------- lint
# The whole repository, as .ansible-lint says (production profile, offline,
# only generated trees excluded), from the checkout. berth.ports' own modules,
# action group and playbooks resolve through the synced copy, which RUN puts
# first on ANSIBLE_COLLECTIONS_PATH.
lint: collection
	$(call header,lint: ansible-lint (whole repository, .ansible-lint))
	cd $(ROOT) && $(RUN) ansible-lint

# ---------------------------------------------------------------- nox
# antsibull-nox's sessions (antsibull-nox.toml, noxfile.py), run by the venv's
# nox; each session has a venv of its own under .nox/, kept between runs
# (--reuse-venv=yes still installs what changed). NOX_SESSIONS="docs-check"
# runs fewer. ansible-test stays in make (sanity, units, integration,
# matrix): antsibull-nox runs it in containers only (CONTRIBUTING.md,
# "Harness").
NOX_SESSIONS ?= lint ansible-lint changelog-lint docs-check extra-checks build-import-check

nox: venv
	$(call header,nox: $(NOX_SESSIONS))
	cd $(ROOT) && env PATH="$(VBIN):$$PATH" ANSIBLE_FORCE_COLOR=0 PY_COLORS=0 ANSIBLE_NOCOLOR=1 \
		nox --reuse-venv=yes --no-color -e $(NOX_SESSIONS)

# --------------------------------------------------------------- docs
# The collection's docs as antsibull-docs sees them (plugin docs, extra docs
# under docs/docsite, links) and the docsite built from them with Sphinx;
# any warning fails, but for references into docs.ansible.com, which an
# offline build cannot resolve (tests/docs/build_docsite.py says which).
.PHONY: docs
DOCS_VENV  := $(ROOT)/.build/docs-venv
DOCS_REQ   := $(ROOT)/tests/docs/requirements.txt
DOCS_STAMP := $(DOCS_VENV)/.installed-requirements

$(DOCS_STAMP): $(DOCS_REQ)
	@test -x $(DOCS_VENV)/bin/python || $(PYTHON) -m venv $(DOCS_VENV)
	$(DOCS_VENV)/bin/python -m pip install --disable-pip-version-check -q -r $(DOCS_REQ)
	@touch $@

docs: collection $(DOCS_STAMP)
	$(call header,docs: antsibull-docs lint-collection-docs and the docsite)
	$(DOCS_VENV)/bin/python $(ROOT)/tests/docs/build_docsite.py $(COLLECTIONS) $(ROOT)/.build/docsite

# ----------------------------------------------------------- molecule
molecule: collection
	$(call header,molecule: extensions/molecule/run.sh)
	cd $(ROOT) && $(RUN) bash extensions/molecule/run.sh

# --------------------------------------------------------------- test
# Each step runs even when an earlier one failed; the target fails if any did.
# demo is the smoke test of the main job: it allocates into demo/ports.db.
# nox runs ansible-lint (what `make lint` runs) among antsibull-nox's sessions.
TEST_STEPS := unit artifact sanity units demo integration matrix nox docs molecule

test: collection
	@failed=""; \
	for step in $(TEST_STEPS); do \
		start=$$(date +%s); \
		if $(MAKE) $$step; then result=ok; else result=FAILED; failed="$$failed $$step"; fi; \
		echo "---- $$step: $$result in $$(( $$(date +%s) - start ))s"; \
	done; \
	printf '\n==== test summary ====\n'; \
	if [ -n "$$failed" ]; then echo "failed:$$failed"; exit 1; fi; \
	echo 'all steps passed: $(TEST_STEPS)'

# -------------------------------------------------------------- bench
# Figures next to baselines measured in the same run; table on stdout, the
# same as JSON in benchmarks/results.json (not committed). Knobs: BENCH_ROWS,
# BENCH_PLAY_ROUNDS, BENCH_FLEET_HOSTS, BENCH_FLEET_FORKS (benchmarks/README.md).
bench: collection
	$(call header,bench: benchmarks/bench.py)
	cd $(COLL) && $(RUN) PYTHONPATH=$(COLLECTIONS) python $(ROOT)/benchmarks/bench.py

# ----------------------------------------------------------- mutation
# Slow (see CONTRIBUTING.md), so not one of TEST_STEPS. mutmut comes from its
# own requirements file, which CI never installs. MUTATION_JOBS=N workers,
# MUTATION_FILES="request.py port_range.py" for some of the files only,
# MUTATION_RESUME=1 to continue the last run instead of starting over.
MUTATION_FILES ?=
MUTATION_RESUME ?=
MUTATION_REQ   := $(ROOT)/tests/mutation/requirements.txt
MUTATION_STAMP := $(VENV)/.installed-mutation

$(MUTATION_STAMP): $(MUTATION_REQ) $(STAMP)
	$(VBIN)/python -m pip install --disable-pip-version-check -q -r $(MUTATION_REQ)
	@touch $@

mutation: venv $(MUTATION_STAMP)
	$(call header,mutation: mutmut over tests/mutation/mutation.cfg)
	cd $(ROOT) && $(RUN) python tests/mutation/run.py $(if $(MUTATION_RESUME),--resume) $(MUTATION_FILES)

# -------------------------------------------------------------- clean
clean:
	rm -rf $(VENV) $(ROOT)/.build $(ROOT)/.nox $(ROOT)/demo $(ROOT)/tests/output $(ROOT)/.pytest_cache $(ROOT)/.hypothesis
	find $(ROOT) -name __pycache__ -type d -prune -exec rm -rf {} +
