# eventi: `make run` starts the local stack, `make test` runs the tests. `make help` lists the rest.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
FERRETDB := .tools/bin/ferretdb
# node from the machine when it has one, else Debian's nodejs (long-poll.js's tests)
NODE := $(or $(shell command -v node),/usr/bin/node)
# Debian's PostgreSQL server (any version), the storage under FerretDB
POSTGRES := $(firstword $(wildcard /usr/lib/postgresql/*/bin/postgres) /usr/lib/postgresql/15/bin/postgres)
N ?= 10000
RATE ?= 200
BURST ?= 1000
BENCH_ARGS ?=

.PHONY: help run test bench e2e deps venv clean

help:  ## list the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

run: deps  ## start Redis, PostgreSQL + FerretDB (data in var/), the PayHero simulator (when PAYHERO_BASE_URL is unset) and gunicorn on EVENTI_BIND
	./scripts/run.sh

test: deps  ## install what is missing, then run the whole test suite against real servers
	$(PY) -m pytest $(PYTEST_ARGS)

bench: deps  ## N orders created through the API, N held waits, RATE callbacks/s then a BURST; hub vs per-request vs short polling (N=, RATE=, BURST=, BENCH_ARGS=); docs/benchmarks.md
	$(PY) -m bench --n $(N) --rate $(RATE) --burst $(BURST) $(BENCH_ARGS)

e2e:  ## against a running `make run`: one order paid by the simulator through /wait; prints one summary line
	./scripts/run-payment-test.sh

deps: $(VENV)/.installed /usr/bin/redis-server $(POSTGRES) /usr/sbin/nginx /usr/bin/chromium $(NODE) /usr/bin/promtool $(FERRETDB)  ## install the venv, redis-server, postgresql, nginx (tests put it in front), chromium (browser test), node (long-poll.js tests), promtool (alert rules); build FerretDB into .tools/

$(VENV)/.installed: setup.cfg pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $@

/usr/bin/redis-server:
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server

$(POSTGRES):
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql

/usr/bin/node:
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs

/usr/sbin/nginx:
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx

/usr/bin/chromium:
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium

/usr/bin/promtool:  # Debian's prometheus package: promtool checks docker/alerts.yml and the dashboard's queries
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus

$(FERRETDB): scripts/install-ferretdb.sh scripts/ferretdb-id-lookup.patch
	./scripts/install-ferretdb.sh $(FERRETDB)

clean:  ## remove the venv, built tools and local data
	rm -rf $(VENV) .tools var
