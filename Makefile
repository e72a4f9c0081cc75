# Two entry points: `make demo` (the whole platform on the embedded stack) and `make test`.
# Both create .venv with plain `python3 -m venv` and install the project with its test extra;
# `make install` and `make test` also put promtool into .venv/bin (tests/unit/test_alert_rules.py).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=
# the suite mostly waits on servers and workers: two pytest-xdist workers, one test file each
# at a time (module fixtures stay in one process); PYTEST_WORKERS=0 runs in this process
PYTEST_WORKERS ?= 2

.PHONY: install system-tools demo test lint imports typecheck clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --upgrade pip
	$(BIN)/python -m pip install -e '.[test]'
	touch $(STAMP)

# promtool from Debian's `prometheus` package: only the binary is extracted, nothing is
# installed system-wide. The package lists are refreshed only when the download fails.
$(BIN)/promtool: | $(BIN)/python
	@echo "fetching promtool (Debian package prometheus) into $(BIN)"
	@set -e; tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	cd "$$tmp"; \
	apt-get download prometheus >/dev/null 2>&1 \
		|| { apt-get update -qq && apt-get download prometheus; } \
		|| { echo "promtool: 'apt-get download prometheus' failed (needs apt; run as root for apt-get update)" >&2; exit 1; }; \
	dpkg-deb -x prometheus_*.deb root; \
	cp root/usr/bin/promtool "$(abspath $(BIN))/promtool.part"; \
	mv "$(abspath $(BIN))/promtool.part" "$(abspath $(BIN))/promtool"
	@$(BIN)/promtool --version | head -1

# Debian packages the tests use: Chromium and its driver (the portal's browser tests, driven
# by Playwright with /usr/bin/chromium) and poppler-utils (pdftoppm, pdftotext for the invoice
# PDF). Installed once with apt-get (as root, or through sudo) when a command is missing.
SYSTEM_TOOLS := /usr/bin/chromium /usr/bin/chromedriver /usr/bin/pdftoppm /usr/bin/pdftotext
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

$(SYSTEM_TOOLS):
	@echo "installing Debian packages chromium chromium-driver poppler-utils"
	@$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver poppler-utils >/dev/null \
		|| { $(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver poppler-utils >/dev/null; }
	@test -x $@

system-tools: $(SYSTEM_TOOLS)

install: $(STAMP) $(BIN)/promtool system-tools

demo: $(STAMP)
	$(BIN)/billing demo

test: $(STAMP) $(BIN)/promtool system-tools lint imports typecheck
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check services contracts tests bench

# the import rule between services (pyproject.toml [tool.importlinter], docs/design.md)
imports: $(STAMP)
	$(BIN)/lint-imports

typecheck: $(STAMP)
	$(BIN)/mypy

clean:
	rm -rf $(VENV) .billing
