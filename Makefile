# egoworld: `make demo` and `make test` do all set-up on a fresh machine.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.egoworld-setup
APT_PKGS := libusb-1.0-0 libegl1 libgles2 libgl1-mesa-dri
export MUJOCO_GL ?= egl
export PYOPENGL_PLATFORM ?= egl
export HF_HUB_OFFLINE := 1

.PHONY: setup demo test lint bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml Makefile
	@missing=""; for p in $(APT_PKGS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing apt packages:$$missing"; \
	  SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing; \
	fi
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# exact CPU-machine pins; pyproject.toml keeps loose ranges
	$(BIN)/pip install -q torch==2.14.1 torchvision==0.29.1
	$(BIN)/pip install -q -e '.[dev]'
	SAM2_BUILD_CUDA=0 $(BIN)/pip install -q --no-build-isolation 'sam2>=1.1'
	touch $(STAMP)

demo: setup
	$(BIN)/egoworld demo --out demo_out

test: setup
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/python -m pytest tests

lint: setup
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

bench: setup
	$(BIN)/python benchmarks/bench_conditioning.py

clean:
	rm -rf $(VENV) demo_out .pytest_cache .ruff_cache
