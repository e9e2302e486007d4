"""Peak GPU memory of a GRPO run, planned from the config and the model's shape before anything is loaded.

    plan = plan_memory(resolve_shape("unsloth/Qwen3-1.7B"), settings_from_config(cfg, "unsloth"), card_gib=24)

For a config (the weights' precision decided for the card first), the check a run makes, the searches behind its
advice and the table: train/lab/memory_check.py (`plan_config`, `check_memory_plan`).

Every figure is bytes from a formula of the model's shape (config.json: layers L, hidden h, MLP width I, query width
q = heads x head_dim, key/value width kv = kv_heads x head_dim, vocabulary V) and the run's batch: R completions per
micro-step (`per_device_train_batch_size`) of S = prompt + completion tokens, T = R x S tokens, C completion tokens.
GiB = 2**30 bytes throughout; the published figures below are in the same unit (their own formulas give 78.3 and 2.5
only in GiB).

Components and their sources
- CUDA context and kernels: 1.0 GiB for unsloth + vLLM in one process, 0.5 GiB for transformers alone. Not derived:
  the usual 0.5-1 GiB of a CUDA context with lazily loaded kernels, the upper end when vLLM's kernels load too.
- Weights: the projections of every layer, P_lin = L x (h(q + 2kv) + qh + 3hI), in 4 bit or 16 bit; embeddings and
  output head (V x h each, one matrix when tied) and norms stay in 16 bit, as Unsloth and bitsandbytes keep them.
  4 bit under unsloth: 5 bits a weight, Unsloth's own estimate (unsloth_zoo vllm_utils.approximate_vllm_memory_usage:
  "Should be 4.5 but use 5", which covers NF4's absmax and the layers its dynamic quants keep in 16 bit). 4 bit
  under transformers: bitsandbytes NF4 with double quantization, 4 + 8/64 + 32/(64 x 256) = 4.127 bits a weight.
  Unsloth also keeps one dequantized 16-bit copy of the largest projection (max(qh, hI) x 2 bytes) for its matmuls.
- LoRA: r x (in + out) parameters per adapted projection per layer; fp32 weights (4 B) and fp32 gradients (4 B);
  optimizer states: adamw_8bit / paged_adamw_8bit 2 B (two 1-byte moments), adamw_torch 8 B (two fp32 moments).
  With vLLM, its LoRA slot holds the adapter again in 16 bit (2 B a parameter, unsloth_zoo's estimate).
  lora_rank 0 (all weights trained): 16-bit weights with 16-bit gradients and the optimizer's states for all of them.
- Activations. What autograd keeps for one decoder layer, per token, in bytes (transformers' Llama/Qwen layer with
  PEFT LoRA on all seven projections and flash/SDPA attention in bf16): the two RMSNorms' fp32 input copies (4h each),
  the LoRA inputs of the attention and MLP (2h each), q, k, v and the attention output kept by flash attention
  (2(2q + 2kv)), SiLU's input, both factors of act x up and the down projection's input (2I each):
  a(tok) = 12h + 4q + 4kv + 8I, plus 4q + 4kv for Qwen3's q/k norms. Counted as an upper bound for Unsloth's fused
  kernels too (they keep no more than that).
  - unsloth (`use_gradient_checkpointing="unsloth"`): each layer's input is offloaded to CPU RAM (L x T x h x 2 B of
    host memory, shown beside the table); the GPU holds one layer recomputed for backward, a(tok) x T, plus four
    hidden states T x h x 2 B (the double-buffered reload, the gradient in the residual stream, the final hidden
    states kept for the loss; unsloth_zoo/gradient_checkpointing.py).
  - hf without checkpointing (`train.gradient_checkpointing: false`, our default): every layer keeps a(tok) x T,
    plus two hidden states for the gradient. hf with checkpointing: L hidden states T x h x 2 B kept on the GPU plus
    one layer's a(tok) x T plus two hidden states.
- Logits and loss.
  - unsloth: the fused linear + log-prob loss computes one row chunk of fp32 logits at a time (unsloth_zoo
    fused_losses/fused_linear.py fused_linear_rows): rows = the power of two at or below n x h / V (Liger's rule,
    n = R x C scored tokens), clamped to [512, 4096] and to a 2 GiB chunk (UNSLOTH_LOGPROB_CHUNK_GB), so
    chunk x V x 4 B, plus the gradient of the hidden states it writes in the forward pass, n x h x 2 B.
  - hf (TRL 1.14 on CUDA): the model returns bf16 logits for the completion, R x (C + 1) x V x 2 B, which TRL's fused
    Triton log-prob kernel keeps for backward, and backward allocates a gradient of the same size: 4 B per element.
    (TRL's fallback without Triton, fp32 logits and log-softmax, would be 8 B.) This equals the published
    "2 logits x 2 bytes" of TRL + FA2 (policy and reference logits, both bf16, alive together in the 2025 TRL).
- Reference pass (beta > 0). unsloth: the same weights with the adapters disabled, no extra weights; its log-probs
  come through the same chunked loss, so nothing extra at the peak. hf: with PEFT the adapter is disabled, no extra
  weights; TRL scores it under no_grad before the step, a phase of its own with R x C x V x 2 B of bf16 logits.
  hf with lora_rank 0: a second 16-bit copy of the model.
- vLLM. KV cache for the completions of one generation batch: 2 (K and V) x L x kv x 2 B x tokens, tokens =
  (per_device_train_batch_size x gradient_accumulation_steps) x S. Its CUDA graphs: 172 graphs x h x L x 4 B,
  clamped to [0.15, 1] GiB (unsloth_zoo's estimate). Weights are shared with training (Unsloth's fast_inference).
  vLLM takes gpu_memory_utilization x card up front (weights, activations, and whatever is left as KV cache).
  Under Standby (UNSLOTH_VLLM_STANDBY=1, grpo-lab's default) Unsloth replaces the utilization with its own target
  (unsloth_zoo vllm_utils: on a 24 GB card 0.825 x 0.95 = 0.784 with vLLM >= 0.11; UNSLOTH_VLLM_STANDBY_UTIL_OVERRIDE=1
  keeps yours) and frees the KV cache while a training step runs. So the GPU peaks at the larger of
  (a) generation: vLLM's share + the training side that persists (CUDA context, LoRA, optimizer states) and
  (b) training: everything but the KV cache. Without Standby vLLM's share is held throughout and the training step
  must fit in what it leaves. The plan reports both what the run needs and what the GPU will show.
- transformers generation (hf backend, or unsloth without fast_inference): HF generate's KV cache, same formula,
  for a generation batch during training and for eval.batch_size x samples-per-prompt sequences during evaluation.

Calibration against published figures and a measured CPU step (docs/planner.md has the tables;
tests/test_memory_plan.py keeps them): Unsloth's long-context GRPO figure (54.3 GiB) planned at -13% (KV of one
sequence) and +19% (KV of all 8 generations), its "GRPO in about 5 GB" at -23%; TRL + FA2's 510.8 GiB at +97%
without gradient checkpointing and -66% with it; SmolLM2-135M measured on a CPU: weights -2%, LoRA +25%, a whole
step -51%. No constant was fitted except the CUDA context (1.0 GiB with vLLM, 0.5 without, the ends of the usual
0.5-1 GiB range; the 5 GB figure is -28% at 0.75 GiB). How the run's check uses these errors:
train/lab/memory_check.py (the margin).
"""

