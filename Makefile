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

# The main job: vanilla, joint, DIS and HAD on the synthetic-nyu-demo preset as one experiment
# (two runs at a time on 2 cores), then its report (runs/demo/report/report.html).
demo: $(STAMP)
	$(VENV)/bin/lhl bench experiments/demo.yaml --out runs/demo --jobs 2
	$(VENV)/bin/lhl report runs/demo

# The whole suite with one torch thread, then the numerical tests again with two (reduction order
# changes with the thread count; no tolerance may depend on it).
NUMERICAL_TESTS := tests/losses tests/metrics tests/methods/test_sgp.py tests/methods/test_icarl.py \
	tests/methods/test_lwf.py tests/methods/test_pod.py tests/methods/test_ewc.py tests/methods/test_spg.py

test: $(STAMP)
	$(VENV)/bin/lint-imports
	$(PY) -m pytest -q
	LHL_TEST_THREADS=2 $(PY) -m pytest -q $(NUMERICAL_TESTS)

smoke: $(STAMP)
	$(VENV)/bin/lhl run --preset smoke

benchmarks: $(STAMP)
	$(PY) benchmarks/train_speed.py
	$(PY) benchmarks/render_speed.py

clean:
	rm -rf $(VENV) runs
