#!/bin/bash
# Scratch device script: the nudt_cpu recipe sweep (val only), then the project's GPU check.
cd "$(dirname "$0")/.."
nvidia-smi --query-gpu=name,memory.total --format=csv
lscpu | grep -E "Model name|^CPU\(s\)"
mkdir -p $OUT/sweep $OUT/gpu_check
SWEEP_S=${SWEEP_S:-210} timeout 240 python3 .gpu_data/sweep.py $OUT/sweep 2>&1 | tee $OUT/sweep/sweep_stdout.txt | tail -30
nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv
python3 tools/gpu_check.py --out $OUT/gpu_check --budget-s ${CHECK_S:-200} 2>&1 | tail -40
