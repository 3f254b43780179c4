# Set-up is part of every target: a fresh clone needs only `make demo` or `make test`.
PY      ?= python3
VENV    ?= .venv
BIN      = $(VENV)/bin
STAMP    = $(VENV)/.installed
PYTEST_ARGS ?= -q

.PHONY: test demo install graphviz clean bench

$(BIN)/python:
	$(PY) -m venv $(VENV)

$(STAMP): $(BIN)/python pyproject.toml constraints.txt
	$(BIN)/pip install -q --upgrade pip setuptools wheel
	$(BIN)/pip install -q -c constraints.txt -e '.[dev]'
	touch $(STAMP)

install: $(STAMP) graphviz

# The Debian `graphviz` package provides `dot`, which rendering needs.
graphviz:
	@command -v dot >/dev/null 2>&1 || { \
	  echo "installing graphviz (dot) ..."; \
	  if command -v apt-get >/dev/null 2>&1; then \
	    SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	    $$SUDO apt-get update -qq >/dev/null && $$SUDO apt-get install -y -qq graphviz >/dev/null \
	      || echo "WARNING: could not install graphviz; rendering will fail until 'dot' is on PATH"; \
	  else echo "WARNING: no apt-get; install graphviz so that 'dot' is on PATH"; fi; }

test: install
	$(BIN)/lint-imports
	$(BIN)/python -m pytest $(PYTEST_ARGS)

demo: install
	$(BIN)/jepa-graph demo

# The foundation's two targets: compiled vs hand-written overhead, and compile time against size.
bench: install
	$(BIN)/python benchmarks/overhead.py
	$(BIN)/python benchmarks/compile_time.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
