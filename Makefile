# The suite's build.  `make` builds common/ and every daemon; `make check`
# runs every test; `make sanitize` runs them on an ASan+UBSan build;
# `make bench` runs the benchmarks.  Each daemon's programs are declared
# in its own <daemon>/Makefile.inc, so that the daemons grow side by side
# without editing this file.

PREFIX	?= /usr/local
DESTDIR	?=
RCDIR	?= $(PREFIX)/etc/rc.d
BUILD	?= build
CC	?= cc

PKGS	 = libbsd-overlay openssl sqlite3
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)

OPT	?= -O2
CFLAGS	?= $(OPT) -g
WARN	 = -Wall -Wextra -Werror -Wno-unused-parameter -Wno-missing-field-initializers -Wshadow \
	   -Wpointer-arith -Wmissing-prototypes -Wstrict-prototypes
CPPFLAGS = -std=c11 -D_GNU_SOURCE -Icommon $(PKG_CFLAGS)
LDLIBS	 = $(PKG_LIBS) -lcrypt -lm
SAN	?=
ALL_CFLAGS = $(CPPFLAGS) $(CFLAGS) $(WARN) $(SAN)
LDFLAGS	+= $(SAN)

# Debian packages: to build, and to run the tests and the demo.
BUILD_PKGS = gcc make pkg-config libbsd-dev libssl-dev libsqlite3-dev \
	     libcriterion-dev
TEST_PKGS  = clang libclang-rt-14-dev libhttp-parser-dev python3 curl openssl \
	     sqlite3 rsyslog procps iproute2 util-linux socat slowhttptest mandoc \
	     chromium chromium-driver keepalived nftables strace
BENCH_PKGS = wrk haproxy nginx php-fpm libhttp-parser-dev

