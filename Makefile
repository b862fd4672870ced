# avatarq build. Every dependency is found with pkg-config; new lib/*.c,
# tests/test_*.c and bench/bench_*.c files are picked up without editing this.
#
#   make            bin/avatarq, bin/avatarq-worker, bin/avatarq-http, lib/libavatarq.a
#   make test       install what is missing, build, run every test twice:
#                   plain and under AddressSanitizer + UBSan; LOAD=N runs N
#                   busy loops beside it (make test LOAD=2)
#   make demo       run the main job on the default setup, then stop
#   make bench      benchmarks (figures, never pass/fail)
#   make fuzz       libFuzzer targets for a bounded time (clang)
#   make install    PREFIX=/usr/local DESTDIR=...

PKGS      := hiredis jansson inih libpq sqlite3 libcurl libssl libcrypto libpng libsystemd \
             libwebp cairo gobject-2.0 harfbuzz freetype2 libdeflate
# Only bin/avatarq-http links the HTTP server library.
HTTP_PKGS := libmicrohttpd
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

PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) $(HTTP_PKGS) $(DLOPEN_PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lm
HTTP_LIBS  := $(shell pkg-config --libs $(HTTP_PKGS) 2>/dev/null)
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
HTTP_SRC   := $(sort $(wildcard http/*.c))
TEST_SRC   := $(sort $(wildcard tests/test_*.c))
TEST_SUPPORT_SRC := $(sort $(wildcard tests/support_*.c))
BENCH_SRC  := $(sort $(wildcard bench/bench_*.c))

LIB_OBJ    := $(LIB_SRC:%.c=$(BUILD)/%.o)
WORKER_OBJ := $(WORKER_SRC:%.c=$(BUILD)/%.o)
PROD_OBJ   := $(PROD_SRC:%.c=$(BUILD)/%.o)
HTTP_OBJ   := $(HTTP_SRC:%.c=$(BUILD)/%.o)
TEST_SUPPORT_OBJ := $(TEST_SUPPORT_SRC:%.c=$(BUILD)/%.o)
TEST_BIN   := $(TEST_SRC:tests/%.c=$(BUILD)/tests/%)
BENCH_BIN  := $(BENCH_SRC:bench/%.c=$(BUILD)/bench/%)

.PHONY: all dist bench-build deps test test-plain test-asan check-build demo bench fuzz install uninstall clean
all: $(BINDIR)/avatarq $(BINDIR)/avatarq-worker $(BINDIR)/avatarq-http $(LIBA)

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

# The worker as the tests run it: the same objects, but worker.c built with
# AQ_TEST_HOOKS (AVATARQ_TEST_HANG_SEED). bin/avatarq-worker, which `make
# install` ships, has no test hook at all.
TESTBIN    := $(BUILD)/testbin
TEST_WORKER_OBJ := $(filter-out $(BUILD)/worker/worker.o,$(WORKER_OBJ)) $(BUILD)/testhooks/worker.o

$(BUILD)/testhooks/worker.o: worker/worker.c
	@mkdir -p $(dir $@)
	$(call say,CC,$< [test hooks])
	$(Q)$(CC) $(CFLAGS) -DAQ_TEST_HOOKS -c $< -o $@

$(TESTBIN)/avatarq-worker: $(TEST_WORKER_OBJ) $(LIBA)
	@mkdir -p $(dir $@)
	$(call say,LD,$@)
	$(Q)$(CC) $(LDFLAGS) -o $@ $(TEST_WORKER_OBJ) $(LIBA) $(PKG_LIBS)

$(BINDIR)/avatarq: $(PROD_OBJ) $(LIBA)
	@mkdir -p $(dir $@)
	$(call say,LD,$@)
	$(Q)$(CC) $(LDFLAGS) -o $@ $(PROD_OBJ) $(LIBA) $(PKG_LIBS)

$(BINDIR)/avatarq-http: $(HTTP_OBJ) $(LIBA)
	@mkdir -p $(dir $@)
	$(call say,LD,$@)
	$(Q)$(CC) $(LDFLAGS) -o $@ $(HTTP_OBJ) $(LIBA) $(HTTP_LIBS) $(PKG_LIBS) -lpthread

# The dashboard page is compiled in with .incbin (http/dashboard.c).
$(BUILD)/http/dashboard.o: http/dashboard.html

$(BUILD)/tests/test_%: $(BUILD)/tests/test_%.o $(TEST_SUPPORT_OBJ) $(LIBA)
	$(call say,LD,$@)
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(CHECK_LIBS) $(PKG_LIBS) -lpthread

# Benchmarks link the test support too (tests/support_*.c: throwaway
# servers, the worker fleet of support_worker.c), so the end-to-end ones do
# not repeat the worker set-up.
$(BUILD)/bench/%.o: bench/%.c
	@mkdir -p $(dir $@)
	$(call say,CC,$<)
	$(Q)$(CC) $(CFLAGS) $(CHECK_CFLAGS) -Itests -c $< -o $@

$(BUILD)/bench/%: $(BUILD)/bench/%.o $(TEST_SUPPORT_OBJ) $(LIBA)
	$(call say,LD,$@)
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(CHECK_LIBS) $(PKG_LIBS) -lpthread

# ---- the library `make install` ships ----
# $(LIBA) above is the internal archive the programs and tests link: every
# module's names are global there. What is installed exports only the
# public API (avatarq_*), so a program may define its own log_write or
# buf_append: $(DISTDIR)/libavatarq.a is one partially linked object with
# every other symbol made local (objcopy --keep-global-symbols, the list
# taken from the object itself), and libavatarq.so.$(VERSION) (soname
# libavatarq.so.0) exports avatarq_* through lib/avatarq.map. Both are built
# from position-independent objects of their own.
DISTDIR   := $(BUILD)/dist
SONAME    := libavatarq.so.0
PIC_OBJ   := $(LIB_SRC:%.c=$(BUILD)/pic/%.o)
DIST_A    := $(DISTDIR)/libavatarq.a
DIST_SO   := $(DISTDIR)/libavatarq.so.$(VERSION)

dist: $(DIST_A) $(DIST_SO)

$(BUILD)/pic/%.o: %.c
	@mkdir -p $(dir $@)
	$(call say,CC,$<)
	$(Q)$(CC) $(CFLAGS) -fPIC -c $< -o $@

$(DISTDIR)/avatarq.o: $(PIC_OBJ)
	@mkdir -p $(dir $@)
	$(call say,LD,$@)
	$(Q)$(CC) $(SANFLAGS) -r -nostdlib -o $@.all $^
	$(Q)nm -g --defined-only $@.all | awk '$$3 ~ /^avatarq_/ { print $$3 }' >$@.keep
	$(Q)objcopy --keep-global-symbols=$@.keep $@.all $@
	$(Q)rm -f $@.all

$(DIST_A): $(DISTDIR)/avatarq.o
	$(call say,AR,$@)
	$(Q)rm -f $@
	$(Q)ar rcs $@ $^

$(DIST_SO): $(PIC_OBJ) lib/avatarq.map
	@mkdir -p $(dir $@)
	$(call say,LD,$@)
	$(Q)$(CC) $(LDFLAGS) -shared -Wl,-soname,$(SONAME) -Wl,--version-script=lib/avatarq.map \
	    -Wl,--no-undefined -o $@ $(PIC_OBJ) $(PKG_LIBS)
	$(Q)ln -sf $(notdir $@) $(DISTDIR)/$(SONAME)
	$(Q)ln -sf $(SONAME) $(DISTDIR)/libavatarq.so

# Keep test and bench objects between builds (they are intermediates of the
# pattern rules, which make would otherwise delete).
.SECONDARY:

deps:
	@bash tests/deps.sh

check-build: all dist $(TEST_BIN) $(TESTBIN)/avatarq-worker

# The whole suite, plain then under sanitizers; one summary line at the end.
test: deps
	@$(MAKE) --no-print-directory check-build
	@$(MAKE) --no-print-directory SAN=1 check-build
	@LOAD=$(LOAD) bash tests/run.sh build bin build-asan build-asan/bin

test-plain: deps
	@$(MAKE) --no-print-directory check-build
	@LOAD=$(LOAD) bash tests/run.sh build bin

test-asan: deps
	@$(MAKE) --no-print-directory SAN=1 check-build
	@LOAD=$(LOAD) bash tests/run.sh build-asan build-asan/bin

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

LOAD    ?= 0
PREFIX  ?= /usr/local
DESTDIR ?=
install: all dist
	@bash systemd/install.sh install "$(DESTDIR)" "$(PREFIX)" "$(VERSION)"
uninstall:
	@bash systemd/install.sh uninstall "$(DESTDIR)" "$(PREFIX)" "$(VERSION)"

clean:
	rm -rf build build-asan bin lib/libavatarq.a

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
