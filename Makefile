# Thin wrapper over meson: installs what is missing, configures, builds, runs.
#   make demo    - build and boot a guest on -netdev user + virtio-net-pci (KVM, else Linux under QEMU TCG)
#   make check   - the full test suite
#   make fuzz-smoke / make fuzz TARGET=x   - libFuzzer targets (clang)
#   make bench   - benchmarks vs QEMU and DPDK, with a plot (release build in build-bench;
#                  by hand, never in check; BENCH_ARGS="--only inproc,qtest --quick")
BUILD ?= build
FUZZ_BUILD ?= build-fuzz
MESON_OPTS ?=
TARGET ?=
BENCH_BUILD ?= build-bench
BENCH_ARGS ?=

.PHONY: all deps build demo check fuzz fuzz-smoke bench clean

all: build

deps:
	@sh scripts/install-deps.sh

$(BUILD)/build.ninja:
	@sh scripts/install-deps.sh
	meson setup $(BUILD) $(MESON_OPTS)

build: deps $(BUILD)/build.ninja
	ninja -C $(BUILD)

demo: build
	@sh scripts/demo.sh $(BUILD)

check: build
	meson test -C $(BUILD) --print-errorlogs --num-processes 2

$(FUZZ_BUILD)/build.ninja:
	@sh scripts/install-deps.sh
	CC=clang meson setup $(FUZZ_BUILD) -Dfuzzing=true -Dguest=false

fuzz-smoke: deps $(FUZZ_BUILD)/build.ninja
	sh scripts/fuzz.sh build $(FUZZ_BUILD)
	sh scripts/fuzz.sh smoke $(FUZZ_BUILD)

fuzz: deps $(FUZZ_BUILD)/build.ninja
	sh scripts/fuzz.sh build $(FUZZ_BUILD)
	sh scripts/fuzz.sh run $(FUZZ_BUILD) $(TARGET)

$(BENCH_BUILD)/build.ninja:
	@sh scripts/install-deps.sh
	meson setup $(BENCH_BUILD) -Dbuildtype=release

bench: deps $(BENCH_BUILD)/build.ninja
	ninja -C $(BENCH_BUILD)
	python3 bench/run-all.py --build $(BENCH_BUILD) $(BENCH_ARGS)

clean:
	rm -rf $(BUILD) $(FUZZ_BUILD)
