# SPDX-License-Identifier: MIT
# gotrace: the only build entry point.
#   make            build ./gotrace (userspace + BPF skeletons)
#   make demo       install what is missing, build, run gotrace on the bundled demo service
#   make test       install what is missing, build, run every test (unit, fuzz, BPF, integration)
#   make check      unit tests only (no root needed)
#   V=1             show full commands
OUTPUT ?= .output
CC ?= gcc
CLANG ?= clang
BPFTOOL ?= bpftool
ARCH ?= $(shell uname -m | sed 's/x86_64/x86/;s/aarch64/arm64/')
VMLINUX_H ?= vmlinux/$(ARCH)/vmlinux.h
PYTHON ?= /usr/bin/python3

PKGS := libbpf libelf libdw capstone json-c zlib ncursesw
PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS = $(shell pkg-config --libs $(PKGS) 2>/dev/null)

GIT_VERSION := $(shell git describe --always --dirty 2>/dev/null || echo unknown)
CFLAGS ?= -g -O2
CFLAGS += -std=gnu11 -Wall -Wextra -Wno-unused-parameter -Wno-missing-field-initializers \
	  -Iinclude -Isrc -I$(OUTPUT) $(PKG_CFLAGS) -DGOTRACE_VERSION='"0.1.0 ($(GIT_VERSION))"' \
	  -MMD -MP
LDLIBS += $(PKG_LIBS) -lm

ifeq ($(V),1)
	Q =
	msg =
else
	Q = @
	msg = @printf '  %-8s %s%s\n' "$(1)" "$(patsubst $(abspath $(OUTPUT))/%,%,$(2))" \
		"$(if $(3), $(3))";
	MAKEFLAGS += --no-print-directory
endif

# Clang's own system includes, for BPF programs (LB Makefile).
CLANG_BPF_SYS_INCLUDES ?= $(shell $(CLANG) -v -E - </dev/null 2>&1 \
	| sed -n '/<...> search starts here:/,/End of search list./{ s| \(/.*\)|-idirafter \1|p }')

BPF_SRCS := $(wildcard bpf/*.bpf.c)
BPF_SKELS := $(patsubst bpf/%.bpf.c,$(OUTPUT)/%.skel.h,$(BPF_SRCS))
LIB_SRCS := $(filter-out src/main.c,$(shell find src -name '*.c' | sort))
LIB_OBJS := $(patsubst src/%.c,$(OUTPUT)/src/%.o,$(LIB_SRCS))
MAIN_OBJ := $(OUTPUT)/src/main.o
UNIT_SRCS := $(wildcard tests/unit/test_*.c)
UNIT_BINS := $(patsubst tests/unit/%.c,$(OUTPUT)/tests/%,$(UNIT_SRCS))

.PHONY: all clean deps test-deps demo test check check-fuzz check-integration bench vmlinux fuzz
all: gotrace

$(OUTPUT) $(OUTPUT)/bpf $(OUTPUT)/tests:
	$(Q)mkdir -p $@

# BPF objects, then skeletons.
$(OUTPUT)/bpf/%.bpf.o: bpf/%.bpf.c $(wildcard bpf/*.bpf.h) $(wildcard include/gotrace/*.h) $(VMLINUX_H) | $(OUTPUT)/bpf
	$(call msg,BPF,$@)
	$(Q)$(CLANG) -g -O2 -target bpf -D__TARGET_ARCH_$(ARCH) -I$(dir $(VMLINUX_H)) -Iinclude \
		$(CLANG_BPF_SYS_INCLUDES) -c $< -o $@.tmp
	$(Q)$(BPFTOOL) gen object $@ $@.tmp && rm -f $@.tmp

$(OUTPUT)/%.skel.h: $(OUTPUT)/bpf/%.bpf.o
	$(call msg,GEN-SKEL,$@)
	$(Q)$(BPFTOOL) gen skeleton $< name $(subst -,_,$*)_bpf > $@

# Userspace: every src/**/*.c; objects depend on all skeletons (cheap, and correct).
$(OUTPUT)/src/%.o: src/%.c $(BPF_SKELS)
	$(call msg,CC,$@)
	$(Q)mkdir -p $(dir $@)
	$(Q)$(CC) $(CFLAGS) -c $< -o $@

$(OUTPUT)/libgotrace.a: $(LIB_OBJS)
	$(call msg,AR,$@)
	$(Q)rm -f $@ && ar rcs $@ $^

gotrace: $(MAIN_OBJ) $(OUTPUT)/libgotrace.a
	$(call msg,BINARY,$@)
	$(Q)$(CC) $(CFLAGS) $^ $(LDLIBS) -o $@

# Unit tests (cmocka): one binary per tests/unit/test_*.c, linked against the library.
$(OUTPUT)/tests/%: tests/unit/%.c $(OUTPUT)/libgotrace.a | $(OUTPUT)/tests
	$(call msg,TEST-CC,$@)
	$(Q)$(CC) $(CFLAGS) -Itests/unit $< $(OUTPUT)/libgotrace.a $(LDLIBS) -lcmocka -o $@

deps:
	$(Q)tools/install-deps.sh build

test-deps:
	$(Q)tools/install-deps.sh test

check: $(UNIT_BINS)
	$(Q)set -e; for t in $(UNIT_BINS); do echo "== $$t"; $$t; done

# libFuzzer over the ELF/buildinfo/pclntab parsers, bounded in time.
FUZZ_SECONDS ?= 60
fuzz: $(OUTPUT)/fuzz_gosym
# The fuzzer links the parsers only (no subcommands, which need main.c).
FUZZ_SRCS := $(filter-out src/cmd/%,$(LIB_SRCS))
$(OUTPUT)/fuzz_gosym: tests/fuzz/fuzz_gosym.c $(FUZZ_SRCS) | $(OUTPUT)
	$(call msg,FUZZ-CC,$@)
	$(Q)$(CLANG) -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
		-std=gnu11 -Iinclude -Isrc -I$(OUTPUT) $(PKG_CFLAGS) $< $(FUZZ_SRCS) $(PKG_LIBS) -lm -o $@
check-fuzz: $(OUTPUT)/fuzz_gosym
	$(Q)tests/fuzz/run.sh $(OUTPUT)/fuzz_gosym $(FUZZ_SECONDS)

check-integration: gotrace
	$(Q)$(PYTHON) -m pytest -q -ra tests/integration

# make test: everything, in a fresh machine too.
test: test-deps
	$(Q)$(MAKE) gotrace
	$(Q)$(MAKE) check
	$(Q)$(MAKE) check-fuzz
	$(Q)$(MAKE) check-integration

demo:
	$(Q)tools/install-deps.sh demo
	$(Q)$(MAKE) gotrace
	$(Q)tools/demo.sh

bench: gotrace
	$(Q)$(MAKE) -C bench

vmlinux:
	$(Q)tools/gen-vmlinux-h.sh $(ARCH)

clean:
	$(call msg,CLEAN)
	$(Q)rm -rf $(OUTPUT) gotrace

-include $(wildcard $(OUTPUT)/src/*.d $(OUTPUT)/src/*/*.d)

.DELETE_ON_ERROR:
.SECONDARY:
