"""Generation throughput of the scoring Job through the sampler vs. vLLM offline and
transformers, on the same prompts, model and sampling settings, in one run.

    .venv/bin/python bench/bench_sampling.py [--prompts 64] [--n 4] [--max-tokens 64]

Each engine runs in its own subprocess, one after the other (they would fight over the
CPU cores otherwise). The Job's figure is its own `tokens_per_second` from metrics.json:
tokens generated / wall time of its sampling pass (the server's startup excluded, the
Job's client, reward scoring and progress writes included).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

SYSTEM = "Reply with the number only."


def prompts(count: int, template: str = "{a} + {b} = ?") -> list[dict[str, str]]:
    rng = random.Random(0)
    rows = []
    for i in range(count):
        a, b = rng.randint(10, 99), rng.randint(10, 99)
        rows.append({"id": str(i), "question": template.format(a=a, b=b), "answer": str(a + b)})
    return rows


def messages(row: dict[str, str], system: str = SYSTEM) -> list[dict[str, str]]:
    user = [{"role": "user", "content": row["question"]}]
    return [{"role": "system", "content": system}, *user] if system else user


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def phase_server(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """rft_runtime.serve + rft_runtime.score, exactly as the operator runs them."""
    import httpx

    port = free_port()
    serve = {
        "modelPath": args.model,
        "host": "127.0.0.1",
        "port": port,
        "maxModelLen": args.max_model_len,
    }
    (work / "serve.json").write_text(json.dumps(serve))
    log = (work / "serve.log").open("wb")
    server = subprocess.Popen(
        [sys.executable, "-m", "rft_runtime.serve", "--config", str(work / "serve.json")],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        start = time.monotonic()
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/v1/models", timeout=5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if server.poll() is not None:
                raise RuntimeError("server exited; see serve.log")
            time.sleep(1)
        ready = time.monotonic() - start
        runs = []
        for attempt in range(args.repeats + 1):  # the first run warms the server up
            out = work / f"score-{attempt}"
            config = {
                "run": "bench",
                "iteration": 0,
                "outputDir": str(out),
                "policy": {
                    "baseUrl": f"http://127.0.0.1:{port}/v1",
                    "model": "policy",
                    "concurrency": args.concurrency,
                },
                "promptFormat": {"systemPrompt": args.system or None},
                "train": {"path": str(work / "prompts.jsonl"), "promptField": "question"},
                "sampling": {"n": args.n, "temperature": 1.0, "maxTokens": args.max_tokens},
                "rewards": [{"name": "answer", "type": "math"}],
            }
            (work / "score.json").write_text(json.dumps(config))
            env = {**os.environ, "RFT_TERMINATION_LOG": str(work / "term.log")}
            subprocess.run(
                [sys.executable, "-m", "rft_runtime.score", "--config", str(work / "score.json")],
                check=True,
                env=env,
                capture_output=True,
            )
            train = json.loads((out / "metrics.json").read_text())["train"]
            runs.append(
                {
                    "tokens": train["tokens"],
                    "seconds": train["seconds"],
                    "tokens_per_second": train["tokens_per_second"],
                }
            )
        measured = runs[1:]
        return {
            "ready_seconds": round(ready, 1),
            "runs": runs,
            "tokens_per_second": max(r["tokens_per_second"] for r in measured),
        }
    finally:
        server.terminate()
        server.wait(timeout=120)
        log.close()


def phase_offline(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """vllm.LLM.chat on the same prompts, same engine settings as the server."""
    from vllm import LLM, SamplingParams

    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "4")
    rows = prompts(args.prompts, args.question)
    llm = LLM(model=args.model, max_model_len=args.max_model_len, dtype="auto")
    params = SamplingParams(n=args.n, temperature=1.0, top_p=1.0, max_tokens=args.max_tokens)
    conversations = [messages(r, args.system) for r in rows]
    runs = []
    for _ in range(args.repeats + 1):
        start = time.monotonic()
        outputs = llm.chat(conversations, params, use_tqdm=False)
        seconds = time.monotonic() - start
        tokens = sum(len(c.token_ids) for o in outputs for c in o.outputs)
        runs.append(
            {
                "tokens": tokens,
                "seconds": round(seconds, 3),
                "tokens_per_second": round(tokens / seconds, 2),
            }
        )
    return {"runs": runs, "tokens_per_second": max(r["tokens_per_second"] for r in runs[1:])}


def phase_transformers(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """transformers `generate`, batched with left padding, sampling the same way."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    rows = prompts(args.hf_prompts)
    tokenizer = AutoTokenizer.from_pretrained(args.model, padding_side="left")
    dtype = getattr(torch, args.hf_dtype)
    model = AutoModelForCausalLM.from_pretrained(args.model, dtype=dtype).eval()
    texts = [
        tokenizer.apply_chat_template(
            messages(r, args.system), tokenize=False, add_generation_prompt=True
        )
        for r in rows
    ]
    runs = []
    for _ in range(args.repeats + 1):
        tokens, start = 0, time.monotonic()
        for i in range(0, len(texts), args.hf_batch):
            batch = tokenizer(texts[i : i + args.hf_batch], return_tensors="pt", padding=True)
            with torch.inference_mode():
                out = model.generate(
                    **batch,
                    do_sample=True,
                    temperature=1.0,
                    top_p=1.0,
                    max_new_tokens=args.max_tokens,
                    num_return_sequences=args.n,
                    pad_token_id=tokenizer.pad_token_id or tokenizer.eos_token_id,
                )
            generated = out[:, batch["input_ids"].shape[1] :]
            for seq in generated.tolist():  # count up to and including the first EOS
                end = (
                    seq.index(tokenizer.eos_token_id) + 1
                    if tokenizer.eos_token_id in seq
                    else len(seq)
                )
                tokens += end
        seconds = time.monotonic() - start
        runs.append(
            {
                "tokens": tokens,
                "seconds": round(seconds, 3),
                "tokens_per_second": round(tokens / seconds, 2),
            }
        )
    return {"runs": runs, "tokens_per_second": max(r["tokens_per_second"] for r in runs[1:])}


