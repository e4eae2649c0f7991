# Task runner behind the README's commands. Run scripts/bootstrap.sh once first.
#   make demo         set up this machine as a hyper host, build the guest image, run the demo
#   make test         everything CI runs: lint, sanity, unit and integration tests
#   make bench        the boot and pod-start benchmarks (figures, not tests)
#   make bench-deps   community.libvirt (from the ansible package on PyPI) for bench/ansible_bench.py
#   make integration TARGETS=guest_image   one integration target
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

VENV        ?= .venv
BIN         := $(abspath $(VENV))/bin
PYTHON      := $(BIN)/python
COLLECTIONS := $(abspath .build/collections)
# ansible-test needs the collection at ansible_collections/hyper/pods as a real directory.
TESTROOT    := $(abspath .build/test)/ansible_collections/hyper/pods
export ANSIBLE_COLLECTIONS_PATH := $(COLLECTIONS)
export PYTHONPATH := $(COLLECTIONS)
export MYPYPATH := $(COLLECTIONS)
export ANSIBLE_FORCE_COLOR ?= 0
export PATH := $(BIN):$(PATH)

.PHONY: help demo test lint sanity units integration bench bench-deps collection testroot clean

help:
	@sed -n 's/^#   //p' Makefile

collection:
	@mkdir -p $(COLLECTIONS)/ansible_collections/hyper
	@ln -sfn $(CURDIR) $(COLLECTIONS)/ansible_collections/hyper/pods

demo: collection
	$(BIN)/ansible-playbook -i playbooks/inventory.yml playbooks/demo.yml

test: lint sanity units integration

lint: collection
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/ansible-lint --offline roles playbooks
	$(BIN)/antsibull-changelog lint

testroot:
	@rm -rf $(dir $(TESTROOT))
	@mkdir -p $(TESTROOT)
	@git ls-files -co --exclude-standard | rsync -a --files-from=- ./ $(TESTROOT)/
	@# ansible-test lists the files to test from git.
	@cd $(TESTROOT) && git init -q && git add -A

# ansible-test downloads get-pip.py from a host outside the package registries; give it
# the offline stand-in for the pip version it pins.
GET_PIP_VERSION := $(shell $(PYTHON) -c "import re, ansible_test, pathlib; p = pathlib.Path(ansible_test.__file__).parent / '_internal/python_requirements.py'; print(re.search(r\"pip='([0-9.]+)'\", p.read_text()).group(1).replace('.', '_'))" 2>/dev/null)
GET_PIP_CACHE   := $(HOME)/.ansible/test/cache/get_pip_$(GET_PIP_VERSION).py

$(GET_PIP_CACHE): scripts/ansible-test-get-pip.py
	@mkdir -p $(dir $@)
	cp $< $@

sanity: testroot $(GET_PIP_CACHE)
	cd $(TESTROOT) && $(BIN)/ansible-test sanity --python 3.11 --color no

units: collection
	$(BIN)/pytest tests/unit

integration: testroot
	cd $(TESTROOT) && $(BIN)/ansible-test integration --local --python 3.11 --allow-destructive --allow-root --color no -v $(TARGETS)

bench: collection
	$(PYTHON) bench/boot.py --images default
	$(PYTHON) bench/pod_start.py

# community.libvirt's libvirt_qemu connection, the baseline of bench/ansible_bench.py. It ships in
# the ansible package on PyPI; only that collection is unpacked.
BENCH_ANSIBLE ?= ansible>=10,<11
bench-deps:
	@rm -rf .build/bench && mkdir -p .build/bench/collections
	$(PYTHON) -m pip download --quiet --no-deps --dest .build/bench '$(BENCH_ANSIBLE)'
	$(PYTHON) -c 'import glob, zipfile; w = zipfile.ZipFile(glob.glob(".build/bench/ansible-*.whl")[0]); \
	  w.extractall(".build/bench/collections", [n for n in w.namelist() if n.startswith("ansible_collections/community/libvirt/")])'

clean:
	rm -rf .build tests/output
