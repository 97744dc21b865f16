# tests/bench/dbrepd.mk: dbrepd's benchmark driver.  It needs daemons
# around it, so it lives outside $(BUILD)/bench (run.sh runs what is
# there on its own): tests/bench/bench_dbrepd.sh starts the daemons and
# calls it.

DBREPD_BENCH	= $(BUILD)/bench-dbrepd/dbrepd_bench

$(DBREPD_BENCH): tests/bench/dbrepd_bench.c $(BUILD)/libdbrep.a $(LIBCOMMON)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $< $(BUILD)/libdbrep.a \
	    $(LIBCOMMON) $(LDLIBS) -lpthread

bench: $(DBREPD_BENCH)