PHASES = {"server": phase_server, "offline": phase_offline, "transformers": phase_transformers}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default=None, help="HF model dir (default: SmolLM2-135M)")
    parser.add_argument("--prompts", type=int, default=64)
    parser.add_argument("--hf-prompts", type=int, default=16)
    parser.add_argument("--hf-batch", type=int, default=8)
    parser.add_argument("--n", type=int, default=4)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--max-model-len", type=int, default=512)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--hf-dtype", default="bfloat16", choices=["bfloat16", "float32"])
    parser.add_argument("--phases", default="server,offline,transformers")
    parser.add_argument("--system", default=SYSTEM, help="system prompt ('' for none)")
    parser.add_argument(
        "--question",
        default="{a} + {b} = ?",
        help="question template; the arithmetic example's is 'What is {a} + {b}?'",
    )
    parser.add_argument("--phase", choices=sorted(PHASES), help=argparse.SUPPRESS)
    parser.add_argument("--work", help=argparse.SUPPRESS)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "4")
    if args.model is None:
        from rft_runtime.bundled_models import prepare

        args.model = str(prepare("smollm2-135m"))
    if args.phase:  # child: one engine, result as JSON in <work>/<phase>.json
        result = PHASES[args.phase](args, Path(args.work))
        (Path(args.work) / f"{args.phase}.json").write_text(json.dumps(result))
        return
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="rft-bench-") as scratch:
        work = Path(scratch)
        with (work / "prompts.jsonl").open("w") as handle:
            for row in prompts(args.prompts, args.question):
                handle.write(json.dumps(row) + "\n")
        shared = (
            "prompts",
            "hf_prompts",
            "hf_batch",
            "n",
            "max_tokens",
            "max_model_len",
            "concurrency",
            "repeats",
            "hf_dtype",
            "system",
            "question",
        )
        passthrough = [
            item for k in shared for item in (f"--{k.replace('_', '-')}", str(getattr(args, k)))
        ]
        for phase in args.phases.split(","):
            done = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    *passthrough,
                    "--model",
                    args.model,
                    "--phase",
                    phase,
                    "--work",
                    str(work),
                ],
                capture_output=True,
                text=True,
            )
            if done.returncode != 0:
                sys.exit(f"{phase} failed:\n{done.stderr[-4000:]}")
            results[phase] = json.loads((work / f"{phase}.json").read_text())
            print(f"{phase}: {results[phase]['tokens_per_second']} tok/s", file=sys.stderr)
    rate = {phase: result["tokens_per_second"] for phase, result in results.items()}
    summary: dict[str, Any] = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs",
        "settings": {
            k: getattr(args, k)
            for k in (
                "prompts",
                "hf_prompts",
                "n",
                "max_tokens",
                "max_model_len",
                "concurrency",
                "repeats",
                "hf_batch",
                "hf_dtype",
            )
        },
        "results": results,
    }
    for other in ("offline", "transformers"):
        if "server" in rate and other in rate:
            summary[f"job_vs_{other}"] = round(rate["server"] / rate[other], 3)
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
