# phiq — the two commands of the README, and a few more.
#   make demo     convert (and, as issues land, evaluate and chat with) the default model
#   make test     every test: the -Werror build and the ASan+UBSan build, with CTest
#   make install  PREFIX=/usr/local
BUILD ?= build
ASAN_BUILD ?= build-asan
PREFIX ?= /usr/local
JOBS ?= $(shell nproc)
SHARED := $(abspath ../shared)

.PHONY: all build deps test test-fast test-asan fuzz demo install clean

all: build

deps:
	@scripts/deps.sh build

build: deps
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release -DPHIQ_WERROR=ON -DCMAKE_INSTALL_PREFIX=$(PREFIX) >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)

test-fast:
	@scripts/deps.sh test
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release -DPHIQ_WERROR=ON >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)
	@cd $(BUILD) && ctest --output-on-failure -j 2

test-asan:
	@scripts/deps.sh test
	@cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DPHIQ_WERROR=ON -DPHIQ_SANITIZE=ON >/dev/null
	@cmake --build $(ASAN_BUILD) -j $(JOBS)
	@cd $(ASAN_BUILD) && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 PHIQ_SANITIZED=1 ctest --output-on-failure -j 2

fuzz:
	@scripts/deps.sh test
	@scripts/fuzz.sh

test:
	@scripts/test.sh

demo: build
	@scripts/demo.sh $(BUILD)/phiq

install: build
	@cmake --install $(BUILD)

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) build-fuzz demo-out
