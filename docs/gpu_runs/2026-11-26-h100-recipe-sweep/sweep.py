"""Scratch (not part of the project): nudt_cpu recipe variants on a GPU, selected on val only.

    python3 .gpu_data/sweep.py OUT [--quick]       # orchestrate
    python3 .gpu_data/sweep.py --one ARGS...        # one run_configs call, TF32 off
"""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# name -> overrides; CPU cost of a step on the 2-core EPYC (bench, median): b8 c128 2.28 s,
# b4 c128 1.25 s, b8 c96 1.37 s, b16 c64 1.34 s, b4 c96 0.77 s. Iterations sized to ~1650 s.
VARIANTS = {
    "base": ["train.batch_size=8", "data.crop_size=128", "train.max_iters=600", "train.eval_every=100"],
    "b4": ["train.batch_size=4", "data.crop_size=128", "train.max_iters=1100", "train.eval_every=220"],
    "b4_lr2": ["train.batch_size=4", "data.crop_size=128", "train.max_iters=1100", "train.eval_every=220", "train.lr=2e-3"],
    "b4_pos8": ["train.batch_size=4", "data.crop_size=128", "train.max_iters=1100", "train.eval_every=220", "data.pos_prob=0.8"],
    "b8_c96": ["train.batch_size=8", "data.crop_size=96", "train.max_iters=1000", "train.eval_every=200"],
    "b16_c64": ["train.batch_size=16", "data.crop_size=64", "train.max_iters=1000", "train.eval_every=200"],
    "b4_c96": ["train.batch_size=4", "data.crop_size=96", "train.max_iters=1800", "train.eval_every=300"],
    "base_lr2": ["train.batch_size=8", "data.crop_size=128", "train.max_iters=600", "train.eval_every=100", "train.lr=2e-3"],
}
SEEDS = (1, 2)
if os.environ.get("SWEEP2"):  # round 2: what keeps the base geometry from collapsing
    B = ["train.batch_size=8", "data.crop_size=128", "train.max_iters=600", "train.eval_every=100"]
    VARIANTS = {"clip1": B + ["train.grad_clip=1.0"], "lr5e-4": B + ["train.lr=5e-4"]}
    SEEDS = (1, 2, 3)


def one(argv):
    import torch

    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    sys.path.insert(0, str(ROOT))
    os.chdir(ROOT)
    import run_configs

    return run_configs.main(argv)


def main(out: Path, quick: bool, parallel: int, deadline_s: float):
    out.mkdir(parents=True, exist_ok=True)
    work = Path("/tmp/sweep")
    jobs = []
    for seed in SEEDS:  # every variant once before any twice: a deadline cuts seeds, not variants
        for name, sets in VARIANTS.items():
            run = f"{name}_s{seed}"
            sets_all = sets + [
                f"seed={seed}", f"name={run}", "data.root=.gpu_data/nudt_sweep",
                f"paths.checkpoints={work}/ckpt", f"paths.results={work}/res",
                "data.num_workers=2", "train.device=" + ("cpu" if quick else "cuda"),
            ]
            if quick:
                sets_all += ["train.max_iters=4", "train.eval_every=2"]
            argv = [sys.executable, __file__, "--one", "nudt_cpu"]
            for kv in sets_all:
                argv += ["--set", kv]
            jobs.append((run, argv))
    if quick:
        jobs = jobs[:2]
    env = {**os.environ, "OMP_NUM_THREADS": "1" if not quick else "2", "PYTHONUNBUFFERED": "1"}
    deadline = time.time() + deadline_s
    running, done = [], {}
    started = time.time()
    while jobs or running:
        while jobs and len(running) < parallel:
            run, argv = jobs.pop(0)
            log = (out / f"{run}.log").open("w")
            running.append((run, subprocess.Popen(argv, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env=env), time.time()))
        time.sleep(1)
        for item in list(running):
            run, proc, t0 = item
            if proc.poll() is not None:
                done[run] = {"rc": proc.returncode, "seconds": round(time.time() - t0, 1)}
                running.remove(item)
                print(f"{time.time() - started:6.0f} s {run} rc {proc.returncode} in {time.time() - t0:.0f} s", flush=True)
            elif time.time() > deadline:
                proc.kill()
                done[run] = {"rc": "killed", "seconds": round(time.time() - t0, 1)}
                running.remove(item)
                print(f"{run} killed at the deadline", flush=True)
        if time.time() > deadline:
            for run, _ in jobs:
                done[run] = {"rc": "not started"}
            jobs = []
    rows = []
    for run, status in done.items():
        row = {"run": run, **status}
        dirs = sorted((work / "ckpt" / run).glob("*/")) if (work / "ckpt" / run).is_dir() else []
        if dirs and not os.environ.get("SWEEP2"):
            d = dirs[-1]
            dest = out / run
            dest.mkdir(exist_ok=True)
            for f in ("metrics.csv", "log.txt", "config.yaml"):
                if (d / f).is_file():
                    (dest / f).write_bytes((d / f).read_bytes())
        if dirs and (dirs[-1] / "test_metrics.json").is_file():
            d = dirs[-1]
            if True:
                report = json.loads((d / "test_metrics.json").read_text())
                best = report["best"]
                # val only: the 16-frame test list is there because the layout needs one
                row.update(best_iter=best["iteration"], val_miou=best["val"]["miou"],
                           val_niou=best["val"]["niou"], val_pd=best["val"]["pd"], val_fa=best["val"]["fa"],
                           vt=best.get("val_threshold", {}).get("threshold"),
                           vt_miou=best.get("val_threshold", {}).get("miou"),
                           last_vt_miou=report["last"].get("val_threshold", {}).get("miou"))
        if dirs and (dirs[-1] / "metrics.csv").is_file():
            d = dirs[-1]
            if True:
                lines = (d / "metrics.csv").read_text().split()
                head = lines[0].split(",")
                curve = [dict(zip(head, line.split(","))) for line in lines[1:]]
                row["val_curve"] = [round(float(c["miou"]), 4) for c in curve]
                row["last_val_miou"] = float(curve[-1]["miou"]) if curve else None
        rows.append(row)
    (out / "sweep.json").write_text(json.dumps(rows, indent=1))
    for r in rows:
        print(json.dumps(r), flush=True)
    by = {}
    for r in rows:
        if "val_miou" in r:
            by.setdefault(r["run"].rsplit("_s", 1)[0], []).append((r["val_miou"], r["vt_miou"] or 0, r["last_val_miou"] or 0))
    print("variant      mean best-val IoU   mean val IoU at chosen T   mean last-val IoU   n")
    for name, vals in by.items():
        n = len(vals)
        print(f"{name:12s} {sum(v[0] for v in vals) / n:8.4f} {sum(v[1] for v in vals) / n:8.4f} {sum(v[2] for v in vals) / n:8.4f} {n}")


if __name__ == "__main__":
    if sys.argv[1] == "--one":
        sys.exit(one(sys.argv[2:]))
    quick = "--quick" in sys.argv
    parallel = 2 if quick else 6
    main(Path(sys.argv[1]), quick, parallel, 400 if quick else float(os.environ.get("SWEEP_S", 230)))
