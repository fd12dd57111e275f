# Two commands on a fresh machine (Python 3.11):
#   make demo   build .venv, train on the bundled sample into weights/demo, evaluate, predict an example
#   make test   build .venv, run the test suite
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: setup system-packages demo test clean

setup: system-packages $(VENV)/.installed

# Graphviz draws the model diagram (multilabel/plot.py --diagram); a CJK font renders the Chinese labels in
# the figures and on multilabel/serve.py's page; headless Chromium and its driver run the page's browser test
# (tests/test_page.py). Installed with apt-get when missing and running as root (CI), otherwise a hint.
SYSTEM_PACKAGES := graphviz fonts-wqy-microhei chromium chromium-driver
system-packages:
	@missing=$$(for p in $(SYSTEM_PACKAGES); do \
		dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'ok installed' || echo $$p; done); \
	if [ -z "$$missing" ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing $$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	else \
		echo "note: install $$missing (Debian/Ubuntu: sudo apt-get install $$missing) for the model diagram" \
		     "and the Chinese labels in multilabel/plot.py's figures, chromium for the page's browser test"; \
	fi

$(VENV)/.installed: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet --no-deps -r requirements.txt
	touch $@

# The demo must finish in minutes on 2 CPU cores without the official checkpoints, so it
# trains the recipe configs/demo.toml: a tiny generated RoFormer-v2 (2 layers, H-32, random
# weights, in the folder DEMO_PRETRAINED the recipe names) with learning rates and an EMA
# suited to random weights. `python train.py` alone uses the small architecture.
# It writes its own folder, weights/demo, so a model trained into weights/ is never touched,
# and replaces the demo model there (--overwrite), so `make demo` runs again.
DEMO_PRETRAINED := pretrained/tiny
DEMO_WEIGHTS := weights/demo
DEMO_FLAGS ?= --config configs/demo.toml

$(DEMO_PRETRAINED)/bert_model.ckpt.index: | setup
	$(PY) tools/make_tiny_checkpoint.py $(DEMO_PRETRAINED)

demo: setup $(DEMO_PRETRAINED)/bert_model.ckpt.index
	$(PY) main.py train $(DEMO_FLAGS) --weights $(DEMO_WEIGHTS) --overwrite
	$(PY) main.py evaluate --weights $(DEMO_WEIGHTS)
	$(PY) main.py plot --weights $(DEMO_WEIGHTS)
	$(PY) main.py predict --weights $(DEMO_WEIGHTS) "青岛地铁施工段发生坍塌，致3人遇难" "某汽车品牌宣布召回两万辆新车"

# Two pytest-xdist workers: most of the suite's time is single-threaded start-up and small models.
# worksteal: a worker that runs out takes tests queued for the other, so the suite does not end on
# one worker finishing its long tests alone.
test: setup
	$(PY) -m pytest -q -n 2 --dist worksteal tests

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
