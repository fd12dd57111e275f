# Two commands on a fresh machine (Python 3.11):
#   make demo   build .venv, train on the bundled sample, evaluate, predict an example
#   make test   build .venv, run the test suite
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: setup demo test clean

setup: $(VENV)/.installed

$(VENV)/.installed: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet --no-deps -r requirements.txt
	touch $@

# A short run: the bundled sample is small and, without an official checkpoint, the encoder
# starts from random weights, so the demo uses higher learning rates and a faster EMA.
DEMO_FLAGS ?= --epochs 30 --patience 8 --batch-size 32 --encoder-lr 5e-4 --head-lr 5e-3 --ema-momentum 0.99

demo: setup
	$(PY) main.py train $(DEMO_FLAGS)
	$(PY) main.py evaluate
	$(PY) main.py predict "青岛地铁施工段发生坍塌，致3人遇难" "某汽车品牌宣布召回两万辆新车"

test: setup
	$(PY) -m pytest -q tests

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
