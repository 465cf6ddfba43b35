# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# Copyright (c) 2026 The lanyard authors
#
# One entry point: all, check, demo, bench, fuzz, install, deps, clean, vmlinux.
# Quiet unless V=1.  Everything built goes to build/.

OUTPUT    := build
BIN       := $(OUTPUT)/bin
OBJ       := $(OUTPUT)/obj
ASAN_OBJ  := $(OUTPUT)/asan
BPF_OUT   := $(OUTPUT)/bpf
TEST_OUT  := $(OUTPUT)/tests
FUZZ_OUT  := $(OUTPUT)/fuzz
DEPS_STAMP := $(OUTPUT)/.deps-stamp

CC        ?= cc
CLANG     ?= clang
BPFTOOL   ?= bpftool
ARCH      := $(shell uname -m | sed 's/x86_64/x86/' | sed 's/aarch64/arm64/')
PREFIX    ?= /usr/local

WARN      := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
             -Wcast-qual -Wpointer-arith -Wmissing-field-initializers -Werror=undef
CFLAGS    ?= -O2 -g
CFLAGS    += $(WARN) -std=gnu11 -D_GNU_SOURCE -Iinclude -Iuserspace -I$(OUTPUT) \
             -fstack-protector-strong -D_FORTIFY_SOURCE=2 -fPIE
LDFLAGS   += -pie -Wl,-z,relro,-z,now
LIBS      := -lbpf -lelf -lz -lyaml -ljansson -lcurl -lssl -lcrypto -lpthread
SAN       := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
TEST_LIBS := -lcriterion

BPF_CFLAGS := -g -O2 -target bpf -D__TARGET_ARCH_$(ARCH) -Wall -Werror -Wimplicit-fallthrough \
              -Iinclude -Ivmlinux -I$(OUTPUT)

ifeq ($(V),1)
	Q =
	msg =
else
	Q = @
	msg = @printf '  %-8s %s\n' "$(1)" "$(2)";
endif

