#!/usr/bin/env bash
# The GPU check of docs/benchmarks.md in one call (each part under a timeout: 9.5 minutes at most):
#   1. bench/throughput.py on CUDA: the U-Nets, fp32/bf16/fp16, eager and the default mode,
#      against the measured matmul/convolution peak (and diffusers, when it is installed);
#   2. a short CIFAR-10-shaped training run through `ddpmkit train` (synthetic 32×32 RGB data,
#      the cifar10-ddpm preset's 35.7M U-Net) that prints its images/s from log.csv.
# Usage: bash bench/gpu.sh   (PYTHON=... to pick the interpreter that has CUDA PyTorch)
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
OUT=${OUT:-$(mktemp -d)}

nvidia-smi --query-gpu=name,memory.total,clocks.max.sm --format=csv || true
"$PYTHON" -c "import ddpmkit" 2>/dev/null || "$PYTHON" -m pip install --quiet --no-deps -e .
"$PYTHON" -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'; \
print(torch.__version__, torch.cuda.get_device_name())"

# eager: every network and precision; then eager against the default (compile: auto, settled as
# in a long job: compiled where its timed steps run faster) for the 35.7M U-Net and the ladder's
# small 28×28 rung
timeout 200 "$PYTHON" bench/throughput.py --device cuda --batches 64,256 --rounds 5 --eager-only \
  | tee "$OUT/throughput.txt" || echo "throughput (eager) stopped: $?"
timeout 190 "$PYTHON" bench/throughput.py --device cuda --networks cifar10,ladder28-small \
  --precisions bf16 --batches 128 --rounds 5 | tee -a "$OUT/throughput.txt" \
  || echo "default stopped: $?"

"$PYTHON" - "$OUT/cifar-shaped.npz" <<'EOF'
import sys
import numpy as np
images = np.random.default_rng(0).integers(0, 256, (5000, 3, 32, 32), dtype=np.uint8)
np.savez(sys.argv[1], images=images)
EOF
timeout 180 "$PYTHON" -m ddpmkit train --preset cifar10-ddpm --out "$OUT/run" \
  --data.source array --data.path "$OUT/cifar-shaped.npz" --data.heldout_fraction 0 \
  --train.steps 300 --train.log_every 50 --train.checkpoint_every 300 --train.sample_every 0 \
  --train.precision auto --train.compile true --sample.num_samples 16 --sample.sampler dpm++2m \
  --sample.steps 20 --quiet
"$PYTHON" - "$OUT/run/log.csv" <<'EOF'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
(a, b) = rows[1], rows[-1]  # from the second row: compilation and warm-up excluded
steps, seconds = int(b["step"]) - int(a["step"]), float(b["seconds"]) - float(a["seconds"])
print(f"ddpmkit train, cifar10-ddpm (batch 128): {steps / seconds:.2f} steps/s, "
      f"{128 * steps / seconds:.0f} images/s")
EOF
