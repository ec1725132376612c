# Journeyman — the two commands a fresh machine needs: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint venv clean bench chromium lock

# Installs exactly what `requirements.lock` pins (with hashes): a fresh machine gets the
# versions the tests last passed with, not whatever was released overnight.
LOCK := requirements.lock

$(STAMP): pyproject.toml $(LOCK) examples/journeyman-pigeon/pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --require-hashes -r $(LOCK)
	$(BIN)/pip install -q --no-deps --no-build-isolation -e .
	$(BIN)/pip install -q --no-deps --no-build-isolation -e examples/journeyman-pigeon
	touch $(STAMP)

# Refresh the lock: the newest versions pyproject.toml's bounds allow, for every platform.
lock:
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q uv
	printf 'setuptools>=77\nwheel\npip\n' | $(BIN)/uv pip compile pyproject.toml - \
		--extra dev --generate-hashes --universal --python-version 3.11 --upgrade \
		--no-header --quiet -o $(LOCK)

venv: $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# pytest-xdist workers, one per core; each worker starts its own PostgreSQL and Temporal
# servers. A file runs whole on one worker, so module fixtures (the e2e demo, `up`) run once.
# `make test TEST_WORKERS=0` runs in one process.
TEST_WORKERS ?= 2

test: $(STAMP) chromium
	$(BIN)/ruff check .
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -q -p no:cacheprovider -n $(TEST_WORKERS) --dist loadfile

# The dashboard tests drive Debian's headless Chromium; installed once, a no-op when present.
chromium:
	@command -v chromium >/dev/null 2>&1 || [ "$$(id -u)" != 0 ] || \
		(apt-get install -y chromium >/dev/null 2>&1 || \
		 (apt-get update >/dev/null && apt-get install -y chromium >/dev/null))
	@command -v chromium >/dev/null 2>&1 || echo "chromium is missing: the dashboard tests will fail (apt-get install chromium as root)"

demo: $(STAMP)
	$(BIN)/journeyman demo

bench: $(STAMP)
	$(BIN)/python -m bench append --quick

clean:
	rm -rf $(VENV) .journeyman
