# Fresh machine to running hub: `make run`. Fresh machine to passing suite: `make test`.
PY ?= $(shell setup/find-python)
VENV := .venv
BIN := $(VENV)/bin
APT_PACKAGES := chromium redis-server xvfb xauth libxcb-cursor0 libxkbcommon-x11-0 \
	libxcb-icccm4 libxcb-image0 libxcb-keysyms1 libxcb-randr0 libxcb-render-util0 \
	libxcb-shape0 libxcb-xinerama0 libxcb-xkb1 libegl1 libgl1 libnss3 libxcomposite1 \
	libxdamage1 libxrandr2 libxtst6 libxkbfile1 libasound2 libdbus-1-3 libfontconfig1 \
	fonts-dejavu-core

.PHONY: run test setup setup-system lint typecheck pytest bench clean

run: setup
	$(BIN)/agenthub serve $(ARGS)

test: setup setup-system lint typecheck pytest

setup: .stamp-venv web/node_modules/.stamp

.stamp-venv: pyproject.toml
	@test -n "$(PY)" || setup/find-python >/dev/null
	@test -x $(BIN)/python || $(PY) -m venv $(VENV) || { \
		echo "agenthub: '$(PY) -m venv' failed: install the venv module (e.g. apt-get install python3-venv)" >&2; \
		exit 1; }
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev,desktop]'
	touch $@

web/node_modules/.stamp: web/package.json web/package-lock.json
	cd web && npm ci --no-audit --no-fund --loglevel=error
	touch $@

# System packages for the real parts the tests start (browser, Redis, Xvfb, Qt's xcb libraries).
setup-system:
	@missing=$$(for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing: $$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

lint:
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck:
	$(BIN)/mypy

pytest:
	$(BIN)/pytest -q $(PYTEST_ARGS)

bench: setup
	for b in bench/bench_*.py; do $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) web/node_modules .stamp-venv .mypy_cache .ruff_cache .pytest_cache
