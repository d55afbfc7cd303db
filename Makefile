# Two entry points for a fresh machine: `make demo` and `make test` (each sets everything up).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: setup demo test smoke benchmarks clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e ".[test]"
	touch $(STAMP)

setup: $(STAMP)

# The main job: vanilla on the synthetic-nyu-demo preset (about 3 minutes on 2 CPU cores).
demo: $(STAMP)
	$(VENV)/bin/lhl run

test: $(STAMP)
	$(PY) -m pytest -q

smoke: $(STAMP)
	$(VENV)/bin/lhl run --preset smoke

benchmarks: $(STAMP)
	$(PY) benchmarks/train_speed.py
	$(PY) benchmarks/render_speed.py

clean:
	rm -rf $(VENV) runs
