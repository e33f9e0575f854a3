"""Embedding runtimes side by side: fp32, bf16 autocast, ONNX Runtime fp32 and int8, on real text.

    .venv/bin/python bench/bench_runtime.py                         # all-minilm, about 4 minutes on 2 busy cores
    .venv/bin/python bench/bench_runtime.py --model all-mpnet-base-v2 --texts 128
    .venv/bin/python bench/bench_runtime.py --chat                  # plus smollm2:135m's answer latency

Each runtime embeds the same formatted documentation chunks (the vectorizer's chunking), in
requests of --batch texts, through the server's own embedding code (ServedModel.embed); the
rounds interleave the runtimes so that a change in the machine's load hits them all alike.
Printed: texts/s (median of the rounds) and its ratio to fp32, cosine to fp32 (min and mean),
and whether each query's nearest chunk is the one fp32 finds. With --chat, also the chat model's
latency on a fixed question (greedy, 32 tokens). First, a matrix-multiply table per dtype and the
share of an fp32 encode spent in matrix multiplies, which bound what any runtime can gain on this
CPU. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import formatted_chunks, say, table  # noqa: E402

from pgweave.corpus import postgres_docs  # noqa: E402
from pgweave.serve import catalog  # noqa: E402
from pgweave.serve.models import ENCODE_BATCH, ServedModel, cpu_has_bf16  # noqa: E402

QUERIES = ["How do I build an index without blocking writes to the table?",
           "How do I vacuum a table to reclaim storage?", "grant select privilege on a table to a role",
           "copy data from a file into a table", "listen for notifications on a channel",
           "drop a column from a table", "rename a table", "create a view", "begin a transaction",
           "change the owner of a schema"]


class OnnxEmbedder:
    """ONNX Runtime on the model's transformer, exported here, with the same mean pooling (bench only)."""

    def __init__(self, served: ServedModel, quantize: bool):
        """Export the loaded fp32 transformer to ONNX (and quantize its weights to int8 if asked)."""
        import onnxruntime as ort
        import torch

        st = served.embedder()
        self.tokenizer, self.max_length = st.tokenizer, st.max_seq_length
        folder = Path(tempfile.mkdtemp(prefix="bench-onnx-"))
        path = folder / "model.onnx"
        sample = self.tokenizer(["a sample text"], return_tensors="pt")
        names = [n for n in ("input_ids", "attention_mask", "token_type_ids") if n in sample]
        axes = {n: {0: "batch", 1: "tokens"} for n in names}
        class Hidden(torch.nn.Module):
            """The transformer's last hidden state from positional inputs, as ONNX export wants."""

            def __init__(self):
                """Hold the transformer as a submodule, so its weights export as weights."""
                super().__init__()
                self.transformer = st[0].auto_model

            def forward(self, *inputs):
                """Token states for the inputs, in the order of ``names``."""
                return self.transformer(**dict(zip(names, inputs))).last_hidden_state

        with torch.no_grad():
            torch.onnx.export(Hidden().eval(), tuple(sample[n] for n in names), str(path), input_names=names,
                              output_names=["hidden"], dynamic_axes={**axes, "hidden": {0: "batch", 1: "tokens"}},
                              opset_version=17, dynamo=False)
        if quantize:
            from onnxruntime.quantization import QuantType, quantize_dynamic

            quantized = folder / "model.int8.onnx"
            quantize_dynamic(str(path), str(quantized), weight_type=QuantType.QInt8)
            path = quantized
        self.names = names
        self.session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])

    def embed(self, texts: list[str]) -> np.ndarray:
        """Unit vectors, in passes of ENCODE_BATCH texts sorted by length like encode() does."""
        order = np.argsort([-len(t) for t in texts])
        parts = []
        for i in range(0, len(texts), ENCODE_BATCH):
            batch = [texts[j] for j in order[i:i + ENCODE_BATCH]]
            enc = self.tokenizer(batch, padding=True, truncation=True, max_length=self.max_length, return_tensors="np")
            hidden = self.session.run(None, {n: enc[n].astype(np.int64) for n in self.names})[0]
            mask = enc["attention_mask"][..., None].astype(np.float32)
            mean = (hidden * mask).sum(1) / mask.sum(1)
            parts.append(mean / np.linalg.norm(mean, axis=1, keepdims=True))
        out = np.concatenate(parts)
        result = np.empty_like(out)
        result[order] = out
        return result


def kernel_rates(rounds: int) -> None:
    """Matrix multiply throughput per dtype on the shape of all-minilm's feed-forward layer, and
    the share of an fp32 encode spent in matrix multiplies: together they bound what any
    lower-precision runtime can gain here (a runtime cannot beat its GEMMs)."""
    import torch

    tokens, width, hidden = 2048, 384, 1536
    rows = []
    for dtype in (torch.float32, torch.bfloat16, torch.float16):
        x, w = torch.randn(tokens, width).to(dtype), torch.randn(hidden, width).to(dtype)
        for _ in range(3):
            torch.nn.functional.linear(x, w)
        samples = []
        for _ in range(rounds):
            start = time.perf_counter()
            for _ in range(20):
                torch.nn.functional.linear(x, w)
            samples.append((time.perf_counter() - start) / 20)
        rows.append([str(dtype).removeprefix("torch."), f"{2 * tokens * width * hidden / statistics.median(samples) / 1e9:.0f}"])
    base = float(rows[0][1])
    for row in rows:
        row.append(f"{float(row[1]) / base:.2f}x")
    table(f"Matrix multiply, {tokens}x{width} by {width}x{hidden} (torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads), median of {rounds}",
          ["dtype", "GFLOP/s", "vs float32"], rows,
          "A lower-precision runtime is faster only where its matrix multiplies are.")


