# herd: build, test, bench, run. `make help` lists the targets.
#
# Release objects go to build/, binaries to bin/. `make asan` builds the same
# binaries with AddressSanitizer + UndefinedBehaviorSanitizer into
# build-asan/bin/. Every object depends on build/.deps-ok, which runs
# scripts/install-deps once, so a fresh Debian machine needs only `make test`.

CC       ?= cc
BUILD    ?= build
BINDIR   ?= bin
PREFIX   ?= /usr/local
DESTDIR  ?=

PKGS     := libcurl json-c inih libcrypto libcares
WARN     := -Wall -Wextra -Werror -Wshadow -Wpointer-arith -Wstrict-prototypes \
            -Wmissing-prototypes -Wformat=2 -Wvla -Wconversion -Wno-sign-conversion
OPT      ?= -O2 -g
CFLAGS   += -std=c11 $(OPT) $(WARN) -D_GNU_SOURCE -Icommon -Iworker -MMD -MP \
            $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
LDLIBS   += $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lev -lm

COMMON_SRC := $(wildcard common/*.c)
WORKER_SRC := $(filter-out worker/main.c,$(wildcard worker/*.c))
SUP_SRC    := $(wildcard supervisor/sup_*.c)
CTL_SRC    := $(wildcard supervisor/ctl_*.c)
UNIT_SRC   := $(wildcard tests/unit/test_*.c)
BENCH_SRC  := $(wildcard tests/bench/*.c)

obj = $(patsubst %.c,$(BUILD)/%.o,$(1))

LIBHERD   := $(BUILD)/libherd.a
LIBWORKER := $(BUILD)/libworker.a
PROGS     := $(BINDIR)/herd-worker $(BINDIR)/herd-supervisor $(BINDIR)/herdctl
UNITS     := $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(UNIT_SRC))
BENCHES   := $(patsubst tests/bench/%.c,$(BUILD)/bench/%,$(BENCH_SRC))
DEPSTAMP  := build/.deps-ok

.PHONY: all test unit integration run asan lint format bench fuzz soak clean \
        install uninstall help deps

all: $(PROGS) $(UNITS) $(BENCHES)

help:
	@echo "make [all]      build bin/herd-worker, bin/herd-supervisor, bin/herdctl"
	@echo "make test       install missing packages, build, run every test"
	@echo "make run        build and run the shipped herd in the foreground"
	@echo "make asan       ASan+UBSan build into build-asan/bin"
	@echo "make bench      run the benchmarks in tests/bench"
	@echo "make fuzz       run each libFuzzer target FUZZ_SECONDS (default 30)"
	@echo "make soak       chaos soak (SOAK_SECONDS, default 60)"
	@echo "make lint       cppcheck + clang-tidy + clang-format check"
	@echo "make install    PREFIX=$(PREFIX) DESTDIR=..."

deps: $(DEPSTAMP)
$(DEPSTAMP): scripts/install-deps
	@scripts/install-deps
	@mkdir -p $(dir $@) && touch $@

$(BUILD)/%.o: %.c | $(DEPSTAMP)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c -o $@ $<

$(LIBHERD): $(call obj,$(COMMON_SRC))
	@rm -f $@
	$(AR) rcs $@ $^

$(LIBWORKER): $(call obj,$(WORKER_SRC))
	@rm -f $@
	$(AR) rcs $@ $^

$(BINDIR)/herd-worker: $(BUILD)/worker/main.o $(LIBWORKER) $(LIBHERD)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $^ $(LDFLAGS) $(LDLIBS)

$(BINDIR)/herd-supervisor: $(call obj,$(SUP_SRC)) $(LIBHERD)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $^ $(LDFLAGS) $(LDLIBS)

$(BINDIR)/herdctl: $(call obj,$(CTL_SRC)) $(LIBHERD)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $^ $(LDFLAGS) $(LDLIBS)

# A unit test links libherd plus the worker modules it names in
# tests/unit/deps.mk (test_NAME_DEPS := worker/x.c ...).
-include tests/unit/deps.mk
.SECONDEXPANSION:
# Keep test and bench objects: they are intermediate, and make would delete them.
.SECONDARY:
$(BUILD)/tests/%: $(BUILD)/tests/unit/%.o $$(call obj,$$($$*_DEPS)) $(LIBHERD)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $^ $(LDFLAGS) $(LDLIBS) -lcmocka

$(BUILD)/bench/%: $(BUILD)/tests/bench/%.o $(LIBHERD)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $^ $(LDFLAGS) $(LDLIBS)

# The test runner prints one line per test and ends with "N passed, M failed".
# HERD_BIN_DIR lets the same integration suite run against the asan binaries.
# `make test` runs the unit tests, the integration suite against the release
# binaries, then the integration suite again against the ASan+UBSan binaries
# (suites that already run sanitizers or tools of their own are not repeated);
# the runner prints the totals of all three as one line.
ASAN_EXCLUDE := fuzz|valgrind|soak|ops
test: all asan
	@python3 tests/run-tests --build $(BUILD) --bin $(BINDIR) \
	  --asan-build build-asan --asan-bin build-asan/bin --asan-exclude '$(ASAN_EXCLUDE)' $(TESTFLAGS)

unit: all
	@python3 tests/run-tests --build $(BUILD) --bin $(BINDIR) --only unit

integration: all
	@python3 tests/run-tests --build $(BUILD) --bin $(BINDIR) --only integration

asan: | $(DEPSTAMP)
	$(MAKE) BUILD=build-asan BINDIR=build-asan/bin \
	  OPT="-O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined" \
	  LDFLAGS="-fsanitize=address,undefined" \
	  $(addprefix build-asan/bin/,herd-worker herd-supervisor herdctl)

run: $(PROGS)
	$(BINDIR)/herd-supervisor -f -c etc/herd.ini

bench: all
	@python3 tests/bench/run-bench --bin $(BINDIR) --build $(BUILD)

FUZZ_SECONDS ?= 30
fuzz: | $(DEPSTAMP)
	@$(MAKE) -C tests/fuzz FUZZ_SECONDS=$(FUZZ_SECONDS) run

SOAK_SECONDS ?= 60
soak: all
	@python3 tests/soak/soak.py --bin $(BINDIR) --seconds $(SOAK_SECONDS)

BANNED := \b(sprintf|vsprintf|strcpy|strcat|gets|atoi|atol|atof)\(
lint: | $(DEPSTAMP)
	@! grep -nE '$(BANNED)' common/*.c worker/*.c supervisor/*.c || \
	  { echo "lint: banned function (use snprintf/memcpy/strtol)"; exit 1; }
	@! grep -n '"[^"]*%\.\*s' common/*.c worker/*.c supervisor/*.c || \
	  { echo "lint: %.*s in a format: log network bytes with log_line (escaped)"; exit 1; }
	cppcheck --quiet --error-exitcode=1 --enable=warning,performance,portability \
	  --inline-suppr --std=c11 -D_GNU_SOURCE -Icommon \
	  --suppress=missingIncludeSystem common worker supervisor
	clang-tidy --quiet $(COMMON_SRC) $(WORKER_SRC) worker/main.c $(SUP_SRC) $(CTL_SRC) -- \
	  -std=c11 -D_GNU_SOURCE -Icommon $(shell pkg-config --cflags $(PKGS))
	clang-format --dry-run --Werror common/*.[ch] worker/*.[ch] supervisor/*.[ch]

format:
	clang-format -i common/*.[ch] worker/*.[ch] supervisor/*.[ch]

install: $(PROGS)
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/doc/herd/examples
	install -m 0755 $(PROGS) $(DESTDIR)$(PREFIX)/bin/
	cp -R etc/. $(DESTDIR)$(PREFIX)/share/doc/herd/examples/
	install -m 0644 README.md docs/*.md $(DESTDIR)$(PREFIX)/share/doc/herd/

uninstall:
	rm -f $(addprefix $(DESTDIR)$(PREFIX)/bin/,herd-worker herd-supervisor herdctl)
	rm -rf $(DESTDIR)$(PREFIX)/share/doc/herd

clean:
	rm -rf build build-asan bin

-include $(shell find $(BUILD) build-asan -name '*.d' 2>/dev/null)
