# tests/bench/bench.mk: the benchmarks `make bench` builds into
# $(BUILD)/bench/ and tests/bench/run.sh runs.

BENCHPROGS	+= bench_parser

# libhttp-parser: the parser we measure ours against (test-only)
HTTP_PARSER_A	 = /usr/lib/x86_64-linux-gnu/libhttp_parser.a

$(BUILD)/bench/bench_parser: tests/bench/bench_parser.c $(LIBCOMMON)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $< $(LIBCOMMON) $(HTTP_PARSER_A) \
	    $(LDLIBS)
