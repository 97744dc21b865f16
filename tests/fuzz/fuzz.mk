# tests/fuzz/fuzz.mk: libFuzzer harnesses of the HTTP parser, built with
# clang into build-fuzz/fuzz/<name>, with their seed corpus written from
# the unit corpus into build-fuzz/seeds/<name>/.  `make fuzz` builds them
# (fuzz-build) and runs each for $(FUZZ_SECONDS) (tests/fuzz/run.sh).

FUZZ_DIR	 = build-fuzz
FUZZ_CC		 = clang
FUZZERS		 = fuzz_request fuzz_response fuzz_chunked fuzz_target
FUZZ_LIBSRCS	 = common/http_parse.c common/http_target.c common/buf.c
FUZZ_DEPS	 = $(FUZZ_LIBSRCS) common/http.h common/buf.h common/compat.h \
		   tests/fuzz/fuzz.h
FUZZ_SAN	 = -fsanitize=fuzzer,address,undefined \
		   -fno-sanitize-recover=all -fno-omit-frame-pointer
FUZZ_CFLAGS	 = $(CPPFLAGS) -Itests/unit -g -O1 $(WARN)
FUZZ_LIBS	:= $(shell pkg-config --libs libbsd-overlay 2>/dev/null)

.PHONY: fuzz-build
fuzz-build: $(FUZZERS:%=$(FUZZ_DIR)/fuzz/%) $(FUZZ_DIR)/seeds/.done

$(FUZZ_DIR)/fuzz/fuzz_%: tests/fuzz/fuzz_%.c $(FUZZ_DEPS)
	@mkdir -p $(@D)
	$(FUZZ_CC) $(FUZZ_CFLAGS) $(FUZZ_SAN) -o $@ $< $(FUZZ_LIBSRCS) \
	    $(FUZZ_LIBS)

$(FUZZ_DIR)/fuzz/seeds: tests/fuzz/seeds.c tests/unit/http/corpus.h \
    $(FUZZ_DEPS)
	@mkdir -p $(@D)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -o $@ $< $(FUZZ_LIBSRCS) $(FUZZ_LIBS)

$(FUZZ_DIR)/seeds/.done: $(FUZZ_DIR)/fuzz/seeds
	@rm -rf $(FUZZ_DIR)/seeds
	$(FUZZ_DIR)/fuzz/seeds $(FUZZ_DIR)/seeds
	@touch $@
