# Thin porcelain over scripts/ and CMake. `make help` lists the targets.
BUILD_DIR ?= build
BUILD_TYPE ?= RelWithDebInfo
# CI builds with warnings as errors.
CMAKE_FLAGS ?= $(if $(CI),-DPIPELINE_WARNINGS_AS_ERRORS=ON,)
# Two tests at a time: most of a test's time is spent waiting on the servers
# it started (fsyncs, timeouts it provokes), so the suite takes a third of its
# serial time (about 5 against 16 minutes on 2 cores). CTEST_FLAGS= runs
# it serially.
CTEST_FLAGS ?= --parallel 2
SOURCES = $(shell git ls-files '*.cpp' '*.hpp')
CHECK_CMAKE = cmake -S . -G Ninja -DPIPELINE_WARNINGS_AS_ERRORS=ON

.PHONY: help deps test-deps dev-deps configure build test test-unit test-integration run stop status \
        format check-format lint test-asan test-tsan coverage check check-image clean bench bench-growth bench-stream-bound

help:
	@echo "make deps              install the missing packages of scripts/packages.txt (idempotent)"
	@echo "make test-deps         deps plus scripts/packages-test.txt (prometheus, docker-compose, node), npm ci in tests/clients"
	@echo "make dev-deps          test-deps plus scripts/packages-dev.txt (clang-format/-tidy, gcovr)"
	@echo "make build             install deps, configure $(BUILD_DIR)/ (Ninja, ccache if found), build all"
	@echo "make test              test-deps, build, then run every CTest test (all labels)"
	@echo "make test-unit         build, then run the unit tests (CTest label unit)"
	@echo "make test-integration  build, then run the integration tests (CTest label integration)"
	@echo "make run               build and start the local stack (nats, postgres, processor, ingest)"
	@echo "make stop              stop the local stack (data in .data/ is kept)"
	@echo "make status            show what the local stack runs"
	@echo "make bench             build, benchmark on a fresh stack; update BENCHMARKS.md, bench-results/"
	@echo "make bench-growth      opt-in: costs as the events table grows to 50 M rows (about an hour)"
	@echo "make bench-stream-bound opt-in: a stream at its byte bound, purged while busy; nothing lost"
	@echo "make check-image       build the runtime image with podman from $(BUILD_DIR)'s binaries, run one event through it (root)"
	@echo "make check             check-format, lint, test-asan, test-tsan and coverage, in that order"
	@echo "make check-format      fail if clang-format would change any tracked C++ file"
	@echo "make format            format every tracked C++ file with clang-format, in place"
	@echo "make lint              build, then clang-tidy over the project's sources (findings fail)"
	@echo "make test-asan         unit + integration tests under ASan+UBSan (Debug, build-asan/)"
	@echo "make test-tsan         integration tests under TSan (Debug, build-tsan/)"
	@echo "make coverage          unit + integration tests, gcovr line coverage (build-coverage/)"
	@echo "make clean             remove $(BUILD_DIR)/, build-asan/, build-tsan/ and build-coverage/"
deps:
	@scripts/deps.sh

test-deps:
	@scripts/deps.sh scripts/packages.txt scripts/packages-test.txt
	@scripts/client-deps.sh

dev-deps:
	@scripts/deps.sh scripts/packages.txt scripts/packages-test.txt scripts/packages-dev.txt

$(BUILD_DIR)/build.ninja:
	cmake -S . -B $(BUILD_DIR) -G Ninja -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) $(CMAKE_FLAGS)

configure: deps $(BUILD_DIR)/build.ninja

build: configure
	cmake --build $(BUILD_DIR)

test: test-deps build
	ctest --test-dir $(BUILD_DIR) --output-on-failure $(CTEST_FLAGS)

test-unit: build
	ctest --test-dir $(BUILD_DIR) --output-on-failure -L unit $(CTEST_FLAGS)

test-integration: build
	ctest --test-dir $(BUILD_DIR) --output-on-failure -L integration $(CTEST_FLAGS)

run: build
	@scripts/stack.sh start

# Benchmarks on a fresh stack of their own: BENCHMARKS.md, bench-results/latest.json.
bench: build
	@scripts/bench.sh

# Opt-in (an hour, some 30 GB): costs as the events table grows to 50 M rows.
bench-growth: build
	@scripts/bench-growth.sh

# Opt-in (about 5 minutes): a stream at its byte bound while acked events are purged; nothing lost.
bench-stream-bound: build
	@scripts/bench-stream-bound.sh

stop:
	@scripts/stack.sh stop

status:
	@scripts/stack.sh status

format: dev-deps
	clang-format -i $(SOURCES)

check-format: dev-deps
	clang-format --dry-run --Werror $(SOURCES)
	@echo "format: clean"

lint: dev-deps build
	scripts/lint.sh $(BUILD_DIR)

# Unit and integration tests under AddressSanitizer + UndefinedBehaviorSanitizer.
test-asan: dev-deps
	$(CHECK_CMAKE) -B build-asan -DCMAKE_BUILD_TYPE=Debug -DSANITIZE=address,undefined
	cmake --build build-asan --target unit_tests integration_tests
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	LSAN_OPTIONS=suppressions=$(CURDIR)/tests/sanitizers/lsan.supp:print_suppressions=0 \
	UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	ctest --test-dir build-asan --output-on-failure -L 'unit|integration'

# The concurrency tests (several workers and processors, concurrent
# publishes: the integration suite) under ThreadSanitizer.
test-tsan: dev-deps
	$(CHECK_CMAKE) -B build-tsan -DCMAKE_BUILD_TYPE=Debug -DSANITIZE=thread
	cmake --build build-tsan --target integration_tests
	TSAN_OPTIONS=suppressions=$(CURDIR)/tests/sanitizers/tsan.supp:halt_on_error=1:second_deadlock_stack=1 \
	ctest --test-dir build-tsan --output-on-failure -L integration

coverage: dev-deps
	$(CHECK_CMAKE) -B build-coverage -DCMAKE_BUILD_TYPE=Debug -DPIPELINE_COVERAGE=ON
	cmake --build build-coverage
	find build-coverage -name '*.gcda' -delete
	ctest --test-dir build-coverage --output-on-failure -L 'unit|integration' $(CTEST_FLAGS)
	gcovr --root . --filter 'common/' --filter 'ingest/' --filter 'processor/' \
	      --object-directory build-coverage --print-summary --txt build-coverage/coverage.txt \
	      build-coverage
	@echo "coverage: per-file table in build-coverage/coverage.txt"

# The runtime image, built with podman from $(BUILD_DIR)'s binaries (Dockerfile
# target runtime-prebuilt), run against test servers with one event end to end.
check-image: build
	scripts/check-image.sh $(BUILD_DIR)

check: check-format lint test-asan test-tsan coverage

clean:
	rm -rf $(BUILD_DIR) build-asan build-tsan build-coverage
