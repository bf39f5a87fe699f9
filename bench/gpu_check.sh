#!/usr/bin/env bash
# The GPU check: survey SmolLM2 with every unit (the main job: all classifiers, the logit lens, the
# neuron pass) on cuda and on the CPU into two fresh databases, time both, and compare the stored
# results: every number within 1e-3 (fp32), identical labels and families (bench/compare_runs.py).
# Without a GPU it runs the CPU half alone and says so.
#   bash bench/gpu_check.sh [OUT]      (OUT: $OUT, else gpu-check/)
# PYTHON: the interpreter with a CUDA torch and interp-survey installed (default .venv/bin/python).
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-${OUT:-gpu-check}}"
python="${PYTHON:-.venv/bin/python}"
model="${MODEL:-smollm2-135m-instruct}"
mkdir -p "$out"
devices=(cpu)
if "$python" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)"; then
  devices=(cuda cpu)
  "$python" -c "import torch; print('GPU:', torch.cuda.get_device_name(0), 'torch', torch.__version__)" | tee "$out/device.txt"
else
  echo "no GPU at hand: the CPU half only" | tee "$out/device.txt"
fi
for device in "${devices[@]}"; do
  rm -f "$out/$device.db"
  start=$(date +%s.%N)
  "$python" -m survey run "$model" --neurons --device "$device" --db "sqlite:///$out/$device.db" >"$out/$device.log" 2>&1 \
    || { echo "$device run failed:"; tail -20 "$out/$device.log"; exit 1; }
  end=$(date +%s.%N)
  "$python" -c "print(f'$device: {$end - $start:.1f} s wall for the main job on $model')" | tee -a "$out/times.txt"
done
if [ -f "$out/cuda.db" ]; then
  "$python" bench/compare_runs.py "$out/cpu.db" "$out/cuda.db" --tolerance 1e-3 | tee "$out/compare.txt"
fi
