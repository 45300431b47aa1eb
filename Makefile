# Every target sets itself up on a fresh machine: `make demo` and `make test` are all a user needs.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.install-stamp

.PHONY: install system-deps demo test lint bench bench-large bench-robust bench-scaleout browser-check clean

SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# What the napari tests need from Debian: a virtual display (Xvfb) and the X libraries of Qt's
# xcb platform plugin that PyQt5's wheel does not bundle.
QT_DEBS := xvfb xauth libxcb-icccm4 libxcb-keysyms1 libxcb-xinerama0 libxcb-image0 \
           libxcb-render-util0 libxcb-shape0 libxcb-cursor0 libxkbcommon-x11-0 libgl1 libegl1 \
           libdbus-1-3 libfontconfig1

install: $(STAMP) system-deps

# Installs only what is missing (a no-op on a machine that has it all, or without apt-get).
system-deps:
	@command -v apt-get >/dev/null 2>&1 || exit 0; \
	n=$$(dpkg-query -W -f='$${Status}\n' $(QT_DEBS) 2>/dev/null | grep -c 'ok installed'); \
	[ "$$n" -eq $(words $(QT_DEBS)) ] || { $(SUDO) apt-get update -qq && \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
	  $(QT_DEBS); }

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[all]"
	touch $(STAMP)

demo: install
	$(BIN)/dendritect demo --out demo-out

test: install
	$(BIN)/python -m pytest -q

lint: install
	$(BIN)/ruff check src tests benchmarks

bench: install
	$(BIN)/python -m benchmarks.run

# A 4-step 512x1024x1024 uint16 series through analyze with --memory-limit 3GB (long; not in CI).
bench-large: install
	$(BIN)/python -m benchmarks.large

# Worst-case accuracy over randomised twin cells: tuning seeds 0-39, held-out 100-139
# (docs/accuracy.md; long, not in CI). ROBUST_ARGS="--seeds 0-39" runs a part.
bench-robust: install
	$(BIN)/python -m benchmarks.robust --jobs 2 --write-docs $(ROBUST_ARGS)

# The analysis on a LocalCluster (later steps aligned by the workers) against one process:
# identical results, and how the work spread over the workers (docs/scaling.md).
bench-scaleout: install
	$(BIN)/python -m benchmarks.scaleout --report benchmarks/results/scaleout-report.html $(SCALEOUT_ARGS)

# Open the demo report in headless Chromium: no console errors, no network request, a screenshot
# (into browser-check/, ignored: the tracked docs image is not rewritten).
browser-check: install
	command -v chromium >/dev/null 2>&1 || { $(SUDO) apt-get update && $(SUDO) apt-get install -y chromium; }
	$(BIN)/python tests/browser_check.py

clean:
	rm -rf $(VENV) demo-out .pytest_cache .ruff_cache
