# avatarq build. Every dependency is found with pkg-config; new lib/*.c,
# tests/test_*.c and bench/bench_*.c files are picked up without editing this.
#
#   make            bin/avatarq, bin/avatarq-worker, lib/libavatarq.a
#   make test       install what is missing, build, run every test twice:
#                   plain and under AddressSanitizer + UBSan
#   make demo       run the main job on the default setup, then stop
#   make bench      benchmarks (figures, never pass/fail)
#   make fuzz       libFuzzer targets for a bounded time (clang)
#   make install    PREFIX=/usr/local DESTDIR=...

PKGS      := hiredis jansson inih libpq sqlite3 libcurl libcrypto libpng libsystemd \
             libwebp cairo gobject-2.0 harfbuzz freetype2
# Libraries loaded at run time with dlopen(): only their headers are needed
# here (lib/emoji.c says why librsvg is one).
DLOPEN_PKGS := librsvg-2.0
TEST_PKGS := check
CC        ?= cc
VERSION   := 0.1.0

# SAN=1 builds everything with ASan+UBSan into build-asan/ instead.
# O=DIR puts every output (objects, bin/, libavatarq.a, tests) below DIR.
ifneq ($(O),)
BUILD     := $(O)
BINDIR    := $(O)/bin
LIBA      := $(O)/libavatarq.a
else ifeq ($(SAN),1)
BUILD     := build-asan
BINDIR    := build-asan/bin
LIBA      := build-asan/libavatarq.a
else
BUILD     := build
BINDIR    := bin
LIBA      := lib/libavatarq.a
endif
ifeq ($(SAN),1)
SANFLAGS  := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
OPT       := -O1 -g
else
SANFLAGS  :=
OPT       := -O2 -g
endif

PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) $(DLOPEN_PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lm
CHECK_CFLAGS := $(shell pkg-config --cflags $(TEST_PKGS) 2>/dev/null)
CHECK_LIBS   := $(shell pkg-config --libs $(TEST_PKGS) 2>/dev/null)

CFLAGS   ?= $(OPT)
CFLAGS   += -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -MMD -MP \
            -DAQ_VERSION='"$(VERSION)"' -DAQ_DATADIR='"$(PREFIX)/share/avatarq"' \
            -Ilib -Iinclude $(PKG_CFLAGS) $(SANFLAGS)
LDFLAGS  += $(SANFLAGS)

# Short "CC file" lines; V=1 shows whole commands.
ifeq ($(V),1)
Q :=
say = @true
else
Q := @
say = @printf '  %-6s %s\n' $(1) $(2)
endif

LIB_SRC    := $(sort $(wildcard lib/*.c))
WORKER_SRC := $(sort $(wildcard worker/*.c))
PROD_SRC   := $(sort $(wildcard producer/*.c))
TEST_SRC   := $(sort $(wildcard tests/test_*.c))
TEST_SUPPORT_SRC := $(sort $(wildcard tests/support_*.c))
BENCH_SRC  := $(sort $(wildcard bench/bench_*.c))

LIB_OBJ    := $(LIB_SRC:%.c=$(BUILD)/%.o)
WORKER_OBJ := $(WORKER_SRC:%.c=$(BUILD)/%.o)
PROD_OBJ   := $(PROD_SRC:%.c=$(BUILD)/%.o)
TEST_SUPPORT_OBJ := $(TEST_SUPPORT_SRC:%.c=$(BUILD)/%.o)
TEST_BIN   := $(TEST_SRC:tests/%.c=$(BUILD)/tests/%)
BENCH_BIN  := $(BENCH_SRC:bench/%.c=$(BUILD)/bench/%)

.PHONY: all bench-build deps test test-plain test-asan check-build demo bench fuzz install uninstall clean
all: $(BINDIR)/avatarq $(BINDIR)/avatarq-worker $(LIBA)

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(call say,CC,$<)
	$(Q)$(CC) $(CFLAGS) -c $< -o $@

$(BUILD)/tests/%.o: tests/%.c
	@mkdir -p $(dir $@)
	$(call say,CC,$<)
	$(Q)$(CC) $(CFLAGS) $(CHECK_CFLAGS) -Itests -c $< -o $@

$(LIBA): $(LIB_OBJ)
	@mkdir -p $(dir $@)
	$(call say,AR,$@)
	$(Q)rm -f $@
	$(Q)ar rcs $@ $^

$(BINDIR)/avatarq-worker: $(WORKER_OBJ) $(LIBA)
	@mkdir -p $(dir $@)
	$(call say,LD,$@)
	$(Q)$(CC) $(LDFLAGS) -o $@ $(WORKER_OBJ) $(LIBA) $(PKG_LIBS)

$(BINDIR)/avatarq: $(PROD_OBJ) $(LIBA)
	@mkdir -p $(dir $@)
	$(call say,LD,$@)
	$(Q)$(CC) $(LDFLAGS) -o $@ $(PROD_OBJ) $(LIBA) $(PKG_LIBS)

$(BUILD)/tests/test_%: $(BUILD)/tests/test_%.o $(TEST_SUPPORT_OBJ) $(LIBA)
	$(call say,LD,$@)
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(CHECK_LIBS) $(PKG_LIBS) -lpthread

$(BUILD)/bench/%: $(BUILD)/bench/%.o $(LIBA)
	$(call say,LD,$@)
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(PKG_LIBS)

# Keep test and bench objects between builds (they are intermediates of the
# pattern rules, which make would otherwise delete).
.SECONDARY:

deps:
	@bash tests/deps.sh

check-build: all $(TEST_BIN)

# The whole suite, plain then under sanitizers; one summary line at the end.
test: deps
	@$(MAKE) --no-print-directory check-build
	@$(MAKE) --no-print-directory SAN=1 check-build
	@bash tests/run.sh build bin build-asan build-asan/bin

test-plain: deps
	@$(MAKE) --no-print-directory check-build
	@bash tests/run.sh build bin

test-asan: deps
	@$(MAKE) --no-print-directory SAN=1 check-build
	@bash tests/run.sh build-asan build-asan/bin

# deps first, then a fresh make: pkg-config only answers once the -dev
# packages are installed, and make reads it when it starts.
demo: deps
	@$(MAKE) --no-print-directory all
	@bash tests/demo.sh

bench: deps
	@$(MAKE) --no-print-directory all bench-build
	@bash bench/run.sh $(BUILD)

bench-build: $(BENCH_BIN)

fuzz: deps
	@bash tests/fuzz/run.sh

PREFIX  ?= /usr/local
DESTDIR ?=
install: all
	@bash systemd/install.sh install "$(DESTDIR)" "$(PREFIX)" "$(VERSION)"
uninstall:
	@bash systemd/install.sh uninstall "$(DESTDIR)" "$(PREFIX)" "$(VERSION)"

clean:
	rm -rf build build-asan bin lib/libavatarq.a

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
