# eventi: `make run` starts the local stack, `make test` runs the tests. `make help` lists the rest.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
FERRETDB := .tools/bin/ferretdb
# node from the machine when it has one, else Debian's nodejs (long-poll.js's tests)
NODE := $(or $(shell command -v node),/usr/bin/node)
NPM := $(or $(shell command -v npm),/usr/bin/npm)
# axe-core, pinned by tests/browser/package-lock.json: the browser tests inject it to check WCAG 2.1 AA
AXE := tests/browser/node_modules/axe-core/axe.min.js
# Debian's PostgreSQL server (any version), the storage under FerretDB
POSTGRES := $(firstword $(wildcard /usr/lib/postgresql/*/bin/postgres) /usr/lib/postgresql/15/bin/postgres)
N ?= 10000
RATE ?= 200
BURST ?= 1000
INSTANCES ?= 1
REDIS ?= standalone
BENCH_ARGS ?=

.PHONY: help run test lint bench e2e deps deps-run lock venv clean

help:  ## list the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

run: deps-run  ## start Redis, PostgreSQL + FerretDB (data in var/, or /var/tmp/eventi-<hash>/ as root under a private parent), the PayHero simulator (when PAYHERO_BASE_URL is unset) and gunicorn on EVENTI_BIND
	./scripts/run.sh

test: deps  ## install what is missing, then run the whole test suite against real servers
	$(PY) -m pytest $(PYTEST_ARGS)

lint: $(VENV)/.test  ## static checks, no servers: ruff over every Python folder, mypy --strict over eventi/ (pyproject.toml); CI runs it first
	$(PY) -m ruff check .
	$(PY) -m mypy

bench: deps  ## N orders created through the API, N held waits, RATE callbacks/s then a BURST; hub vs per-request vs short polling (N=, RATE=, BURST=, INSTANCES= behind nginx, REDIS=standalone|cluster, BENCH_ARGS=); docs/benchmarks.md
	$(PY) -m bench --n $(N) --rate $(RATE) --burst $(BURST) --instances $(INSTANCES) --redis $(REDIS) $(if $(filter 1,$(INSTANCES)),,--nginx) $(BENCH_ARGS)

e2e:  ## against a running `make run`: one order paid by the simulator through /wait; prints one summary line
	./scripts/run-payment-test.sh

deps-run: $(VENV)/.runtime /usr/bin/redis-server $(POSTGRES) $(FERRETDB)  ## what `make run` needs: python3-venv when missing, the venv with the runtime packages of requirements.lock, redis-server, postgresql; build FerretDB into .tools/

deps: deps-run $(VENV)/.test /usr/sbin/nginx /usr/bin/chromium $(NODE) $(AXE) /usr/bin/promtool /usr/bin/docker-compose  ## deps-run plus the test tools of requirements-test.lock, nginx (tests put it in front), chromium (browser tests), node (long-poll.js tests), axe-core from npm (accessibility checks in the browser tests), promtool (alert rules), docker-compose (compose file check)

# Installs come from the lock files (exact versions); `make lock` regenerates them from setup.cfg.
# Debian's python3 makes a venv only with python3-venv (its ensurepip).
$(VENV)/.runtime: setup.cfg pyproject.toml requirements.lock
	test -x $(PY) || python3 -c 'import ensurepip' 2>/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv; }
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.lock
	$(PY) -m pip install -q --no-deps -e .
	$(PY) -m pip check
	touch $@

$(VENV)/.test: $(VENV)/.runtime requirements-test.lock
	$(PY) -m pip install -q -r requirements-test.lock
	$(PY) -m pip check
	touch $@

lock:  ## regenerate requirements.lock (runtime) and requirements-test.lock (+ test tools) in a fresh venv: newest versions setup.cfg allows
	rm -rf .lock-venv && python3 -m venv .lock-venv && .lock-venv/bin/pip install -q --upgrade pip
	.lock-venv/bin/pip install -q .
	{ echo "# eventi's runtime packages, exact versions: \`make lock\` writes this file"; .lock-venv/bin/pip freeze --exclude eventi; } > requirements.lock
	.lock-venv/bin/pip install -q '.[test]'
	{ echo "# eventi's runtime and test packages, exact versions: \`make lock\` writes this file"; .lock-venv/bin/pip freeze --exclude eventi; } > requirements-test.lock
	rm -rf .lock-venv build eventi.egg-info

/usr/bin/redis-server:
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server

$(POSTGRES):
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql

/usr/bin/node:
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs

/usr/bin/npm:
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends npm

# `npm ci` installs exactly the lock file's versions; it runs again whenever the lock file changes.
$(AXE): tests/browser/package.json tests/browser/package-lock.json $(NPM)
	cd tests/browser && $(NPM) ci --no-audit --no-fund
	touch $@

/usr/sbin/nginx:
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx

/usr/bin/chromium:
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium

/usr/bin/docker-compose:  # `docker-compose config` checks docker/compose.yml (no Docker engine needed)
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends docker-compose

/usr/bin/promtool:  # Debian's prometheus package: promtool checks docker/alerts.yml and the dashboard's queries
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus

$(FERRETDB): scripts/install-ferretdb.sh scripts/ferretdb-id-lookup.patch
	./scripts/install-ferretdb.sh $(FERRETDB)

clean:  ## remove the venv, built tools, the browser tests' node_modules and local data
	rm -rf $(VENV) .tools var tests/browser/node_modules
