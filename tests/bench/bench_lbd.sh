#!/bin/sh
# lbd against HAProxy: see bench_lbd.py
exec python3 "$(dirname "$0")/bench_lbd.py"
