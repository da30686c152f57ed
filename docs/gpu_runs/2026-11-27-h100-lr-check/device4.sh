#!/bin/bash
# Scratch: the one device call of 2026-11-27. env alone; the nudt_cpu_bf16 lr sweep beside the
# CUDA tests; then the timing sections alone.
cd "$(dirname "$0")/.."
T0=$(date +%s)
cat .gpu_data/commit.txt
nvidia-smi --query-gpu=name,utilization.gpu,memory.used --format=csv
ALL="env tests probe sirst profile bench cpu train_speed"
skip_but() { for s in $ALL; do case " $* " in *" $s "*) ;; *) echo -n "$s ";; esac; done; }
python3 tools/gpu_check.py --out $OUT/gc_env --budget-s 60 --skip $(skip_but env) 2>&1 | tail -3
echo "phase 1 done at $(( $(date +%s) - T0 )) s"
mkdir -p /tmp/sw4
python3 .gpu_data/sweep4.py /tmp/sw4 --parallel 10 --deadline-s 370 > /tmp/sw4/stdout.txt 2>&1 &
SWEEP=$!
python3 tools/gpu_check.py --out $OUT/gc_tests --budget-s 370 --skip $(skip_but tests) 2>&1 | tail -3
echo "tests done at $(( $(date +%s) - T0 )) s"
wait $SWEEP
pkill -9 -f run_configs
echo "sweep done at $(( $(date +%s) - T0 )) s"
cp /tmp/sw4/stdout.txt $OUT/sweep4_stdout.txt
tail -4 /tmp/sw4/stdout.txt
(cd /tmp/sw4 && tar -czf $OUT/sweep4_logs.tgz *.log sweep.json)
LEFT=$(( 545 - ($(date +%s) - T0) ))
echo "timing sections get $LEFT s"
[ $LEFT -gt 30 ] && python3 tools/gpu_check.py --out $OUT/gc_timing --budget-s $LEFT --skip env tests sirst cpu 2>&1 | tail -25
echo "all done at $(( $(date +%s) - T0 )) s"
ls -la $OUT $OUT/*
