# Thin wrapper over CMake: the commands a developer and CI type.
#   make run    install what is missing, build, start the server with sample data
#   make test   install, build with -Werror, run every test, then again under ASan+UBSan
#   make bench  install, build tuned for this CPU, print the benchmark tables
JOBS ?= $(shell nproc)
CMAKE_FLAGS ?=

.PHONY: all deps build build-asan build-bench run demo-backtest test test-release test-asan bench format clean

all: build

deps:
	@bash scripts/deps.sh

build: deps
	@cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DQG_WERROR=ON $(CMAKE_FLAGS) >/dev/null
	@cmake --build build -j $(JOBS)

build-asan: deps
	@cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DQG_WERROR=ON -DQG_SANITIZE=ON $(CMAKE_FLAGS) >/dev/null
	@cmake --build build-asan -j $(JOBS)

build-bench: deps
	@cmake -S . -B build-bench -DCMAKE_BUILD_TYPE=Release -DQG_NATIVE=ON -DQG_TESTS=OFF >/dev/null
	@cmake --build build-bench -j $(JOBS)

run: build
	@mkdir -p var
	@[ -f var/sample-1m.csv ] || ./build/quantgate gen-data --bars 200000 --timeframe 1m --seed 42 --start 2024-01-01 --out var/sample-1m.csv
	@echo "Starting the server on its embedded default (SQLite in var/). Stop it with Ctrl-C."
	@echo "The first start prints the admin's one-time password; later: ./build/quantgate user passwd --email admin@quantgate.local"
	./build/quantgate serve --sample-data var/sample-1m.csv

demo-backtest: build
	@mkdir -p var
	@[ -f var/sample-1m.csv ] || ./build/quantgate gen-data --bars 200000 --timeframe 1m --seed 42 --start 2024-01-01 --out var/sample-1m.csv
	./build/quantgate backtest --data var/sample-1m.csv --strategy sma_cross --timeframe 15m --fee-bps 10 --slippage-bps 2 --report var/sample-report.html
	@echo "HTML report: var/sample-report.html"

test: test-release test-asan

test-release: build
	@cd build && ctest --output-on-failure -j $(JOBS)

test-asan: build-asan
	@cd build-asan && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
		LSAN_OPTIONS=suppressions=$(CURDIR)/tests/lsan.supp:print_suppressions=0 \
		UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 ctest --output-on-failure -j $(JOBS)

bench: build-bench
	@bash bench/run.sh build-bench

format:
	@clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf build build-asan build-bench
