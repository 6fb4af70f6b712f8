# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
PY       ?= python3
VENV     := .venv
BIN      := $(VENV)/bin
STAMP    := $(VENV)/.installed
STACK    ?= dev
# bench-release: venv or docker
RUNTIME  ?= venv

.PHONY: demo demo-down demo-local test lint system venv bench bench-converge docs clean \
	test-unit test-aws test-bootstrap test-examples test-readiness test-release test-vm bench-release

$(STAMP): requirements.txt requirements-dev.txt pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check -r requirements-dev.txt 2>&1 | grep -v "^WARNING: Location" || true
	$(BIN)/pip install -q --disable-pip-version-check --no-deps -e . 2>&1 | grep -v "^WARNING: Location" || true
	$(BIN)/python -c "import pulumi, pulumi_aws, pulumi_command, pulumi_docker_build, boto3, jinja2, moto, pytest, uv"
	test -x $(BIN)/webstack
	touch $@

venv: $(STAMP)

system:
	bash scripts/setup-system.sh

lint: venv
	$(BIN)/ruff check .
	$(BIN)/pyright

# The VM tier runs last and alone: a TCG guest needs both cores. The slowest tests are listed.
PYTEST := $(BIN)/python -m pytest --durations=5
test: system venv lint
	$(PYTEST) -m "not vm"
	$(PYTEST) -m vm tests/vm

# One tier at a time, for the part you touched (tests/<tier>; the README's table says what each
# proves).
test-unit test-aws test-bootstrap test-examples test-readiness test-release: system venv
	$(PYTEST) -m "not vm" tests/$(@:test-%=%)

test-vm: system venv
	$(PYTEST) -m vm tests/vm

# The stack's server converged in a local qemu VM from its own user-data; prints the URL.
demo: system venv
	$(BIN)/python scripts/local_vm.py up --stack $(STACK)

demo-down: venv
	$(BIN)/python scripts/local_vm.py down --stack $(STACK)

# Faster, no VM: plan under mocks, render, serve the rendered nginx + gunicorn on loopback.
demo-local: system venv
	$(BIN)/python scripts/demo.py --stack $(STACK)

bench: system venv
	$(BIN)/python scripts/bench_program.py

bench-converge: system venv
	$(BIN)/python scripts/bench_converge.py --stack $(STACK)

bench-release: system venv
	$(BIN)/python scripts/bench_release.py --stack $(STACK) --runtime $(RUNTIME)

docs: venv
	$(BIN)/python scripts/docs.py --write

clean:
	rm -rf $(VENV) build .pytest_cache .ruff_cache
