# The README's two commands: `make demo` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: demo test lint clean-venv

$(VENV)/.installed: requirements.txt requirements-deploy.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	$(PY) -m pip install -r requirements.txt
	$(PY) -m pip install -r requirements-deploy.txt
	$(PY) -m pip install --no-deps -e .
	touch $@

# Train the demo config on the built-in synthetic dataset (generated on first use), write
# predictions for its test split, score them and print the metric table.
demo: $(VENV)/.installed
	$(PY) run_configs.py demo
	$(PY) inference.py demo
	$(PY) cal_from_mask.py demo

test: $(VENV)/.installed
	$(PY) -m pytest

lint: $(VENV)/.installed
	$(PY) -m pip install ruff
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

clean-venv:
	rm -rf $(VENV)
