#!/bin/bash
cd "$(dirname "$0")/.."
pkill -9 -f sweep.py; pkill -9 -f run_configs; sleep 2
nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv
mkdir -p $OUT/sweep2 $OUT/gpu_check2
python3 tools/gpu_check.py --out $OUT/gpu_check2 --budget-s 100 2>&1 | tail -12
SWEEP2=1 SWEEP_S=150 timeout 170 python3 .gpu_data/sweep.py $OUT/sweep2 > $OUT/sweep2/stdout.txt 2>&1
tail -12 $OUT/sweep2/stdout.txt
pkill -9 -f run_configs
tar -czf $OUT/sweep2/logs.tgz -C $OUT/sweep2 --exclude logs.tgz . 2>/dev/null; ls $OUT/sweep2 | head -3
