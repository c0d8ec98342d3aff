# Two entry points for a fresh machine: `make demo` and `make test`.
# Each creates .venv (with uv when it can be installed, for speed; else venv + pip) and installs
# what it needs.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test lint install docs

$(VENV)/.installed: pyproject.toml
	$(PY) -m pip install -q uv >/dev/null 2>&1 || true
	if $(PY) -m uv --version >/dev/null 2>&1; then \
		$(PY) -m uv venv -q --allow-existing -p $(PY) $(VENV) && \
		$(PY) -m uv pip install -q --python $(BIN)/python -e ".[test,docs]"; \
	else \
		$(PY) -m venv $(VENV) && $(BIN)/pip install -q -e ".[test,docs]"; \
	fi
	touch $@

install: $(VENV)/.installed

demo: $(VENV)/.installed
	$(BIN)/mosaic-pais demo --output demo_output

test: $(VENV)/.installed
	$(BIN)/ruff check mosaic_pais tests training benchmarks
	$(BIN)/python -m pytest -q --durations=15
	$(BIN)/mkdocs build --strict --quiet --site-dir $(VENV)/site

docs: $(VENV)/.installed
	$(BIN)/mkdocs build --strict --site-dir site

lint: $(VENV)/.installed
	$(BIN)/ruff check mosaic_pais tests training benchmarks
