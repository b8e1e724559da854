# SPDX-License-Identifier: GPL-2.0-or-later
#
# qemu-gmem1g: upstream QEMU (pinned in upstream.lock) + patches/ + our
# overlay files, built in build/qemu.
#
#   make          install dependencies, fetch upstream, assemble, build
#   make check    build, then run this project's tests, the upstream
#                 qtests the fork must keep passing, the demo and the
#                 manual's build
#   make check-lab  only the lab: the tests that need a real KVM or real
#                 1 GiB pages, in a Linux guest that has both (under TCG)
#   make demo     boot a Linux guest on 1 GiB guest_memfd memory
#   make bench    conversion cost, footprint, startup and scaling
#   make fuzz     fuzz the page-state-change paths
#   make docs     build the HTML manual

SHELL := /bin/bash
TOP := $(CURDIR)
SRC := build/src
BLD := build/qemu
QEMU := $(BLD)/qemu-system-x86_64
JOBS ?= $(shell nproc)

# Fixed flags, the same on every invocation: a change reconfigures and
# rebuilds everything.  ccache is always used: scripts/deps always installs
# it (elsewhere, EXTRA_CONFIGURE_FLAGS='--cc=cc --cxx=c++' goes without).
CONFIGURE_FLAGS := \
	--target-list=x86_64-softmmu --python=/usr/bin/python3 \
	--without-default-features \
	--enable-kvm --enable-tcg --enable-slirp --enable-fdt=system \
	--enable-vhost-user --enable-vhost-net \
	--firmwarepath=/usr/share/qemu-firmware:/usr/share/seabios:/usr/lib/ipxe/qemu \
	--disable-docs --cc="ccache cc" --cxx="ccache c++" \
	$(EXTRA_CONFIGURE_FLAGS)

.PHONY: all build deps assemble configure configure-nokvm check check-lab demo bench fuzz docs \
	check-sanitize clean distclean

all: build

deps:
	@scripts/deps

assemble: deps
	@scripts/assemble

# Configure tree $(1) with flags $(2), logging to $(3), only when the
# flags change (or the tree was never configured); $(4) names it.
define configure-tree
	@flags='$(2)'; \
	if [ ! -f $(1)/build.ninja ] || [ "$$(cat $(1)/.configure-flags 2>/dev/null)" != "$$flags" ]; then \
		echo "configure$(4): $$flags"; \
		rm -rf $(1); mkdir -p $(1); \
		(cd $(1) && eval ../src/configure $$flags) > $(3) 2>&1 || \
			{ tail -n 30 $(3); echo "configure failed: see $(3)"; exit 1; }; \
		echo "$$flags" > $(1)/.configure-flags; \
	fi
endef

configure: assemble
	$(call configure-tree,$(BLD),$(CONFIGURE_FLAGS),build/configure.log,)

build: configure
	@v="qemu-gmem1g $$(git describe --always --dirty --tags 2>/dev/null || echo unknown)"; \
	[ "$$(cat $(SRC)/FORK-VERSION 2>/dev/null)" = "$$v" ] || echo "$$v" > $(SRC)/FORK-VERSION
	@# The option ROMs first, one at a time (they race: scripts/option-roms).
	@flock build/.build-lock scripts/option-roms $(BLD) > build/option-roms.log 2>&1 || \
		{ cat build/option-roms.log; exit 1; }
	@# Leave out the generation steps (ninja runs some every time): compiling
	@# and linking show what a build really does.
	@set -o pipefail; \
	flock build/.build-lock $(MAKE) --no-print-directory -C $(BLD) -j$(JOBS) | \
		{ grep --line-buffered -vE '^\[[0-9]+/[0-9]+\] Generating ' || true; }

# The same QEMU without KVM (--disable-kvm), in its own tree from the same
# sources: make check builds what its suite needs and runs it there.
BLD_NOKVM := build/qemu-nokvm
configure-nokvm: configure
	$(call configure-tree,$(BLD_NOKVM),$(subst --enable-kvm,--disable-kvm,$(CONFIGURE_FLAGS)),build/configure-nokvm.log, (without KVM))

check: build configure-nokvm
	@scripts/check

# Debian's newest kernel (lab.lock) booted under TCG with KVM and 1 GiB
# pages; runs the tests that need them (docs/devel/guest-memfd-lab.rst).
check-lab: build
	@scripts/deps --lab
	@tests/lab/run

# Installs the guest's kernel and busybox (as root), builds the initramfs
# in build/demo/ and boots it (about 10 s on TCG; it gives up after 170 s).
# demo/run --check is the same as a test (scripts/check runs it).
demo: build
	@demo/run