from __future__ import annotations

import json
import math
import os
import string
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from train.config import ExperimentConfig
from train.errors import UserError

GIB = 2**30
Backend = Literal["unsloth", "hf"]

CUDA_CONTEXT_BYTES = {"unsloth": int(1.0 * GIB), "hf": int(0.5 * GIB)}
UNSLOTH_4BIT_BITS = 5.0  # unsloth_zoo vllm_utils.approximate_vllm_memory_usage
BNB_NF4_BITS = 4 + 8 / 64 + 32 / (64 * 256)  # NF4, blocksize 64, double-quantized absmax
UNSLOTH_GPU_HIDDEN_STATES = 4
HF_GRADIENT_HIDDEN_STATES = 2
LOGPROB_CHUNK_BYTES = 2 * GIB  # UNSLOTH_LOGPROB_CHUNK_GB default
FUSED_MAX_ROWS = 4096
FUSED_MIN_LOGITS = 512 * 151936
VLLM_CUDA_GRAPHS = 172
OPTIMIZER_STATE_BYTES = {
    "adamw_8bit": 2,
    "paged_adamw_8bit": 2,
    "adamw_bnb_8bit": 2,
    "adamw_torch": 8,
    "adamw_torch_fused": 8,
    "adamw_hf": 8,
    "paged_adamw_32bit": 8,
    "adafactor": 4,
    "sgd": 0,
}
LORA_MODULES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


