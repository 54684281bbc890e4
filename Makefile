# carbon-sdk: `make demo` runs the local platform and the examples, `make test` the whole suite.
# Both install what they need (uv, the locked Python packages, the system servers), idempotently.

SHELL := /bin/bash
UV_VERSION := 0.13.9
# checkov (the chart tests scan the rendered manifests) pins packaging, urllib3, ... below the
# project's locks, so it lives in its own environment under .tools.
CHECKOV_LOCK := tests/helm/checkov-requirements.txt
CHECKOV = $(TOOLS)/checkov/bin/checkov
TOOLS := .tools
UV := $(TOOLS)/bin/uv
VENV := .venv
PY := $(VENV)/bin/python
# The notebook image runs Python 3.13; the unit tests run there too.
PY313 ?= $(shell (python3.13 -c 'import sys; print(sys.executable)' || PYENV_VERSION=$$(pyenv versions --bare | grep '^3\.13' | tail -n1) pyenv which python3.13) 2>/dev/null)
export UV_CACHE_DIR ?= $(HOME)/.cache/uv

.PHONY: demo docs docs-serve test lint typecheck unit test-313 bench reliability system-deps install clean \
	chart-tools checkov-lock chart-schema generated image image-requirements image-requirements-check image-context \
	image-lint

$(UV):
	python3 -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet "uv==$(UV_VERSION)"

# --compile-bytecode: this machine sets PYTHONDONTWRITEBYTECODE=1, so without it every Python
# process (doctor's checks, the Ray head's per-session servers, notebook kernels) would compile
# its imports from source again, about 4x slower.
$(VENV)/.synced: $(UV) pyproject.toml uv.lock
	$(UV) sync --frozen --all-extras --python 3.11 --compile-bytecode
	touch $@

install: $(VENV)/.synced

$(CHECKOV): $(CHECKOV_LOCK) | $(UV)
	$(UV) venv --quiet --allow-existing --python 3.11 $(TOOLS)/checkov
	VIRTUAL_ENV=$(TOOLS)/checkov $(UV) pip sync --quiet --require-hashes $(CHECKOV_LOCK)
	touch $@

# Re-pin checkov and everything it needs, with hashes (after changing tests/helm/checkov.in).
checkov-lock: $(UV)
	$(UV) pip compile tests/helm/checkov.in --python-version 3.11 --generate-hashes \
		--quiet --output-file $(CHECKOV_LOCK)

# What the Helm chart tests need beyond the Python packages.
chart-tools: $(CHECKOV)

# Regenerate helm/carbon-jupyterhub/values.schema.json and docs/chart-values.md from the SDK.
chart-schema: install
	$(PY) tests/helm/values_schema.py

# Everything generated from the SDK's settings and the lock; run after adding a connector or
# changing a setting or a dependency (tests fail, naming this target, while any is stale).
generated: install chart-schema image-requirements
	$(VENV)/bin/carbon-sdk config schema --markdown > docs/settings-reference.md
	$(PY) tests/docs/cli_reference.py

# The documentation site (mkdocs.yml), built strictly into build/site; `make docs-serve` previews it.
docs: install
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --site-dir build/site
	@echo "open build/site/index.html"

docs-serve: install
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs serve --strict --dev-addr 127.0.0.1:8000

# Servers the local stack runs that come from Debian (PostgreSQL) or need a JDK.
system-deps:
	@bash .ci/system-deps

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: install
	$(VENV)/bin/mypy

test-313: $(UV)
	@if [ -z "$(PY313)" ]; then echo "python3.13 not found: set PY313=/path/to/python3.13"; exit 1; fi
	UV_PROJECT_ENVIRONMENT=.venv-3.13 $(UV) sync --frozen --all-extras --python $(PY313) --compile-bytecode
	.venv-3.13/bin/python -m pytest tests/unit -q

test: install system-deps chart-tools lint typecheck test-313
	$(VENV)/bin/pytest