COMMON_SRCS := $(wildcard common/*.c)
COMMON_OBJS := $(COMMON_SRCS:%.c=$(BUILD)/%.o)
LIBCOMMON   := $(BUILD)/libcommon.a

PROGS	:=
TESTPROGS :=
LIBRARIES :=
include $(sort $(wildcard */Makefile.inc))
# tests/<kind>/*.mk: rules of the fuzzers and benchmarks
include $(sort $(wildcard tests/*/*.mk))

UNIT_SRCS := $(sort $(wildcard tests/unit/test_*.c))
UNIT_BINS := $(UNIT_SRCS:tests/unit/%.c=$(BUILD)/tests/unit/%)

.PHONY: all deps deps-build deps-test check unit integration sanitize bench demo demo-stop \
	install clean fuzz
.DEFAULT_GOAL := all

all: deps-build $(LIBCOMMON) $(LIBRARIES:%=$(BUILD)/lib%.a) \
	$(PROGS:%=$(BUILD)/bin/%) $(TESTPROGS:%=$(BUILD)/bin/%)

# Install what is missing, and only then touch apt.
define need_pkgs
	@missing=""; for p in $(1); do \
	  dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | \
	    grep -q 'install ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  if [ "$$(id -u)" != 0 ]; then \
	    echo "missing Debian packages:$$missing (run make deps as root)" >&2; \
	    exit 1; fi; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install \
	    -y -qq --no-install-recommends $$missing >/dev/null || exit 1; \
	fi
endef

deps-build:
	$(call need_pkgs,$(BUILD_PKGS))
deps-test: deps-build
	$(call need_pkgs,$(TEST_PKGS))
deps-bench: deps-test
	$(call need_pkgs,$(BENCH_PKGS))
deps: deps-test deps-bench

$(BUILD)/%.o: %.c
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -MMD -MP -c -o $@ $<

$(LIBCOMMON): $(COMMON_OBJS)
	@rm -f $@
	ar rcs $@ $^

# LIBRARIES += name, with name_SRCS: a static library $(BUILD)/libname.a
define LIB_template
$(BUILD)/lib$(1).a: $$($(1)_SRCS:%.c=$(BUILD)/%.o)
	@rm -f $$@
	ar rcs $$@ $$^
endef
$(foreach l,$(LIBRARIES),$(eval $(call LIB_template,$(l))))

# <prog>_SRCS, <prog>_ARCHIVES (static libraries it needs), <prog>_LIBS
# (extra flags) come from Makefile.inc
define PROG_template
$(BUILD)/bin/$(1): $$($(1)_SRCS:%.c=$(BUILD)/%.o) $$($(1)_ARCHIVES) $(LIBCOMMON)
	@mkdir -p $$(@D)
	$$(CC) $$(LDFLAGS) -o $$@ $$($(1)_SRCS:%.c=$(BUILD)/%.o) \
	    $$($(1)_ARCHIVES) $(LIBCOMMON) $$($(1)_LIBS) $$(LDLIBS)
endef
$(foreach p,$(PROGS) $(TESTPROGS),$(eval $(call PROG_template,$(p))))

# tests/unit/test_X.c links with common/, and with test_X_ARCHIVES
.SECONDEXPANSION:
$(BUILD)/tests/unit/%: $(BUILD)/tests/unit/%.o $(LIBCOMMON) $$($$*_ARCHIVES)
	$(CC) $(LDFLAGS) -o $@ $< $($*_ARCHIVES) $(LIBCOMMON) $(LDLIBS) -lcriterion

# Every test: unit tests (Criterion) and integration tests (real daemons,
# real clients), then one line: "N passed, N failed".
check: deps-test all $(UNIT_BINS)
	@BUILD=$(BUILD) sh tests/run.sh

unit: deps-test all $(UNIT_BINS)
	@BUILD=$(BUILD) sh tests/run.sh unit

integration: deps-test all
	@BUILD=$(BUILD) sh tests/run.sh integration

sanitize: deps-test
	SANITIZE=1 $(MAKE) BUILD=build-san OPT=-O1 \
	    SAN="-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer" \
	    check

bench: deps-bench all $(BENCHPROGS:%=$(BUILD)/bench/%)
	@BUILD=$(BUILD) sh tests/bench/run.sh

# FUZZ_SECONDS per target (CI uses 60)
FUZZ_SECONDS ?= 60
fuzz: deps-test
	@$(MAKE) -s fuzz-build
	@BUILD=build-fuzz FUZZ_SECONDS=$(FUZZ_SECONDS) sh tests/fuzz/run.sh

install: all
	install -d $(DESTDIR)$(PREFIX)/sbin $(DESTDIR)$(PREFIX)/share/man/man5 \
	    $(DESTDIR)$(PREFIX)/share/man/man8 \
	    $(DESTDIR)$(PREFIX)/share/examples/lbd-suite
	for p in $(PROGS); do \
	    install -m 755 $(BUILD)/bin/$$p $(DESTDIR)$(PREFIX)/sbin/; done
	for m in $(wildcard */*.5); do \
	    install -m 644 $$m $(DESTDIR)$(PREFIX)/share/man/man5/; done
	for m in $(wildcard */*.8); do \
	    install -m 644 $$m $(DESTDIR)$(PREFIX)/share/man/man8/; done
	for c in $(wildcard */*.conf.sample); do \
	    install -m 644 $$c $(DESTDIR)$(PREFIX)/share/examples/lbd-suite/; done
	install -d $(DESTDIR)$(RCDIR)
	install -m 644 rc.d/rc.subr $(DESTDIR)$(RCDIR)/
	for r in $(filter-out rc.d/rc.subr,$(wildcard rc.d/*)); do \
	    install -m 755 $$r $(DESTDIR)$(RCDIR)/; done

clean:
	rm -rf build build-san build-fuzz

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)

# The demo site on this machine (tests/e2e/demo.sh): state in ./state
demo: deps-test all
	@BUILD=$(BUILD) sh tests/e2e/demo.sh start

demo-stop:
	@BUILD=$(BUILD) sh tests/e2e/demo.sh stop

# The site across hosts, in network namespaces on this machine
# (tests/e2e/lab.sh, tests/e2e/hosts/site.txt): state in ./state/lab
.PHONY: lab lab-down
lab: deps-test all
	@BUILD=$(BUILD) sh tests/e2e/lab.sh up

lab-down:
	@BUILD=$(BUILD) sh tests/e2e/lab.sh down
