#!/bin/bash
# 4 variants x 3 seeds of the demo config, 120 iterations each.
cd /work/main
for variant in "difference:model.head_input=difference" "background:model.head_input=background" "shallow:model.head_input=shallow" "noattn:model.mid_attention=False"; do
  name=${variant%%:*}; set=${variant#*:}
  /usr/bin/time -v nice -n 10 .venv/bin/python run_configs.py demo --seeds 1 2 3 --set name=abl_$name --set $set --set train.max_iters=120 --set data.root=/work/runs/SIRST-Synth --set paths.checkpoints=/work/runs/ablation/ckpt --set paths.results=/work/runs/ablation/res > /work/runs/ablation/$name.log 2>&1
  echo "exit $?" >> /work/runs/ablation/$name.log
done
