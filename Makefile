# pgcluster: the two commands of the README, and a few more.
#   make cluster   build the Docker lab and deploy the cluster (fresh machine: all set-up)
#   make test      every test, unit and integration (builds its own lab: lab/test.toml)
#   make cluster HA=patroni   the same with Patroni and etcd (automatic failover); HA=manual
#                  keeps pgcluster's own commands (unset: the engine the cluster runs)
#   make cluster BACKUP=pgbackrest   backups and WAL archiving by pgBackRest, to repo1 on the
#                  shared volume and repo2 on the lab's object store (unset: as the cluster runs)
#   make destroy   remove the lab's containers, network and volumes (asks; YES=1 does not)

SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PYINFRA := $(VENV)/bin/pyinfra
# Debian 12's promtool, for the alert rules' unit tests (tests/unit/monitoring/).
PROMTOOL := $(VENV)/bin/promtool
export PYINFRA_PROGRESS ?= off
# The high-availability engine for `make cluster` (group_data ha_engine): manual or patroni.
HA ?=
# The backup engine for `make cluster` (group_data backup_engine): pg_basebackup or pgbackrest.
BACKUP ?=

.PHONY: cluster test unit integration lint destroy bench bench-backup bench-pgbackrest \
	bench-monitoring bench-scale bench-failover venv

venv: $(VENV)/.installed

$(VENV)/.installed: requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	touch $@

$(PROMTOOL): lab/install-promtool.sh | $(VENV)/.installed
	lab/install-promtool.sh $(VENV)/bin
	@touch $@

cluster: venv
	$(PYINFRA) -y @local deploys/lab.py
	$(PYINFRA) -y inventory/docker.py deploys/cluster.py $(if $(HA),--data ha_engine=$(HA),) \
		$(if $(BACKUP),--data backup_engine=$(BACKUP),)
	$(PY) -m pgcluster info

test: venv $(PROMTOOL)
	$(PY) -m pytest tests --durations=40

unit: venv $(PROMTOOL)
	$(PY) -m pytest tests/unit

integration: venv
	$(PY) -m pytest tests/integration

lint: venv
	$(VENV)/bin/ruff check .
	shellcheck -x pgcluster/node/*.sh lab/*.sh
	shellcheck -x -s bash tests/unit/node/fakes/*

destroy: venv
	$(PY) -m pgcluster destroy $(if $(YES),--yes,)

bench: venv
	$(PY) bench/provision.py

bench-backup: venv
	$(PY) bench/backup.py

bench-pgbackrest: venv
	$(PY) bench/pgbackrest.py

bench-monitoring: venv
	$(PY) bench/monitoring.py

bench-scale: venv
	$(PY) bench/scale.py $(if $(SIZES),--sizes $(SIZES),)

bench-failover: venv
	$(PY) bench/failover.py $(if $(ENGINE),--engine $(ENGINE),)
