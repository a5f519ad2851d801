# Sprocket - plain GNU make.
#
#   make                 build build/sprocket (optimised, no sanitizers)
#   make test            bootstrap, build with ASan+UBSan into build/san, run every test
#   make run             the main job: a standalone broker + name server on
#                        127.0.0.1 (ports 10911 and 9876), data in ./data
#   make bench           the benchmarks, optimised build
#   make SAN=thread      any sanitizer list for a manual build
#
# Each module is a static archive, linked in dependency order (store before
# common), so a call from a lower module into a higher one fails the link.

BUILD   ?= build
SAN     ?=
OPT     ?= -O2
CC      ?= cc

WARN    := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
           -Wpointer-arith -Wformat=2 -Wno-format-nonliteral -Werror \
           -Wno-format-truncation
CFLAGS  := -std=c11 -D_GNU_SOURCE -g $(OPT) $(WARN) -Isrc -Iinclude -pthread -MMD -MP
LDLIBS  := -lcjson -ldeflate -lz -pthread
ifneq ($(SAN),)
CFLAGS  += -fsanitize=$(SAN) -fno-sanitize-recover=all -fno-omit-frame-pointer
LDFLAGS += -fsanitize=$(SAN)
endif

COMMON_SRC := $(wildcard src/common/*.c)
PROTO_SRC  := $(wildcard src/proto/*.c)
STORE_SRC  := $(wildcard src/store/*.c)
NET_SRC    := $(wildcard src/net/*.c)
NAMESRV_SRC := $(wildcard src/namesrv/*.c)
BROKER_SRC := $(wildcard src/broker/*.c)
CLIENT_SRC := $(wildcard src/client/*.c)
EXAMPLE_SRC := $(wildcard examples/*.c)
DAEMON_SRC := $(wildcard daemon/*.c)
TOOLS_SRC  := $(wildcard tools/*.c)
UNIT_SRC   := $(wildcard tests/unit/*.c)
CRASH_SRC  := $(wildcard tests/crash/*.c)
FUZZ_NAMES := $(patsubst tests/fuzz/fuzz_%.c,%,$(wildcard tests/fuzz/fuzz_*.c))

obj = $(patsubst %.c,$(BUILD)/obj/%.o,$(1))

LIB_COMMON := $(BUILD)/libspkcommon.a
LIB_PROTO  := $(BUILD)/libspkproto.a
LIB_STORE  := $(BUILD)/libspkstore.a
LIB_NET    := $(BUILD)/libspknet.a
LIB_NAMESRV := $(BUILD)/libspknamesrv.a
LIB_BROKER := $(BUILD)/libspkbroker.a
LIB_CLIENT := $(BUILD)/libspkclient.a
LIBS       := $(LIB_CLIENT) $(LIB_BROKER) $(LIB_NAMESRV) $(LIB_NET) $(LIB_STORE) $(LIB_PROTO) $(LIB_COMMON)

SPROCKET   := $(BUILD)/sprocket
SPROCKETD  := $(BUILD)/sprocketd
# libsprocket: the client library (include/sprocket.h) with what it uses
# of the lower modules, for programs outside this tree.
LIBSPROCKET := $(BUILD)/libsprocket.a
EXAMPLES   := $(patsubst examples/%.c,$(BUILD)/examples/%,$(EXAMPLE_SRC))
UNIT       := $(BUILD)/tests/unit
CRASH_BINS := $(patsubst tests/crash/%.c,$(BUILD)/tests/%,$(CRASH_SRC))
FUZZ_REPLAY := $(patsubst %,$(BUILD)/tests/replay_%,$(FUZZ_NAMES))
# The reliability workload driver: an outside program (public header and
# libsprocket.a only) that writes a queue history for the checker.
DRIVER     := $(BUILD)/tests/driver

.PHONY: all bootstrap test unit-tests test-bins run bench reliability fuzz check-headers clean format
all: bootstrap $(SPROCKET) $(SPROCKETD) $(LIBSPROCKET) $(EXAMPLES)

bootstrap:
	@sh scripts/bootstrap.sh

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

$(LIB_COMMON): $(call obj,$(COMMON_SRC))
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

$(LIB_PROTO): $(call obj,$(PROTO_SRC))
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

$(LIB_STORE): $(call obj,$(STORE_SRC))
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

$(LIB_NET): $(call obj,$(NET_SRC))
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

$(LIB_NAMESRV): $(call obj,$(NAMESRV_SRC))
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

$(LIB_BROKER): $(call obj,$(BROKER_SRC))
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

$(LIB_CLIENT): $(call obj,$(CLIENT_SRC))
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

# store/record.c is the stored-message codec that pull replies carry; it
# depends on common only.
$(LIBSPROCKET): $(call obj,$(CLIENT_SRC) $(NET_SRC) $(PROTO_SRC) $(COMMON_SRC) src/store/record.c)
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

# Examples build as an outside program would: the public header and
# libsprocket.a only.
$(BUILD)/examples/%: examples/%.c $(LIBSPROCKET) include/sprocket.h
	@mkdir -p $(dir $@)
	$(CC) -std=c11 -D_GNU_SOURCE -g $(OPT) $(WARN) -Iinclude -pthread \
	    $(if $(SAN),-fsanitize=$(SAN) -fno-sanitize-recover=all -fno-omit-frame-pointer) \
	    -o $@ $< $(LIBSPROCKET) $(LDFLAGS) $(LDLIBS)

$(DRIVER): tests/reliability/driver.c $(LIBSPROCKET) include/sprocket.h
	@mkdir -p $(dir $@)
	$(CC) -std=c11 -D_GNU_SOURCE -g $(OPT) $(WARN) -Iinclude -pthread \
	    $(if $(SAN),-fsanitize=$(SAN) -fno-sanitize-recover=all -fno-omit-frame-pointer) \
	    -o $@ $< $(LIBSPROCKET) $(LDFLAGS) $(LDLIBS)

$(SPROCKETD): $(call obj,$(DAEMON_SRC)) $(LIBS)
	$(CC) $(LDFLAGS) -o $@ $(call obj,$(DAEMON_SRC)) $(LIBS) $(LDLIBS)

$(SPROCKET): $(call obj,$(TOOLS_SRC)) $(LIBS)
	$(CC) $(LDFLAGS) -o $@ $(call obj,$(TOOLS_SRC)) $(LIBS) $(LDLIBS)

$(UNIT): $(call obj,$(UNIT_SRC)) $(LIBS)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $(call obj,$(UNIT_SRC)) $(LIBS) $(LDLIBS) -lcriterion

$(BUILD)/tests/%: $(BUILD)/obj/tests/crash/%.o $(LIBS)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $< $(LIBS) $(LDLIBS)

# The queue-history checker (RELIABILITY.md section 5), run by
# tests/checker/run.sh.
$(BUILD)/tests/qcheck: $(BUILD)/obj/tests/checker/qcheck.o $(LIBS)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $< $(LIBS) $(LDLIBS)

# A fuzz target linked with a plain main() that replays its corpus, so
# `make test` re-runs every committed input under the sanitizers.
$(BUILD)/tests/replay_%: $(BUILD)/obj/tests/fuzz/fuzz_%.o $(BUILD)/obj/tests/fuzz/replay.o $(LIBS)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $(filter %.o,$^) $(LIBS) $(LDLIBS)

test-bins: $(SPROCKET) $(SPROCKETD) $(LIBSPROCKET) $(EXAMPLES) $(UNIT) $(CRASH_BINS) $(FUZZ_REPLAY) \
           $(BUILD)/tests/qcheck \
           $(DRIVER)

# Keep the crash tools' objects (built by a pattern rule, so make would
# otherwise treat them as intermediate and delete them after each link).
.SECONDARY: $(patsubst tests/crash/%.c,$(BUILD)/obj/tests/crash/%.o,$(CRASH_SRC)) \
            $(patsubst %,$(BUILD)/obj/tests/fuzz/fuzz_%.o,$(FUZZ_NAMES)) \
            $(BUILD)/obj/tests/fuzz/replay.o

# Every header must compile on its own (STYLE.md 7.2 rule 3).
check-headers:
	@set -e; for h in $$(find src -name '*.h'); do \
	  printf '#include "%s"\n' "$${h#src/}" | \
	  $(CC) -std=c11 -D_GNU_SOURCE $(WARN) -Isrc -Iinclude -fsyntax-only -x c - || \
	  { echo "header does not compile alone: $$h"; exit 1; }; done
	@$(CC) -std=c11 $(WARN) -Wpedantic -Iinclude -fsyntax-only -x c include/sprocket.h
	@echo "headers: every header compiles on its own"

test: bootstrap check-headers
	$(MAKE) --no-print-directory BUILD=build/san SAN=address,undefined OPT=-O1 test-bins
	$(MAKE) --no-print-directory BUILD=build/tsan SAN=thread OPT=-O1 \
	    build/tsan/sprocket build/tsan/sprocketd build/tsan/tests/crashwriter
	TSAN_BUILD=build/tsan sh tests/run.sh build/san

run: all
	@mkdir -p data
	$(SPROCKETD) standalone --storePathRootDir=data --brokerIP1=127.0.0.1 \
	    --listenPort=10911 --namesrvListenPort=9876 $(RUN_ARGS)

bench: all
	sh tests/bench.sh $(BUILD)

# The long tier of the reliability suite (hours): T1_CYCLES, STORE_CYCLES.
reliability: all $(BUILD)/tests/qcheck $(DRIVER) $(CRASH_BINS)
	sh tests/reliability/run.sh $(BUILD)

# Coverage-guided fuzzing with libFuzzer (clang), FUZZ_SECONDS per target;
# new inputs land in tests/fuzz/corpus/<target>.
FUZZ_SECONDS ?= 60
fuzz: bootstrap
	sh tests/fuzz/run_fuzz.sh $(FUZZ_SECONDS)

format:
	clang-format -i $$(find src tools tests -name '*.[ch]')

clean:
	rm -rf build

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
