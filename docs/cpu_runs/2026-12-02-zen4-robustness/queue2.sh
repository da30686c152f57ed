#!/bin/bash
cd /work/snap && source .venv/bin/activate
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1
L="--noise gaussian=0,5,10,20,30 --noise stripe=2,5,10"
t() { echo "== $(date -u +%H:%M:%S) start: $*"; /usr/bin/time -f "== wall %e s user %U s sys %S s" "$@"; echo "== $(date -u +%H:%M:%S) end rc=$?"; }
t python tools/robustness.py --method ipi --param patch=50 --param step=10 --param k=15 --images /tmp/rob/sirst --out /work/runs/rob_sirst_ipi $L
t python tools/robustness.py --method ipi --param patch=50 --param step=10 --param k=15 --images /tmp/rob/nudt_sub --out /work/runs/rob_nudtsub_ipi $L
echo "== q2 done"
