#!/bin/bash
cd /work/snap && source .venv/bin/activate
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1
N="--set data.root='/work/shared/datasets/NUDT-SIRST'"
L="--noise gaussian=0,5,10,20,30 --noise stripe=2,5,10"
t() { echo "== $(date -u +%H:%M:%S) start: $*"; /usr/bin/time -f "== wall %e s user %U s sys %S s" "$@"; echo "== $(date -u +%H:%M:%S) end rc=$?"; }
for m in maxmedian mpcm pstnn; do
  t python tools/baselines.py nudt --method $m --tune --workers 1 --set "data.root='/work/shared/datasets/NUDT-SIRST'" --out results/nudt_$m
  t python cal_from_mask.py --pred results/nudt_$m --masks /work/shared/datasets/NUDT-SIRST/masks
done
t python tools/robustness.py --checkpoint sirst_cpu_bf16 --images /tmp/rob/sirst --out /work/runs/rob_sirst_lrrnet --device cpu --size native $L
t python tools/robustness.py --method tophat --param size=11 --param k=15 --images /tmp/rob/sirst --out /work/runs/rob_sirst_tophat $L
t python tools/robustness.py --checkpoint nudt_cpu_bf16 --images /tmp/rob/nudt --out /work/runs/rob_nudt_lrrnet --device cpu --size native $L
t python tools/robustness.py --method tophat --param size=7 --param k=12 --images /tmp/rob/nudt --out /work/runs/rob_nudt_tophat $L
t python tools/robustness.py --checkpoint nudt_cpu_bf16 --images /tmp/rob/nudt_sub --out /work/runs/rob_nudtsub_lrrnet --device cpu --size native $L
t python tools/robustness.py --method tophat --param size=7 --param k=12 --images /tmp/rob/nudt_sub --out /work/runs/rob_nudtsub_tophat $L
echo "== q1 done"
