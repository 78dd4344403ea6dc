# Two commands matter: `make run` (serve on 127.0.0.1:8000) and `make test` (the whole suite).
# Only Python 3.11+ and make are assumed; everything else is installed into .venv.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run test lint format migrate token clean

$(PY):
	@$(PYTHON) scripts/check_python.py
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(VENV)/.runtime: $(PY) requirements.txt
	$(PY) -m pip install --quiet -r requirements.txt
	@touch $@

$(VENV)/.dev: $(VENV)/.runtime requirements-dev.txt
	$(PY) -m pip install --quiet -r requirements-dev.txt
	@touch $@

.env:
	@$(PY) scripts/dev_env.py

run: $(VENV)/.runtime .env
	@echo "Task API on http://$(HOST):$(PORT)  (docs: http://$(HOST):$(PORT)/docs)"
	@echo "Get a development token:  make token   (or: make token USER_ID=alice)"
	@echo "JWKS mode for your Next.js app: BETTER_AUTH_URL=http://localhost:3000 CORS_ORIGINS=http://localhost:3000 make run  (docs/better-auth.md)"
	$(PY) -m uvicorn main:app --host $(HOST) --port $(PORT) --no-access-log --no-server-header

# USER_ID reaches the script through the environment, never through a shell command line.
export USER_ID
token: $(VENV)/.runtime .env
	@$(PY) scripts/dev_token.py

test: $(VENV)/.dev
	$(PY) -m pytest $(PYTEST_ARGS)

lint: $(VENV)/.dev
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy .

format: $(VENV)/.dev
	$(PY) -m ruff check --fix .
	$(PY) -m ruff format .

# Production: run once per release, before the new version serves (Neon: the direct host).
migrate: $(VENV)/.runtime
	$(PY) scripts/migrate

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache

# The Next.js example (examples/nextjs) and this API together, in JWKS mode, for a first look.
# Needs Node.js 20+ with npm. Ctrl-C stops both.
.PHONY: example client
example: $(VENV)/.runtime .env
	@PY=$(PY) HOST=$(HOST) PORT=$(PORT) scripts/example

# Regenerate the typed client's types (clients/typescript) from the OpenAPI document.
client: $(VENV)/.runtime
	@[ -e clients/typescript/node_modules ] || (cd clients/typescript && npm ci --no-audit --no-fund)
	$(PY) scripts/openapi.py | (cd clients/typescript && node generate.mjs)

# Benchmark (docs/performance.md): the product against a raw baseline, interleaved. Needs wrk
# (apt-get install wrk) and a PostgreSQL to create databases on (BENCH_DATABASE_URL, default
# the local server). About 10 minutes; `make bench BENCH_ARGS=--quick` takes about 3.
.PHONY: bench
$(VENV)/.bench: $(VENV)/.runtime bench/requirements.txt
	$(PY) -m pip install --quiet -r bench/requirements.txt
	@touch $@

bench: $(VENV)/.bench
	$(PY) bench/run.py $(BENCH_ARGS)
