"""Neuron pass throughput and memory.

1. Throughput: in one process, bare forward passes over the corpus windows, then the neuron pass
   over the same windows (every neuron of every layer captured and summarised); tokens/s of each
   and their ratio (target <= 1.5).
2. Memory: peak RSS of the whole pass in fresh processes at two corpus sizes; flat means the
   streaming state does not grow with the corpus.

    .venv/bin/python bench/neuron_pass.py [--model smollm2-135m-instruct] [--tokens 32768]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from db.common.neuron_config import NeuronConfig
from survey.catalog import load_catalog
from survey.corpus.windows import cut_windows
from survey.engine.neuron_pass import run_pass
from survey.loading.loaders import load, resolve
from survey.units.neurons import plan_neurons

CHILD = """
import json, resource, sys, tempfile
from pathlib import Path
from survey.catalog import load_catalog
from survey.loading.loaders import load, resolve
from db.common.neuron_config import NeuronConfig
from survey.corpus.windows import cut_windows
from survey.engine.neuron_pass import run_pass
from survey.units.neurons import plan_neurons
loaded = load(resolve(sys.argv[1], load_catalog()))
config = NeuronConfig(token_budget=int(sys.argv[2]))
plan = plan_neurons(loaded, config)
windows = cut_windows(plan.corpus, loaded.tokenizer, config)
with tempfile.TemporaryDirectory() as folder:
    run_pass(loaded, windows, config, Path(folder) / "state.pt", "bench", lambda line: None)
print(json.dumps({"tokens": int(windows.tokens.numel()),
                  "peak_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6}))
"""


def throughput(name: str, tokens: int) -> dict[str, float]:
    """Bare and neuron-pass tokens/s over the same windows, in this process."""
    loaded = load(resolve(name, load_catalog()))
    config = NeuronConfig(token_budget=tokens)
    windows = cut_windows(plan_neurons(loaded, config).corpus, loaded.tokenizer, config)
    started = time.perf_counter()
    with torch.inference_mode():
        for first in range(0, windows.tokens.shape[0], config.batch_size):
            batch = loaded.bos.prepend(windows.tokens[first : first + config.batch_size])
            loaded.model(input_ids=batch, use_cache=False)
    bare = time.perf_counter() - started
    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        run_pass(loaded, windows, config, Path(folder) / "state.pt", "bench", lambda line: None)
        neurons = time.perf_counter() - started
    n = windows.tokens.numel()
    return {"tokens": n, "bare_tps": n / bare, "pass_tps": n / neurons, "ratio": neurons / bare}


def peak(name: str, tokens: int) -> dict[str, float]:
    """Peak RSS of a fresh process that runs the whole pass over ``tokens`` tokens."""
    out = subprocess.run(
        [sys.executable, "-c", CHILD, name, str(tokens)], capture_output=True, text=True, check=True
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--tokens", type=int, default=32_768)
    args = parser.parse_args()
    t = throughput(args.model, args.tokens)
    print("| model | tokens | bare tokens/s | neuron pass tokens/s | ratio (target <= 1.5) |")
    print("|---|---|---|---|---|")
    print(
        f"| {args.model} | {t['tokens']:.0f} | {t['bare_tps']:.0f} | {t['pass_tps']:.0f} | {t['ratio']:.2f} |"
    )
    print("\n| model | corpus tokens | peak RSS (GB) |\n|---|---|---|")
    for tokens in (args.tokens // 4, args.tokens):
        p = peak(args.model, tokens)
        print(f"| {args.model} | {p['tokens']:.0f} | {p['peak_gb']:.2f} |")


if __name__ == "__main__":
    main()