BPF_SRCS   := $(wildcard bpf/*.bpf.c)
BPF_OBJS   := $(patsubst bpf/%.bpf.c,$(BPF_OUT)/%.bpf.o,$(BPF_SRCS))
SKELS      := $(patsubst bpf/%.bpf.c,$(OUTPUT)/%.skel.h,$(BPF_SRCS))

# userspace/*.c: every module goes into liblanyard.a except main.c (the daemon's
# entry); unit tests link the library, never main.o.
LIB_SRCS   := $(filter-out userspace/main.c,$(wildcard userspace/*.c))
LIB_OBJS   := $(patsubst userspace/%.c,$(OBJ)/%.o,$(LIB_SRCS))
ASAN_OBJS  := $(patsubst userspace/%.c,$(ASAN_OBJ)/%.o,$(LIB_SRCS))
LIB        := $(OUTPUT)/liblanyard.a
ASAN_LIB   := $(OUTPUT)/liblanyard-asan.a

UNIT_SRCS  := $(wildcard tests/unit/test_*.c)
UNIT_BINS  := $(patsubst tests/unit/%.c,$(TEST_OUT)/unit/%,$(UNIT_SRCS))
E2E_SRCS   := $(wildcard tests/e2e/test_*.c)
E2E_BINS   := $(patsubst tests/e2e/%.c,$(TEST_OUT)/e2e/%,$(E2E_SRCS))
TLIB_SRCS  := $(wildcard tests/lib/*.c)
FUZZ_SRCS  := $(wildcard tools/fuzz/fuzz_*.c)
FUZZ_BINS  := $(patsubst tools/fuzz/%.c,$(FUZZ_OUT)/%,$(FUZZ_SRCS))

.DELETE_ON_ERROR:
.PHONY: all check unit e2e demo bench fuzz fuzz-smoke install deps clean vmlinux tests

all: $(BIN)/lanyardd $(BIN)/lanyard $(BIN)/ly-cgexec $(BIN)/ly-upstream

deps: $(DEPS_STAMP)
$(DEPS_STAMP): tools/deps.sh
	$(Q)mkdir -p $(OUTPUT)
	$(Q)./tools/deps.sh
	$(Q)touch $@

# --- bpf ------------------------------------------------------------------
$(BPF_OUT)/%.bpf.o: bpf/%.bpf.c $(wildcard bpf/*.bpf.h) $(wildcard include/lanyard/*.h) | $(DEPS_STAMP)
	$(call msg,BPF,$@)
	$(Q)mkdir -p $(BPF_OUT)
	$(Q)$(CLANG) $(BPF_CFLAGS) -c $< -o $@

$(OUTPUT)/%.skel.h: $(BPF_OUT)/%.bpf.o
	$(call msg,GEN-SKEL,$@)
	$(Q)$(BPFTOOL) gen skeleton $< name $(subst -,_,$*)_bpf > $@

# --- userspace -------------------------------------------------------------
$(OBJ)/%.o: userspace/%.c $(wildcard userspace/*.h) $(wildcard include/lanyard/*.h) $(SKELS) | $(DEPS_STAMP)
	$(call msg,CC,$@)
	$(Q)mkdir -p $(OBJ)
	$(Q)$(CC) $(CFLAGS) -c $< -o $@

$(ASAN_OBJ)/%.o: userspace/%.c $(wildcard userspace/*.h) $(wildcard include/lanyard/*.h) $(SKELS) | $(DEPS_STAMP)
	$(call msg,CC-SAN,$@)
	$(Q)mkdir -p $(ASAN_OBJ)
	$(Q)$(CC) $(CFLAGS) -O1 $(SAN) -c $< -o $@

$(LIB): $(LIB_OBJS)
	$(call msg,AR,$@)
	$(Q)rm -f $@ && ar rcs $@ $^

$(ASAN_LIB): $(ASAN_OBJS)
	$(call msg,AR,$@)
	$(Q)rm -f $@ && ar rcs $@ $^

$(BIN)/lanyardd: $(OBJ)/main.o $(LIB)
	$(call msg,LINK,$@)
	$(Q)mkdir -p $(BIN)
	$(Q)$(CC) $(LDFLAGS) $^ $(LIBS) -o $@

$(OBJ)/cli/%.o: userspace/cli/%.c $(wildcard userspace/*.h) | $(DEPS_STAMP)
	$(call msg,CC,$@)
	$(Q)mkdir -p $(OBJ)/cli
	$(Q)$(CC) $(CFLAGS) -c $< -o $@

$(BIN)/lanyard: $(OBJ)/cli/lanyard.o $(LIB)
	$(call msg,LINK,$@)
	$(Q)mkdir -p $(BIN)
	$(Q)$(CC) $(LDFLAGS) $^ $(LIBS) -o $@

# small helpers used by tests, demo and bench
$(BIN)/ly-cgexec: tools/cgexec.c userspace/cgroupfs.c userspace/cgroupfs.h | $(DEPS_STAMP)
	$(call msg,CC,$@)
	$(Q)mkdir -p $(BIN)
	$(Q)$(CC) $(CFLAGS) $(LDFLAGS) tools/cgexec.c userspace/cgroupfs.c -o $@

$(BIN)/ly-upstream: tests/servers/upstream.c | $(DEPS_STAMP)
	$(call msg,CC,$@)
	$(Q)mkdir -p $(BIN)
	$(Q)$(CC) $(CFLAGS) $(LDFLAGS) $< -lssl -lcrypto -o $@

# --- tests -----------------------------------------------------------------
$(TEST_OUT)/unit/%: tests/unit/%.c $(ASAN_LIB) $(wildcard tests/lib/*.h)
	$(call msg,TEST,$@)
	$(Q)mkdir -p $(TEST_OUT)/unit
	$(Q)$(CC) $(CFLAGS) -O1 $(SAN) -Itests $< $(ASAN_LIB) $(TEST_LIBS) $(LIBS) -o $@

$(TEST_OUT)/e2e/%: tests/e2e/%.c $(TLIB_SRCS) $(wildcard tests/lib/*.h) $(LIB)
	$(call msg,TEST,$@)
	$(Q)mkdir -p $(TEST_OUT)/e2e
	$(Q)$(CC) $(CFLAGS) -Itests $< $(TLIB_SRCS) $(LIB) $(TEST_LIBS) $(LIBS) -o $@

# Clients of the discovery tests: OpenSSL linked statically (must map no libssl.so), and an
# HTTPS client on Go's crypto/tls (standard library only, built offline under build/go).
TOOL_OUT   := $(TEST_OUT)/tools
TEST_TOOLS := $(TOOL_OUT)/ly-static-tls $(TOOL_OUT)/ly-go-tls $(TOOL_OUT)/ly-send-ways
GO_ENV     := GOCACHE=$(abspath $(OUTPUT))/go/cache GOPATH=$(abspath $(OUTPUT))/go/path \
              GO111MODULE=off GOPROXY=off GOFLAGS= CGO_ENABLED=0

$(TOOL_OUT)/ly-static-tls: tests/tools/static_tls.c | $(DEPS_STAMP)
	$(call msg,CC,$@)
	$(Q)mkdir -p $(TOOL_OUT)
	$(Q)$(CC) $(CFLAGS) $(LDFLAGS) $< -Wl,-Bstatic -lssl -lcrypto -Wl,-Bdynamic -lpthread -ldl -o $@

# A plain HTTP request sent with write, sendmmsg or io_uring (what the send hook sees of each).
$(TOOL_OUT)/ly-send-ways: tests/tools/send_ways.c | $(DEPS_STAMP)
	$(call msg,CC,$@)
	$(Q)mkdir -p $(TOOL_OUT)
	$(Q)$(CC) $(CFLAGS) $(LDFLAGS) $< -luring -o $@

$(TOOL_OUT)/ly-go-tls: $(wildcard tests/tools/go_tls/*.go) | $(DEPS_STAMP)
	$(call msg,GO,$@)
	$(Q)mkdir -p $(TOOL_OUT)
	$(Q)cd tests/tools/go_tls && $(GO_ENV) go build -trimpath -o $(abspath $@) .

# test_procscan classifies the two clients above
$(TEST_OUT)/unit/test_procscan: $(TEST_TOOLS)

tests: $(UNIT_BINS) $(E2E_BINS) $(TEST_TOOLS)

unit: $(UNIT_BINS)
	$(Q)./tests/run.sh unit $(UNIT_BINS)

e2e: all $(E2E_BINS) $(TEST_TOOLS)
	$(Q)./tests/run.sh e2e $(E2E_BINS)

# --- fuzz (libFuzzer) ------------------------------------------------------
$(FUZZ_OUT)/%: tools/fuzz/%.c tools/fuzz/fuzz.h $(LIB_SRCS) $(wildcard userspace/*.h) | $(DEPS_STAMP)
	$(call msg,FUZZ,$@)
	$(Q)mkdir -p $(FUZZ_OUT)
	$(Q)$(CLANG) -g -O1 -fsanitize=fuzzer,address,undefined -std=gnu11 -D_GNU_SOURCE \
		-Iinclude -Iuserspace -I$(OUTPUT) $< $(FUZZ_DEPS_$*) $(LIBS) -o $@

FUZZ_DEPS_fuzz_http1  := userspace/http1.c
FUZZ_DEPS_fuzz_policy := userspace/policy.c userspace/log.c
FUZZ_DEPS_fuzz_tlshello := userspace/tlshello.c
FUZZ_DEPS_fuzz_procscan := userspace/procscan.c
FUZZ_DEPS_fuzz_discover := userspace/discover.c userspace/http1.c userspace/secret.c \
                           userspace/audit.c userspace/log.c

fuzz: $(FUZZ_BINS)
	$(Q)./tools/fuzz/run.sh long $(FUZZ_BINS)

fuzz-smoke: $(FUZZ_BINS)
	$(Q)./tools/fuzz/run.sh smoke $(FUZZ_BINS)

# --- top-level jobs --------------------------------------------------------
check: all tests $(FUZZ_BINS)
	$(Q)./tests/run.sh all $(UNIT_BINS) -- fuzz $(FUZZ_BINS) -- $(E2E_BINS)

demo: all
	$(Q)./tools/demo.sh

bench: all
	$(Q)./tools/bench.sh

install: all
	install -d $(DESTDIR)$(PREFIX)/sbin $(DESTDIR)$(PREFIX)/bin
	install -m 0755 $(BIN)/lanyardd $(DESTDIR)$(PREFIX)/sbin/lanyardd
	install -m 0755 $(BIN)/lanyard $(DESTDIR)$(PREFIX)/bin/lanyard

vmlinux:
	$(BPFTOOL) btf dump file /sys/kernel/btf/vmlinux format c > vmlinux/vmlinux_$(ARCH).h

clean:
	rm -rf $(OUTPUT)

# skeleton headers are generated; keep them
.SECONDARY: $(SKELS) $(BPF_OBJS)