# Runs for a few minutes; as root, raises the 2 MiB hugetlb pool for the run
# and restores it.  Results and the plot also go to build/bench/.
bench: build
	@flock build/.build-lock ninja -C $(BLD) -j$(JOBS) tests/bench/guest-memfd-bench >/dev/null
	@python3 tests/bench/guest-memfd-bench.py --bench $(BLD)/tests/bench/guest-memfd-bench \
		--qemu $(QEMU) --out build/bench

# libFuzzer over the page-state-change list processing, the page-state
# core and the kernel model (tests/fuzz/guest-memfd-fuzz.c), built with
# clang from the same sources as QEMU; then QEMU's own generic fuzzer on a
# guest_memfd machine with virtio-blk and the PSC device (scripts/fuzz-qemu,
# its own clang tree, build/fuzz-qemu).  FUZZ_SECONDS bounds each run.
FUZZ_SECONDS ?= 60
FUZZ := build/fuzz/guest-memfd-fuzz
FUZZ_SRCS := tests/fuzz/guest-memfd-fuzz.c system/guest-memfd-state.c \
	system/guest-memfd-model-backing.c system/guest-memfd-model-pool.c \
	system/guest-memfd-null.c tests/unit/guest-memfd-model-testing.c \
	system/guest-memfd-model.c hw/misc/guest-memfd-psc-list.c
fuzz: build
	@scripts/deps --fuzz
	@mkdir -p build/fuzz/corpus
	@clang -g -O1 -fsanitize=fuzzer,address,undefined \
		-fno-sanitize-recover=undefined -std=gnu11 -D_GNU_SOURCE \
		-D_FILE_OFFSET_BITS=64 -I $(BLD) -I $(SRC)/include -I $(SRC) \
		-iquote $(SRC)/host/include/x86_64 \
		-iquote $(SRC)/host/include/generic -isystem $(SRC)/linux-headers \
		$$(pkg-config --cflags glib-2.0) $(addprefix $(SRC)/,$(FUZZ_SRCS)) \
		$(BLD)/libevent-loop-base.a.p/event-loop-base.c.o \
		$(BLD)/libqom.a.p/*.o $(BLD)/libqemuutil.a \
		$$(pkg-config --libs glib-2.0 gmodule-2.0) -lrt -lm -lpthread \
		-o $(FUZZ)
	@echo "fuzz: running $(FUZZ) for $(FUZZ_SECONDS) s (FUZZ_SECONDS=N to change)"
	@$(FUZZ) -max_total_time=$(FUZZ_SECONDS) -rss_limit_mb=4096 \
		-print_final_stats=1 build/fuzz/corpus tests/fuzz/corpus 2>&1 | \
		grep -E "^#[0-9]+[[:space:]]+(INITED|DONE)|^stat::number_of_executed_units|ERROR|SUMMARY" ; \
		exit $${PIPESTATUS[0]}
	@scripts/fuzz-qemu $(FUZZ_SECONDS)

# This project's unit tests and qtests on an ASan+UBSan build of QEMU
# (its own tree, build/sanitize), leaks included.
SAN := build/sanitize
check-sanitize: assemble
	@flags='$(CONFIGURE_FLAGS) --enable-asan --enable-ubsan'; \
	if [ ! -f $(SAN)/build.ninja ]; then \
		echo "configure (sanitizers): $$flags"; mkdir -p $(SAN); \
		(cd $(SAN) && eval ../src/configure $$flags) > build/sanitize-configure.log 2>&1 || \
			{ tail -n 30 build/sanitize-configure.log; exit 1; }; \
	fi
	@flock build/.build-lock ninja -C $(SAN) -j$(JOBS) qemu-system-x86_64 \
		$$(cd $(SAN) && meson test --list --suite gmem1g 2>/dev/null | \
		   sed -n 's|.* / \(qtest-x86_64/\)\{0,1\}\(.*\)|\2|p' | \
		   sed 's|^guest-memfd-.*-test$$|tests/qtest/&|; s|^test-guest-memfd-.*|tests/unit/&|')
	@scripts/hugepages reserve || true
	@cd $(SAN) && UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
		ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
		LSAN_OPTIONS=suppressions=$(TOP)/tests/sanitize/lsan.supp \
		meson test --no-rebuild --print-errorlogs --suite gmem1g; rc=$$?; \
		/usr/bin/python3 $(TOP)/scripts/test-summary meson-logs/testlog.json; exit $$rc

# The HTML manual, in its own tree (build/docs) so that build/qemu is not
# reconfigured; scripts/check runs scripts/docs as a test too.
docs: assemble
	@scripts/docs

clean:
	@[ ! -d $(BLD) ] || $(MAKE) --no-print-directory -C $(BLD) clean

distclean:
	rm -rf build
