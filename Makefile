# SPDX-License-Identifier: Apache-2.0
#
# The two commands a newcomer runs on a fresh Debian 12 machine, as root:
#   make demo    install dependencies, build, install, run a snippet in the sandbox
#   make check   install test dependencies, build with ASan+UBSan and -Werror, run every suite
# and the rest: make build | install | bench | soak | format-check | clean

BUILD ?= build
CHECK_BUILD ?= build-check
PREFIX ?= /usr/local
MESON_OPTS ?=

.PHONY: all deps build install demo check bench soak format-check lint clean

all: build

deps:
	scripts/setup-deps.sh build run

build:
	@[ -d $(BUILD) ] || meson setup $(BUILD) --prefix=$(PREFIX) --buildtype=release -Dtests=false $(MESON_OPTS)
	ninja -C $(BUILD)

install: build
	ninja -C $(BUILD) install
	ldconfig

demo: deps
	$(MAKE) install
	scripts/demo.sh

check:
	scripts/setup-deps.sh test
	scripts/check.sh $(CHECK_BUILD)

bench:
	scripts/setup-deps.sh test bench
	scripts/bench.sh

# 1000 mixed executions through `toolruntime serve` with a containerd restart
# and a SIGKILL of the service (tests/serve/soak.py); `make check` runs 150.
soak:
	scripts/setup-deps.sh test
	@[ -d build-soak ] || meson setup build-soak --buildtype=debug -Dtests=false
	ninja -C build-soak
	python3 tests/serve/soak.py --bin build-soak/src/cli/toolruntime --executions 1000

format-check:
	scripts/lint.sh

lint: format-check

clean:
	rm -rf $(BUILD) $(CHECK_BUILD) build-bench
