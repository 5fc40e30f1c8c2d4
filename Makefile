# phiq — the two commands of the README, and a few more. On a machine without
# make, ./make.sh TARGET installs it first (the README says ./make.sh demo|test).
#   make demo     convert the default model to four precisions, measure them, chat with int4
#   make test     every test: the -Werror build and the ASan+UBSan build, with CTest, then the fuzzers
#   make          the library and the CLI only (no test suite: needs only `scripts/deps.sh build`)
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
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release -DPHIQ_WERROR=ON -DPHIQ_TESTS=OFF -DCMAKE_INSTALL_PREFIX=$(PREFIX) >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)

test-fast:
	@scripts/deps.sh test
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release -DPHIQ_WERROR=ON -DPHIQ_TESTS=ON >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)
	@cd $(BUILD) && ctest --output-on-failure -j 2

test-asan:
	@scripts/deps.sh test
	@cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DPHIQ_WERROR=ON -DPHIQ_SANITIZE=ON -DPHIQ_TESTS=ON >/dev/null
	@cmake --build $(ASAN_BUILD) -j $(JOBS)
	@cd $(ASAN_BUILD) && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 PHIQ_SANITIZED=1 ctest --output-on-failure -j 2

fuzz:
	@scripts/deps.sh test
	@scripts/fuzz.sh; rc=$$?; [ $$rc -eq 0 ] || [ $$rc -eq 77 ] # 77: skipped, saying why

test:
	@scripts/test.sh

demo: build
	@scripts/demo.sh $(BUILD)/phiq

install: build
	@cmake --install $(BUILD)

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) build-fuzz demo-out
