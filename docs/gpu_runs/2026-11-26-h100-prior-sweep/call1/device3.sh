#!/bin/bash
# Scratch: one device call of session 5. GPU check (env + CUDA tests), then sweep round 3.
cd "$(dirname "$0")/.."
pkill -9 -f sweep.py; pkill -9 -f run_configs; sleep 1
nvidia-smi --query-gpu=name,utilization.gpu,memory.used --format=csv
git log --oneline -1 2>/dev/null || true
mkdir -p $OUT/gc /tmp/sw3
python3 tools/gpu_check.py --out $OUT/gc --budget-s 225 2>&1 | tail -20
pkill -9 -f pytest; sleep 1
SWEEP3=1 SWEEP_PAR=9 SWEEP_S=275 timeout 295 python3 .gpu_data/sweep.py /tmp/sw3 > /tmp/sw3/stdout.txt 2>&1
pkill -9 -f run_configs
cp /tmp/sw3/stdout.txt $OUT/sweep3_stdout.txt
tail -9 /tmp/sw3/stdout.txt
tar -czf $OUT/sweep3_logs.tgz -C /tmp/sw3 . 2>/dev/null; ls -la $OUT $OUT/gc