# Every server the example notebooks use (Ray is not in a bare `dev up`: ~700 MB).
DEMO_SERVICES := postgres s3 trino mlflow kafka ray
# The stack's profile: `dev`, or `dev-<dir>-<hash>` when CARBON_DEV_HOME names another stack.
DEV_PROFILE = $$($(VENV)/bin/carbon-sdk dev profile)

demo: install system-deps
	$(VENV)/bin/carbon-sdk dev up $(DEMO_SERVICES)
	CARBON_PROFILE=$(DEV_PROFILE) $(VENV)/bin/carbon-sdk doctor --timeout 30 \
		$(foreach s,$(DEMO_SERVICES),--require $(s))
	CARBON_PROFILE=$(DEV_PROFILE) $(PY) notebooks/run.py --html build/notebooks
	@echo "Executed notebooks with their outputs: build/notebooks/*.html"
	@echo "The stack keeps running: CARBON_PROFILE=$(DEV_PROFILE) points the SDK at it; 'carbon-sdk dev down' stops it."

# The tests behind docs/reliability.md; their results replace its generated tables.
RELIABILITY_TESTS := tests/reliability tests/security tests/unit/test_timeouts.py \
	tests/postgres/test_postgres.py::test_wrong_port_is_unreachable \
	tests/s3/test_s3_stack.py::test_wrong_port_is_unreachable_within_the_timeout \
	tests/postgres/test_postgres.py::test_write_killed_mid_copy_rolls_back \
	tests/s3/test_s3_stack.py::test_an_upload_cut_mid_way_fails_within_the_timeout_and_leaves_no_parts \
	tests/trino/test_trino_spool.py::test_server_stopped_mid_query \
	tests/kafka/test_kafka.py::test_broker_stopped_mid_publish_reports_failures_and_bounds_the_flush \
	tests/mlflow/test_mlflow.py::test_server_down_mid_run \
	tests/datahub/test_gms.py::test_batch_cut_mid_way_writes_nothing_and_the_call_works_again \
	tests/ray/test_ray.py::test_head_killed_mid_get

reliability: install system-deps
	CARBON_RELIABILITY_REPORT=docs/reliability.md $(VENV)/bin/pytest -q $(RELIABILITY_TESTS) \
		--ignore=tests/reliability/test_report.py  # it checks the file this run writes

bench: install system-deps
	cd benchmarks && for b in bench_*.py; do ../$(PY) $$b || exit 1; done

clean:
	rm -rf $(VENV) .venv-3.13 $(TOOLS) .mypy_cache .ruff_cache .pytest_cache image/dist

# The notebook image (image/, see image/README.md). Its requirements are exported from uv.lock:
# after any change to pyproject.toml or uv.lock (a merge included), `make image-requirements`.
SDK_VERSION = $(shell sed -n 's/^__version__ = "\(.*\)"/\1/p' carbon_sdk/__init__.py)
IMAGE ?= ghcr.io/carbon/carbon-notebook
BASE_IMAGE ?=
IMAGE_TAG ?= $(SDK_VERSION)
DOCKER ?= docker

image-requirements: $(UV)
	python3 image/export_requirements.py

image-requirements-check: $(UV)
	python3 image/export_requirements.py --check

# The build context's SDK wheel, built from this checkout (never fetched from an index).
image-context: $(UV)
	rm -rf image/dist
	$(UV) build --wheel --out-dir image/dist

image-lint: install
	$(VENV)/bin/hadolint image/Dockerfile

# BASE_IMAGE=quay.io/jupyter/pytorch-notebook:cuda12-<date> IMAGE_TAG=$(SDK_VERSION)-gpu for GPU.
image: image-requirements-check image-lint image-context
	$(DOCKER) build image \
		--build-arg CARBON_SDK_VERSION=$(SDK_VERSION) \
		--build-arg VCS_REF=$$(git rev-parse HEAD) \
		$(if $(BASE_IMAGE),--build-arg BASE_IMAGE=$(BASE_IMAGE)) \
		--tag $(IMAGE):$(IMAGE_TAG)