# --------------------------------------------------------------------------------------------------------------
# Model shapes


@dataclass(frozen=True)
class ModelShape:
    """What memory depends on in a decoder-only model's config.json."""

    name: str
    layers: int
    hidden: int
    intermediate: int
    heads: int
    kv_heads: int
    head_dim: int
    vocab: int
    tied: bool
    qk_norm: bool = False  # Qwen3 normalizes q and k per head (two more fp32 copies kept for backward)

    @property
    def q_dim(self) -> int:
        return self.heads * self.head_dim

    @property
    def kv_dim(self) -> int:
        return self.kv_heads * self.head_dim

    @property
    def linear_params(self) -> int:
        """L x (h(q + 2kv) + qh + 3hI): the seven projections of every layer (what 4-bit quantizes)."""
        h, q, kv, i = self.hidden, self.q_dim, self.kv_dim, self.intermediate
        return self.layers * (h * (q + 2 * kv) + q * h + 3 * h * i)

    @property
    def embedding_params(self) -> int:
        """V x h for the input embedding, twice when the output head is not tied to it."""
        return self.vocab * self.hidden * (1 if self.tied else 2)

    @property
    def params(self) -> int:
        """Projections + embeddings + norms (biases and q/k norms are left out: under 0.1%)."""
        return self.linear_params + self.embedding_params + (2 * self.layers + 1) * self.hidden


# The shipped models' shapes, from their config.json (checked against copies of the hub files): the fallback when
# neither a local directory nor the Hugging Face cache has the config. Keys are normalized names (see shape_key).
SHIPPED_SHAPES: dict[str, ModelShape] = {
    shape.name.lower(): shape
    for shape in [
        ModelShape("Qwen3-0.6B", 28, 1024, 3072, 16, 8, 128, 151936, True, qk_norm=True),
        ModelShape("Qwen3-1.7B", 28, 2048, 6144, 16, 8, 128, 151936, True, qk_norm=True),
        ModelShape("Qwen3-4B", 36, 2560, 9728, 32, 8, 128, 151936, True, qk_norm=True),
        ModelShape("Qwen3-8B", 36, 4096, 12288, 32, 8, 128, 151936, False, qk_norm=True),
        ModelShape("Qwen2.5-0.5B", 24, 896, 4864, 14, 2, 64, 151936, True),  # the GSM8K demo study's instruct model
        ModelShape("Qwen2.5-1.5B", 28, 1536, 8960, 12, 2, 128, 151936, True),
        # Same shape as its base Qwen2.5-1.5B; only max_position_embeddings (4096) and rope_theta differ.
        ModelShape("Qwen2.5-Math-1.5B", 28, 1536, 8960, 12, 2, 128, 151936, True),
        ModelShape("Llama-3.1-8B", 32, 4096, 14336, 32, 8, 128, 128256, False),
        # model.name builtin:smollm2-135m-instruct (train/models/packaged.py), as its converted config.json says.
        ModelShape("SmolLM2-135M", 30, 576, 1536, 9, 3, 64, 49152, True),
    ]
}
_NAME_SUFFIXES = ("-unsloth-bnb-4bit", "-bnb-4bit", "-instruct", "-base")


def shape_key(model_name: str) -> str:
    """The table's key of a model name: `unsloth/Qwen3-1.7B-unsloth-bnb-4bit` -> `qwen3-1.7b`,
    `meta-llama/Meta-Llama-3.1-8B-Instruct` -> `llama-3.1-8b`."""
    key = model_name.rstrip("/").rsplit("/", 1)[-1].lower()
    changed = True
    while changed:
        changed = False
        for suffix in _NAME_SUFFIXES:
            if key.endswith(suffix):
                key, changed = key[: -len(suffix)], True
    return key.removeprefix("meta-").removeprefix("builtin:")


