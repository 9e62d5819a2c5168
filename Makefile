# drover's front door. The two commands that matter:
#   make run   set up this machine, build, start drover on a default model
#   make test  set up, build, run the whole suite (unit, integration, ASan+UBSan, fuzz smoke)
SHELL := /bin/bash
BUILD      ?= build
ASAN_BUILD ?= build-asan
FUZZ_BUILD ?= build-fuzz
MODELS     ?= $(abspath ../shared/models)
RUN_MODEL  ?= $(MODEL)
FUZZ_SECONDS ?= 15
CMAKE_ARGS = -G Ninja -DDROVER_TEST_MODELS=$(MODELS) -DDROVER_LLAMA_PREFIX=$$(scripts/setup --print-prefix)

.PHONY: all setup build run test test-asan fuzz fuzz-smoke compat-deps format clean

all: build

setup:
	@scripts/setup

build: setup
	@cmake -S . -B $(BUILD) $(CMAKE_ARGS) -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	@cmake --build $(BUILD)

PORT ?= 11435
run: build
	@MODEL=$(RUN_MODEL) scripts/run $(BUILD) $(PORT)

test: build test-asan fuzz-smoke compat-deps
	@cd $(BUILD) && ctest --output-on-failure

# The official ollama and openai npm clients, for the compatibility tests.
compat-deps:
	@[ -d tests/compat/node_modules/openai ] && [ -d tests/compat/node_modules/ollama ] || \
	    (cd tests/compat && npm install --no-audit --no-fund --silent)

# The unit tests again, built with AddressSanitizer + UndefinedBehaviorSanitizer.
test-asan: setup
	@cmake -S . -B $(ASAN_BUILD) $(CMAKE_ARGS) -DCMAKE_BUILD_TYPE=Debug -DDROVER_SANITIZE=ON >/dev/null
	@cmake --build $(ASAN_BUILD)
	@cd $(ASAN_BUILD) && ctest --output-on-failure -L unit

# libFuzzer targets (clang). `make fuzz` runs each for FUZZ_SECONDS; the test suite
# runs them briefly as a smoke test over seeds taken from the test models.
fuzz: setup
	@CC=clang cmake -S . -B $(FUZZ_BUILD) $(CMAKE_ARGS) -DCMAKE_BUILD_TYPE=Debug -DDROVER_FUZZ=ON \
	    -DDROVER_SANITIZE=ON >/dev/null
	@cmake --build $(FUZZ_BUILD)
	@scripts/fuzz $(FUZZ_BUILD) $(MODELS) $(FUZZ_SECONDS)

fuzz-smoke:
	@$(MAKE) --no-print-directory fuzz FUZZ_SECONDS=5

format:
	@clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(FUZZ_BUILD)
