# forensic_face: `make run` opens the window, `make test` runs the whole suite. Both set everything up first
# and are quick when it is already set up.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
# Re-install when the declared dependencies change.
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml Makefile 2>/dev/null | sha256sum | cut -c1-16)
SYSTEM_PACKAGES := xvfb xauth libxcb-icccm4 libxcb-keysyms1 libxcb-cursor0 libxcb-shape0 libxcb-xkb1 \
	libxkbcommon-x11-0 libegl1 libgl1 libfontconfig1 libdbus-1-3 poppler-utils
SYSTEM_STAMP := $(VENV)/.system-packages

export FORENSIC_FACE_DATA ?= $(abspath ../shared/data)

.PHONY: setup run test test-fast lint bench package package-test clean

setup: $(STAMP) $(SYSTEM_STAMP)

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(STAMP): $(VENV)/bin/python pyproject.toml
	$(BIN)/pip install -q -e '.[test]'
	# facenet-pytorch pins torch<2.3, numpy<2 and Pillow<10.3; we only use its MTCNN, so install it without
	# those stale pins. Its runtime needs (requests, tqdm, Pillow) are declared in pyproject.toml.
	$(BIN)/pip install -q --no-deps facenet-pytorch==2.6.0
	rm -f $(VENV)/.installed-*
	touch $@

$(SYSTEM_STAMP):
	@missing=""; for p in $(SYSTEM_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" = 0 ]; then \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
		else \
			echo "Missing system packages:$$missing"; \
			echo "Install them with: sudo apt-get install -y$$missing   (then run make again)"; exit 1; \
		fi; \
	fi
	touch $@

run: setup
	$(BIN)/forensic-face-gui

test: setup
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m pytest -q -m "not slow"
	$(BIN)/lint-imports

test-fast: setup
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m pytest -q -x -m "not slow and not lfw"

# Speed and memory are measured here, never asserted in tests. Each prints a table (see docs/).
bench: setup
	$(BIN)/python benchmarks/bench_recognizer.py
	$(BIN)/python benchmarks/bench_precision.py --recognizers dlib-resnet-lr
	$(BIN)/python benchmarks/bench_sr.py
	$(BIN)/python benchmarks/bench_search.py
	$(BIN)/python benchmarks/bench_shortlist.py synthetic
	$(BIN)/python benchmarks/detection_rate.py
	$(BIN)/python benchmarks/bench_first_search.py --profile
	$(BIN)/python benchmarks/bench_large_stills.py

# A self-contained desktop folder (CPU torch, no Python needed on the target): dist/forensic_face/.
# It uses its own build venv under build/, so it does not need `setup`.
package:
	packaging/build.sh

package-test: setup
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m pytest -q -m slow tests/test_package.py

clean:
	rm -rf $(VENV) build dist *.egg-info