def shape_from_config(config: dict[str, Any], name: str) -> ModelShape:
    """A ModelShape from a config.json mapping (the text part of a multimodal config)."""
    config = config.get("text_config") or config
    try:
        hidden = int(config["hidden_size"])
        heads = int(config["num_attention_heads"])
        return ModelShape(
            name=name,
            layers=int(config["num_hidden_layers"]),
            hidden=hidden,
            intermediate=int(config.get("intermediate_size") or 4 * hidden),
            heads=heads,
            kv_heads=int(config.get("num_key_value_heads") or heads),
            head_dim=int(config.get("head_dim") or hidden // heads),
            vocab=int(config["vocab_size"]),
            tied=bool(config.get("tie_word_embeddings", False)),
            qk_norm=str(config.get("model_type", "")).startswith("qwen3"),
        )
    except (KeyError, TypeError, ValueError) as error:
        raise UserError(
            f"the config.json of {name} lacks what the memory planner needs ({error}): it reads num_hidden_layers, "
            "hidden_size, num_attention_heads and vocab_size. Point model.name at a decoder-only language model."
        ) from None


def builtin_shape(cfg: ExperimentConfig) -> ModelShape:
    """The built-in tiny Qwen2 (train/models/builtin.py: MLP 3h, kv heads = heads, tied, one token per character)."""
    b = cfg.model.builtin
    vocab = 3 + len(string.printable) + 6  # pad/eos/unk, printable ASCII, six answer tags
    return ModelShape(
        "builtin:tiny",
        b.num_layers,
        b.hidden_size,
        3 * b.hidden_size,
        b.num_heads,
        b.num_heads,
        b.hidden_size // b.num_heads,
        vocab,
        True,
    )


def resolve_shape(model_name: str) -> ModelShape:
    """The model's shape, never from the network: a local directory's config.json, the Hugging Face cache, or the
    table of shipped models."""
    local = Path(model_name)
    if (local / "config.json").is_file():
        return shape_from_config(json.loads((local / "config.json").read_text()), model_name)
    cached = _cached_config(model_name)
    if cached is not None:
        return shape_from_config(json.loads(cached.read_text()), model_name)
    shape = SHIPPED_SHAPES.get(shape_key(model_name))
    if shape is not None:
        return replace(shape, name=model_name)
    known = ", ".join(s.name for s in SHIPPED_SHAPES.values())
    raise UserError(
        f"cannot plan memory for '{model_name}': it is not a local directory with a config.json, its config.json is "
        f"not in the Hugging Face cache, and it is not one of the shapes the planner knows offline ({known}). "
        "Download the model once (its config.json is then cached) or point model.name at a local directory."
    )


def _cached_config(model_name: str) -> Path | None:
    if model_name.count("/") != 1:
        return None
    try:
        from huggingface_hub import hf_hub_download

        return Path(hf_hub_download(model_name, "config.json", local_files_only=True))
    except Exception:  # not cached, or not a valid repo id: the table is next
        return None


# --------------------------------------------------------------------------------------------------------------
# Settings: what of a config the plan depends on


@dataclass(frozen=True)
class PlanSettings:
    backend: Backend
    load_in_4bit: bool = True
    lora_rank: int = 16
    target_modules: tuple[str, ...] = LORA_MODULES
    optimizer: str = "adamw_8bit"
    beta: float = 0.0
    num_generations: int = 8
    batch_rows: int = 8  # completions per micro-step (per_device_train_batch_size)
    generation_batch: int = 8  # completions generated together (x gradient_accumulation_steps)
    prompt_tokens: int = 256
    completion_tokens: int = 256
    gradient_checkpointing: bool = False  # hf only; unsloth always checkpoints (offloaded)
    use_vllm: bool = True  # unsloth fast_inference (hf: TRL's colocated vLLM, only used for calibration)
    vllm_shares_weights: bool = True  # Unsloth shares; TRL's colocated vLLM loads its own 16-bit copy
    standby: bool = True
    standby_util_override: bool = False
    gpu_memory_utilization: float = 0.6
    vllm_kv_sequences: int | None = None  # None: the generation batch (the published figures count 1)
    eval_sequences: int = 0  # hf generate during evaluation: eval.batch_size x samples per prompt
    eval_new_tokens: int | None = None  # None: completion_tokens

    @property
    def seq_len(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    @property
    def tokens(self) -> int:
        """T = R x S: tokens of one micro-step's forward and backward."""
        return self.batch_rows * self.seq_len


def settings_from_config(cfg: ExperimentConfig, backend: str = "auto", standby: bool | None = None) -> PlanSettings:
    """The plan's settings for a config on a GPU. backend auto is unsloth (what a GPU with the gpu extra runs), hf
    for the built-in model; standby None reads UNSLOTH_VLLM_STANDBY as grpo-lab's unsloth backend does (default on)."""
    if backend == "auto":
        backend = "hf" if cfg.model.is_builtin_tiny else "unsloth"
    if backend not in ("unsloth", "hf"):
        raise UserError(f"backend must be auto, unsloth or hf, not {backend!r}.")
    if standby is None:
        standby = os.environ.get("UNSLOTH_VLLM_STANDBY", "1") != "0"
    # The arguments the run will give TRL on a GPU (train/grpo/arguments.py), so the plan and the run cannot disagree.
    # A vllm_server's rollouts run on GPUs of their own: its mode (and whether vLLM is installed here) plans nothing.
    from train.grpo.arguments import resolve

    local = cfg.model_copy(update={"train": cfg.train.model_copy(update={"vllm_server": None})})
    args = resolve(local, backend, on_gpu=True, bf16_supported=True).grpo
    m = cfg.model
    completion = args["max_completion_length"]
    eval_budget = cfg.eval.max_new_tokens
    use_vllm = backend == "unsloth" and m.fast_inference
    return PlanSettings(
        backend=backend,  # type: ignore[arg-type]
        load_in_4bit=_four_bit(cfg) and not cfg.model.is_builtin_tiny,
        lora_rank=m.effective_lora_rank,
        target_modules=tuple(m.target_modules),
        optimizer=args["optim"],
        beta=args["beta"],
        num_generations=args["num_generations"],
        batch_rows=args["per_device_train_batch_size"],
        generation_batch=args["per_device_train_batch_size"] * args["gradient_accumulation_steps"],
        prompt_tokens=m.max_seq_length - completion,
        completion_tokens=completion,
        gradient_checkpointing=args["gradient_checkpointing"],
        use_vllm=use_vllm,
        vllm_shares_weights=True,
        standby=standby and use_vllm,
        standby_util_override=os.environ.get("UNSLOTH_VLLM_STANDBY_UTIL_OVERRIDE", "0") != "0",
        gpu_memory_utilization=m.gpu_memory_utilization,
        eval_sequences=0 if use_vllm else cfg.eval.batch_size * max(1, cfg.eval.samples_per_prompt),
        eval_new_tokens=eval_budget if eval_budget is not None and eval_budget != completion else None,
    )


def _four_bit(cfg: ExperimentConfig) -> bool:
    setting = cfg.model.load_in_4bit
    if isinstance(setting, bool):
        return setting
    raise ValueError("model.load_in_4bit is auto: decide it for the card first (resolve_precision)")


# --------------------------------------------------------------------------------------------------------------
# Component formulas (bytes)


def weight_bytes(shape: ModelShape, load_in_4bit: bool, backend: Backend) -> int:
    """Projections at 5 bits (unsloth 4 bit), 4.127 bits (bitsandbytes NF4) or 16 bits; embeddings, output head and
    norms in 16 bits."""
    bits = (UNSLOTH_4BIT_BITS if backend == "unsloth" else BNB_NF4_BITS) if load_in_4bit else 16
    sixteen_bit = shape.embedding_params + (2 * shape.layers + 1) * shape.hidden
    return math.ceil(shape.linear_params * bits / 8) + 2 * sixteen_bit


def dequant_buffer_bytes(shape: ModelShape) -> int:
    """Unsloth's reusable 16-bit copy of the largest dequantized projection: max(qh, hI) x 2 B."""
    return 2 * max(shape.q_dim * shape.hidden, shape.hidden * shape.intermediate)


def lora_params(shape: ModelShape, rank: int, target_modules: tuple[str, ...] | list[str]) -> int:
    """sum over adapted projections of r x (in + out), for every layer."""
    h, q, kv, i = shape.hidden, shape.q_dim, shape.kv_dim, shape.intermediate
    sizes = {
        "q_proj": h + q,
        "k_proj": h + kv,
        "v_proj": h + kv,
        "o_proj": q + h,
        "gate_proj": h + i,
        "up_proj": h + i,
        "down_proj": i + h,
    }
    return shape.layers * rank * sum(sizes[m] for m in target_modules if m in sizes)


def optimizer_state_bytes_per_param(optimizer: str) -> int:
    """Bytes of optimizer state per trained parameter (unknown optimizers: AdamW's 8, the safe side)."""
    return OPTIMIZER_STATE_BYTES.get(optimizer, 8)


def kv_cache_bytes(shape: ModelShape, tokens: int, bytes_per_value: int = 2) -> int:
    """2 (K and V) x layers x kv_heads x head_dim x bytes x tokens (vLLM's and transformers' KV cache in bf16)."""
    return 2 * shape.layers * shape.kv_heads * shape.head_dim * bytes_per_value * tokens


def layer_activation_bytes_per_token(shape: ModelShape) -> int:
    """What autograd keeps for one decoder layer per token: 12h + 4q + 4kv + 8I bytes (+ 4q + 4kv with q/k norms)."""
    h, q, kv, i = shape.hidden, shape.q_dim, shape.kv_dim, shape.intermediate
    per_token = 12 * h + 4 * q + 4 * kv + 8 * i
    if shape.qk_norm:
        per_token += 4 * q + 4 * kv
    return per_token


def hidden_state_bytes(shape: ModelShape, tokens: int) -> int:
    """One bf16 hidden state for every token: T x h x 2 B."""
    return tokens * shape.hidden * 2


def unsloth_logit_chunk_rows(scored_tokens: int, shape: ModelShape) -> int:
    """Rows of fp32 logits per chunk in Unsloth's fused linear log-prob loss (fused_linear_rows, unsloth_zoo)."""

    def pow2_at_or_below(x: float) -> int:
        return 1 << max(int(math.floor(math.log2(max(x, 1)))), 0)

    rows = pow2_at_or_below(scored_tokens * shape.hidden / shape.vocab)
    min_rows = min(max(pow2_at_or_below(FUSED_MIN_LOGITS / shape.vocab), 512), FUSED_MAX_ROWS)
    rows = min(max(rows, min_rows), FUSED_MAX_ROWS)
    rows = min(rows, max(LOGPROB_CHUNK_BYTES // (shape.vocab * 4), 2))
    return max(min(rows, max(scored_tokens, 1)), 1)


def unsloth_logits_bytes(shape: ModelShape, rows: int, completion_tokens: int) -> int:
    """One chunk of fp32 logits (chunk x V x 4 B) + the hidden-state gradient it writes (R x C x h x 2 B)."""
    scored = rows * completion_tokens
    return unsloth_logit_chunk_rows(scored, shape) * shape.vocab * 4 + scored * shape.hidden * 2


def trl_logits_bytes(shape: ModelShape, rows: int, completion_tokens: int) -> int:
    """R x (C + 1) x V bf16 logits kept by TRL's fused log-prob kernel + their bf16 gradient: 4 B per element."""
    return rows * (completion_tokens + 1) * shape.vocab * 4


def vllm_cuda_graph_bytes(shape: ModelShape) -> int:
    """172 captured graphs x h x L x 4 B, clamped to [0.15, 1] GiB (unsloth_zoo approximate_vllm_memory_usage)."""
    return min(max(VLLM_CUDA_GRAPHS * shape.hidden * shape.layers * 4, int(0.15 * GIB)), GIB)


def standby_gpu_memory_utilization(card_gib: float) -> float:
    """The share Unsloth gives vLLM under Standby on vLLM >= 0.11 (unsloth_zoo vllm_utils.load_vllm), by card size."""
    ten_percent = card_gib * 0.1
    if ten_percent >= 4.0:
        target = 0.925
    elif ten_percent >= 2.5:
        target = 0.9
    elif ten_percent >= 2.0:
        target = 0.825
    elif ten_percent >= 1.4:
        target = 0.8
    elif ten_percent >= 1.0:
        target = 0.775
    else:
        target = 0.75
    return target * 0.95


# --------------------------------------------------------------------------------------------------------------
# The plan


@dataclass
class Component:
    name: str
    bytes: int
    note: str = ""


@dataclass
class Plan:
    shape: ModelShape
    settings: PlanSettings
    card_bytes: int
    components: list[Component]
    phases: dict[str, int]  # what the GPU holds in each phase of a step, vLLM's reservation included
    needed_bytes: int  # what the run needs (vLLM counted by its KV cache, not by its reservation)
    vllm_reservation_bytes: int
    vllm_utilization: float
    host_offload_bytes: int
    problems: list[str] = field(default_factory=list)
    precision_note: str = ""  # how the weights' precision was decided (plan_config)

    @property
    def peak_bytes(self) -> int:
        return max(self.phases.values())

    @property
    def peak_phase(self) -> str:
        return max(self.phases, key=self.phases.__getitem__)

    @property
    def headroom_bytes(self) -> int:
        return self.card_bytes - self.peak_bytes

    @property
    def fits(self) -> bool:
        return not self.problems and self.peak_bytes <= self.card_bytes

    def component(self, name: str) -> int:
        return sum(c.bytes for c in self.components if c.name == name)


def plan_memory(shape: ModelShape, s: PlanSettings, card_gib: float) -> Plan:
    """Every component, the phases of a step, the peak on a card of card_gib GiB and whether it fits."""
    card = int(card_gib * GIB)
    full_finetune = s.lora_rank == 0
    four_bit = s.load_in_4bit and not full_finetune  # 4-bit weights cannot be trained: full fine-tunes use 16 bit
    components: list[Component] = []

    def add(name: str, value: int, note: str = "") -> int:
        components.append(Component(name, int(value), note))
        return int(value)

    context = add("CUDA context and kernels", CUDA_CONTEXT_BYTES[s.backend], "not derived: 0.5-1 GiB")
    kind = "4-bit" if four_bit else "16-bit"
    weights = add("weights", weight_bytes(shape, four_bit, s.backend), f"{kind} projections, 16-bit embeddings/head")
    dequant = 0
    if s.backend == "unsloth" and four_bit:
        dequant = add("dequantization buffer", dequant_buffer_bytes(shape), "largest projection in 16 bit")

    if full_finetune:
        trained = shape.params
        trainable_bytes = add("gradients (all weights)", 2 * trained, "16-bit, one per weight")
        state = add("optimizer states", trained * optimizer_state_bytes_per_param(s.optimizer), s.optimizer)
        lora_weights = 0
    else:
        trained = lora_params(shape, s.lora_rank, s.target_modules)
        lora_weights = add("LoRA weights", 4 * trained, f"r={s.lora_rank}: {trained / 1e6:.1f}M params in fp32")
        trainable_bytes = add("LoRA gradients", 4 * trained, "fp32")
        state = add("optimizer states", trained * optimizer_state_bytes_per_param(s.optimizer), s.optimizer)

    # Activations of one micro-step.
    tokens = s.tokens
    per_layer = layer_activation_bytes_per_token(shape) * tokens
    hidden = hidden_state_bytes(shape, tokens)
    host_offload = 0
    if s.backend == "unsloth":
        activations = add(
            "activations",
            per_layer + UNSLOTH_GPU_HIDDEN_STATES * hidden,
            f"{tokens} tokens: one layer + {UNSLOTH_GPU_HIDDEN_STATES} hidden states",
        )
        host_offload = shape.layers * hidden
    elif s.gradient_checkpointing:
        activations = add(
            "activations",
            shape.layers * hidden + per_layer + HF_GRADIENT_HIDDEN_STATES * hidden,
            f"{tokens} tokens: {shape.layers} checkpoints + one layer",
        )
    else:
        activations = add(
            "activations",
            shape.layers * per_layer + HF_GRADIENT_HIDDEN_STATES * hidden,
            f"{tokens} tokens, all {shape.layers} layers kept (no checkpointing)",
        )

    if s.backend == "unsloth":
        logits = add(
            "logits and loss", unsloth_logits_bytes(shape, s.batch_rows, s.completion_tokens), "chunked fused log-probs"
        )
    else:
        logits = add(
            "logits and loss", trl_logits_bytes(shape, s.batch_rows, s.completion_tokens), "full bf16 logits + gradient"
        )

    reference_copy = scoring = 0
    if s.beta > 0:
        if s.backend == "hf" and full_finetune:
            reference_copy = add("reference model", weight_bytes(shape, False, "hf"), "second 16-bit copy (beta > 0)")
        elif s.backend == "hf":
            scoring = add(
                "reference pass",
                s.batch_rows * s.completion_tokens * shape.vocab * 2,
                "no extra weights; bf16 logits under no_grad, before the step",
            )
        else:
            add("reference pass", 0, "same weights, adapters disabled")

    # Generation.
    vllm_runtime = kv = hf_generation = 0
    if s.use_vllm:
        kv_sequences = s.vllm_kv_sequences if s.vllm_kv_sequences is not None else s.generation_batch
        kv = add(
            "vLLM KV cache", kv_cache_bytes(shape, kv_sequences * s.seq_len), f"{kv_sequences} x {s.seq_len} tokens"
        )
        vllm_runtime = add("vLLM CUDA graphs", vllm_cuda_graph_bytes(shape), "unsloth_zoo's estimate")
        if not full_finetune:
            vllm_runtime += add("vLLM LoRA slot", 2 * lora_params(shape, s.lora_rank, s.target_modules), "16-bit")
        if not s.vllm_shares_weights:
            vllm_runtime += add("vLLM weights", weight_bytes(shape, False, s.backend), "its own 16-bit copy")
    else:
        hf_generation = add(
            "generation KV cache",
            kv_cache_bytes(shape, s.generation_batch * s.seq_len),
            f"{s.generation_batch} x {s.seq_len} tokens (transformers generate)",
        )
        if s.eval_sequences:
            new_tokens = s.eval_new_tokens or s.completion_tokens
            eval_tokens = s.eval_sequences * (s.prompt_tokens + new_tokens)
            hf_generation = max(
                hf_generation,
                add(
                    "evaluation KV cache",
                    kv_cache_bytes(shape, eval_tokens),
                    f"{s.eval_sequences} x {s.prompt_tokens + new_tokens} tokens",
                ),
            )

    persistent = context + weights + dequant + lora_weights + state + reference_copy + vllm_runtime
    training = trainable_bytes + activations + logits
    problems: list[str] = []
    utilization = 0.0
    reservation = 0
    if s.use_vllm:
        utilization = s.gpu_memory_utilization
        if s.standby and not s.standby_util_override:
            utilization = standby_gpu_memory_utilization(card_gib)
        reservation = int(utilization * card)
        in_pool = weights + vllm_runtime if s.vllm_shares_weights else vllm_runtime
        one_sequence = kv_cache_bytes(shape, s.seq_len)
        if in_pool + one_sequence > reservation:
            problems.append(
                f"vLLM's share ({utilization:.3f} x card = {reservation / GIB:.1f} GiB) cannot hold the weights and "
                f"its runtime ({in_pool / GIB:.1f} GiB) and the KV cache of one {s.seq_len}-token sequence "
                f"({one_sequence / GIB:.2f} GiB)"
            )
        training_side = persistent - in_pool
        if s.standby:
            phases = {"generation": reservation + training_side, "training step": persistent + training}
            needed = max(persistent + training, persistent + kv)
        else:
            phases = {"training step": reservation + training_side + training}
            needed = persistent + training + kv
    else:
        phases = {"training step": persistent + training, "generation": persistent + hf_generation}
        if scoring:
            phases["reference scoring"] = persistent + scoring
        needed = max(phases.values())
    return Plan(shape, s, card, components, phases, needed, reservation, utilization, host_offload, problems)