def gemm_share(texts: list[str], entry, path) -> float:
    """Fraction of an fp32 encode's CPU time spent in matrix multiplies (torch profiler)."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    model = ServedModel(entry.name, path, "embedding", runtime="fp32")
    model.embed(texts)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        model.embed(texts)
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events)
    gemm = sum(e.self_cpu_time_total for e in events if e.key in ("aten::addmm", "aten::mm", "aten::bmm"))
    return gemm / total


def chat_latency(rounds: int) -> None:
    """Time smollm2:135m answering one question greedily, through the server's generation code."""
    entry = catalog.find("smollm2:135m")
    path = catalog.present_path(entry)
    if path is None:
        raise SystemExit("smollm2:135m is not present: pgweave models pull smollm2:135m")
    model = ServedModel(entry.name, path, "generate")
    start = time.perf_counter()
    model.ensure_loaded()
    load = time.perf_counter() - start
    _, tokenizer = model.generator()
    prompt = tokenizer.apply_chat_template([{"role": "user", "content": QUERIES[1]}], tokenize=False,
                                           add_generation_prompt=True)
    rows = []
    for _ in range(rounds):
        start = time.perf_counter()
        out = model.generate(prompt, {"temperature": 0, "num_predict": 32})
        seconds = time.perf_counter() - start
        rows.append([f"{seconds:.2f}", out["prompt_tokens"], out["completion_tokens"],
                     f"{out['completion_tokens'] / seconds:.1f}"])
    say(f"answer: {out['text']!r}")
    table(f"smollm2:135m, greedy answer to a {rows[0][1]}-token chat prompt (load {load:.1f} s)",
          ["seconds", "prompt tokens", "generated tokens", "tokens/s"], rows)


def main() -> None:
    """Measure every runtime on the same chunks and print one table."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="all-minilm", choices=["all-minilm", "all-mpnet-base-v2"])
    parser.add_argument("--texts", type=int, default=256, help="formatted chunks to embed per round")
    parser.add_argument("--batch", type=int, default=64, help="texts per request")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--chat", action="store_true", help="also time the chat model")
    args = parser.parse_args()
    if args.chat:
        chat_latency(args.rounds)

    entry = catalog.find(args.model)
    path = catalog.present_path(entry)
    if path is None:
        raise SystemExit(f"{entry.name} is not present: pgweave models pull {entry.name}")
    texts: list[str] = []
    for page in postgres_docs(prefix="sql-"):
        texts.extend(formatted_chunks(page.title, page.body))
        if len(texts) >= args.texts:
            break
    texts = texts[:args.texts]
    requests = [texts[i:i + args.batch] for i in range(0, len(texts), args.batch)]
    say(f"{len(texts)} chunks of {entry.name}, requests of {args.batch}, {args.rounds} rounds; "
        f"CPU bf16: {cpu_has_bf16()}")
    kernel_rates(args.rounds)
    share = gemm_share(requests[0], entry, path)

    runners, notes = {}, {}
    for runtime in ("fp32", "bf16", "int8"):
        model = ServedModel(entry.name, path, "embedding", runtime=runtime)
        model.ensure_loaded()
        runners[f"torch {runtime}" + (" (default)" if runtime == "fp32" else "")] = (
            lambda batch, m=model: m.embed(batch)[0])
    fp32_model = ServedModel(entry.name, path, "embedding", runtime="fp32")
    for quantize in (False, True):
        name = "ONNX Runtime " + ("int8" if quantize else "fp32")
        try:
            runners[name] = OnnxEmbedder(fp32_model, quantize).embed
        except Exception as exc:  # noqa: BLE001 - a bench row says why it is missing
            notes[name] = f"{type(exc).__name__}: {exc}"[:120]

    for run in runners.values():  # warm-up: oneDNN builds its kernels on first use of a shape
        run(requests[0])
    seconds: dict[str, list[float]] = {name: [] for name in runners}
    vectors: dict[str, np.ndarray] = {}
    for rnd in range(args.rounds):
        for name, run in runners.items():
            start = time.perf_counter()
            out = [run(batch) for batch in requests]
            seconds[name].append(time.perf_counter() - start)
            vectors[name] = np.concatenate(out)
        say(f"round {rnd + 1}: " + ", ".join(f"{n} {len(texts) / s[-1]:.1f}/s" for n, s in seconds.items()))

    base_name = next(iter(runners))
    base = vectors[base_name]
    queries = {name: run(QUERIES) for name, run in runners.items()}
    top1 = {name: (queries[name] @ vectors[name].T).argmax(1) for name in runners}
    base_rate = len(texts) / statistics.median(seconds[base_name])
    rows = []
    for name in runners:
        rate = len(texts) / statistics.median(seconds[name])
        cos = (vectors[name] * base).sum(1)
        same = int((top1[name] == top1[base_name]).sum())
        rows.append([name, f"{rate:.1f}", f"{rate / base_rate:.2f}x", f"{cos.min():.5f}", f"{cos.mean():.5f}",
                     f"{same}/{len(QUERIES)}"])
    rows += [[name, "-", "-", "-", "-", f"not measured: {why}"] for name, why in notes.items()]
    table(f"Embedding runtimes, {entry.name}: {len(texts)} chunks, requests of {args.batch}, "
          f"median of {args.rounds} interleaved rounds",
          ["runtime", "texts/s", "vs fp32", "cosine min", "cosine mean", "same top-1 as fp32"], rows,
          "cosine and top-1 are against torch fp32 (sentence-transformers, what `--runtime fp32` serves). "
          f"Matrix multiplies take {share:.0%} of an fp32 encode here, so a runtime with the same "
          f"matrix-multiply speed gains at most {1 / share:.2f}x, even if all other work vanished.")


if __name__ == "__main__":
    main()
