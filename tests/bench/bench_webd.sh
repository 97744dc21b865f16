#!/bin/sh
# webd against nginx: see bench_webd.py
exec python3 "$(dirname "$0")/bench_webd.py"
