"""Build the quickstart's "upstream": two small but real model repos in a local hub cache.

    python build_seed.py SEED_CACHE_DIR

Writes, in the Hugging Face cache layout that ``reconcile serve`` serves:

    demo/tiny-t2v            a tiny text-to-video-like transformer (~3 MB of float16 weights)
                             model.safetensors, config.json, scheduler/scheduler_config.json,
                             README.md
    demo/tiny-text-encoder   a tiny text encoder (~0.5 MB)
                             model.safetensors, tokenizer.json, config.json, README.md

The weights are random but deterministic (``numpy.random.default_rng(0)``), so every run
publishes the same bytes and therefore the same commit ids.  Nothing here touches the network.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from safetensors.numpy import save_file

# The one writer of repos into a cache, which the tests use too; the quickstart runs from a
# checkout of the repository, so it is found there (the package installs only the product).
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.support.repos import publish  # noqa: E402 - after the path is set

T2V_REPO = "demo/tiny-t2v"
TEXT_ENCODER_REPO = "demo/tiny-text-encoder"

Tensors = dict[str, NDArray[np.float16]]


def _tensor(rng: np.random.Generator, *shape: int, scale: float = 0.02) -> NDArray[np.float16]:
    values = rng.standard_normal(shape, dtype=np.float32) * scale
    return values.astype(np.float16)


def _block(rng: np.random.Generator, prefix: str, dim: int, hidden: int) -> Tensors:
    """One pre-norm transformer block: attention and an MLP."""
    return {
        f"{prefix}.norm1.weight": np.ones(dim, dtype=np.float16),
        f"{prefix}.attn.qkv.weight": _tensor(rng, 3 * dim, dim),
        f"{prefix}.attn.proj.weight": _tensor(rng, dim, dim),
        f"{prefix}.norm2.weight": np.ones(dim, dtype=np.float16),
        f"{prefix}.mlp.fc1.weight": _tensor(rng, hidden, dim),
        f"{prefix}.mlp.fc2.weight": _tensor(rng, dim, hidden),
    }


def t2v_tensors(rng: np.random.Generator, dim: int = 256, layers: int = 2) -> Tensors:
    """A video diffusion transformer in miniature: patchify, blocks, unpatchify."""
    channels, patch = 16, (1, 2, 2)
    tensors: Tensors = {
        "patch_embedding.weight": _tensor(rng, dim, channels, *patch),
        "text_projection.weight": _tensor(rng, dim, 128),
        "time_embedding.weight": _tensor(rng, dim, 256),
    }
    for i in range(layers):
        tensors.update(_block(rng, f"blocks.{i}", dim, 4 * dim))
    tensors["head.norm.weight"] = np.ones(dim, dtype=np.float16)
    tensors["head.proj.weight"] = _tensor(rng, channels * 4, dim)
    return tensors


def text_encoder_tensors(rng: np.random.Generator, vocab: int, dim: int = 128) -> Tensors:
    tensors: Tensors = {"token_embedding.weight": _tensor(rng, vocab, dim)}
    for i in range(2):
        tensors.update(_block(rng, f"encoder.layers.{i}", dim, 2 * dim))
    tensors["final_norm.weight"] = np.ones(dim, dtype=np.float16)
    return tensors


def tokenizer_json(vocab: int) -> bytes:
    """A minimal word-level tokenizer in the `tokenizers` JSON format."""
    words = ["<pad>", "<unk>", "a", "cat", "dog", "on", "the", "beach", "video", "of"]
    words += [f"tok{i}" for i in range(len(words), vocab)]
    doc = {
        "version": "1.0",
        "added_tokens": [],
        "normalizer": {"type": "Lowercase"},
        "pre_tokenizer": {"type": "Whitespace"},
        "model": {"type": "WordLevel", "vocab": {w: i for i, w in enumerate(words)},
                  "unk_token": "<unk>"},
    }
    return _json(doc)


def _json(doc: object) -> bytes:
    return (json.dumps(doc, indent=2) + "\n").encode()


def _safetensors(tensors: Tensors, scratch: Path, name: str) -> bytes:
    path = scratch / name
    save_file(dict(tensors), str(path), metadata={"format": "pt"})
    return path.read_bytes()


def build(seed_cache: Path) -> dict[str, str]:
    """Publish both repos into ``seed_cache``; return each repo's commit id."""
    rng = np.random.default_rng(0)
    vocab = 1000
    commits: dict[str, str] = {}
    with tempfile.TemporaryDirectory() as tmp:
        scratch = Path(tmp)
        commits[T2V_REPO] = publish(seed_cache, T2V_REPO, {
            "model.safetensors": _safetensors(t2v_tensors(rng), scratch, "t2v.safetensors"),
            "config.json": _json({"model_type": "tiny-t2v", "dim": 256, "num_layers": 2,
                                  "in_channels": 16, "patch_size": [1, 2, 2]}),
            "scheduler/scheduler_config.json": _json({
                "_class_name": "FlowMatchEulerDiscreteScheduler", "num_train_timesteps": 1000,
                "shift": 5.0}),
            "README.md": b"# tiny-t2v\n\nA tiny, random text-to-video transformer for the "
                         b"modelsync quickstart.  It generates nothing useful.\n",
        }, message="tiny-t2v")
        commits[TEXT_ENCODER_REPO] = publish(seed_cache, TEXT_ENCODER_REPO, {
            "model.safetensors": _safetensors(text_encoder_tensors(rng, vocab), scratch,
                                              "te.safetensors"),
            "tokenizer.json": tokenizer_json(vocab),
            "config.json": _json({"model_type": "tiny-text-encoder", "vocab_size": vocab,
                                  "d_model": 128, "num_layers": 2}),
            "README.md": b"# tiny-text-encoder\n\nA tiny, random text encoder for the "
                         b"modelsync quickstart.\n",
        }, message="tiny-text-encoder")
    return commits


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(f"usage: {Path(argv[0]).name} SEED_CACHE_DIR", file=sys.stderr)
        return 1
    seed_cache = Path(argv[1])
    seed_cache.mkdir(parents=True, exist_ok=True)
    for repo, commit in build(seed_cache).items():
        print(f"  published {repo} @ {commit[:12]}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
