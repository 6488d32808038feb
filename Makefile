# Thin porcelain over scripts/ and CMake. `make help` lists the targets.
BUILD_DIR ?= build
BUILD_TYPE ?= RelWithDebInfo
CMAKE_FLAGS ?=
CTEST_FLAGS ?=

.PHONY: help deps configure build test test-unit test-integration run stop status clean

help:
	@echo "make deps     install the Debian packages the project needs (idempotent)"
	@echo "make build    configure (Ninja, ccache) and build everything"
	@echo "make test     build, then run every test with CTest"
	@echo "make run      build and start the local stack (nats, postgres, processor, ingest)"
	@echo "make stop     stop the local stack (data in .data/ is kept)"
	@echo "make status   show what the local stack runs"

deps:
	@scripts/deps.sh

$(BUILD_DIR)/build.ninja:
	cmake -S . -B $(BUILD_DIR) -G Ninja -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) $(CMAKE_FLAGS)

configure: deps $(BUILD_DIR)/build.ninja

build: configure
	cmake --build $(BUILD_DIR)

test: build
	ctest --test-dir $(BUILD_DIR) --output-on-failure $(CTEST_FLAGS)

test-unit: build
	ctest --test-dir $(BUILD_DIR) --output-on-failure -L unit $(CTEST_FLAGS)

test-integration: build
	ctest --test-dir $(BUILD_DIR) --output-on-failure -L integration $(CTEST_FLAGS)

run: build
	@scripts/stack.sh start

stop:
	@scripts/stack.sh stop

status:
	@scripts/stack.sh status

clean:
	rm -rf $(BUILD_DIR)
