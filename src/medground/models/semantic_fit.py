"""Train our own small dual encoder for the semantic reward (``medground semantic fit``).

A CLIP-architecture model (transformers ``CLIPModel``) is built from a small config —
no download — with a word-level tokenizer learnt from the training queries and a
``CLIPImageProcessor`` that squashes every crop to ``image_size`` pixels.  It learns
contrastively from (ground-truth crop, query) pairs: the crop is the first target box
widened by ``margin`` of its size on each side (the semantic reward crops predicted
boxes the same way) and jittered during training so that near-miss boxes still embed
close to their text.  Identical queries in a batch count as positives of each other
(soft targets), so repeated phrases are not pushed apart.

The result is an ordinary ``save_pretrained`` directory that
:func:`medground.models.encoders.load_encoder` loads; ``fit_report.json`` beside it
records the held-out crop→text retrieval top-1 and its chance level (one over the
number of distinct candidate texts).  Training saves its state after every epoch
(``fit_state.pt``: tensors and plain values, read with ``torch.load(..., weights_only=True)``,
so a state file from elsewhere runs no code) and resumes from it when rerun with the
same settings.
"""

from __future__ import annotations

import math
import os
import random
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..config import ConfigError, check_range
from ..crops import crop_regions
from ..data.schema import read_jsonl
from ..errors import MedgroundError
from ..fileio import atomic_json, atomic_path

PAD, UNK, BOS, EOS = "<pad>", "<unk>", "<bos>", "<eos>"


@dataclass
class FitConfig:
    """Architecture and training of the dual encoder (defaults suit the phantom data on a CPU)."""

    image_size: int = field(default=64, metadata={"help": "Crop side fed to the vision tower (pixels)."})
    patch_size: int = field(default=8, metadata={"help": "Vision patch side (pixels)."})
    hidden_size: int = field(default=128, metadata={"help": "Width of both towers."})
    layers: int = field(default=4, metadata={"help": "Transformer blocks of both towers."})
    heads: int = field(default=4, metadata={"help": "Attention heads of both towers."})
    projection_dim: int = field(default=128, metadata={"help": "Size of the shared embedding."})
    max_length: int = field(default=32, metadata={"help": "Query length limit (tokens)."})
    epochs: int = field(default=30, metadata={"help": "Passes over the training pairs."})
    batch_size: int = field(default=64, metadata={"help": "Pairs per step (the contrastive negatives)."})
    lr: float = field(default=5e-4, metadata={"help": "Peak learning rate (AdamW, warm-up then cosine)."})
    weight_decay: float = field(default=0.05, metadata={"help": "AdamW weight decay."})
    margin: float = field(default=0.3, metadata={
        "help": "Crop margin (fraction of box size); the semantic reward reuses it."})
    jitter: float = field(default=0.1, metadata={"help": "Random box jitter during training (fraction of box size)."})
    val_fraction: float = field(default=0.1, metadata={"help": "Held-out share of the training data without --val."})
    seed: int = field(default=0, metadata={"help": "Seed of the initialisation, the split and the batches."})

    def __post_init__(self):
        check_range(self, "image_size", "patch_size", "hidden_size", "layers", "heads", "projection_dim", low=1)
        check_range(self, "max_length", "batch_size", low=2)
        check_range(self, "epochs", "weight_decay", "margin", "jitter", low=0)
        check_range(self, "lr", low=0, low_open=True)
        check_range(self, "val_fraction", low=0, high=1, low_open=True, high_open=True)
        if self.patch_size > self.image_size:
            raise ConfigError(("patch_size", "image_size"), f"a {self.patch_size}-px patch does not fit a "
                                                            f"{self.image_size}-px crop")
        if self.hidden_size % self.heads:
            raise ConfigError(("hidden_size", "heads"), f"{self.hidden_size} is not divisible by {self.heads} heads")


# --------------------------------------------------------------------------- builders


def build_tokenizer(texts: Sequence[str], max_length: int = 32):
    """A lower-cased word-level tokenizer over ``texts`` (``<bos> words <eos>``),
    wrapped as a ``PreTrainedTokenizerFast``; ``<eos>`` has id 3 (CLIP pools there)."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordLevel(unk_token=UNK))
    tok.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Lowercase()])
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Whitespace(), pre_tokenizers.Punctuation()])
    tok.train_from_iterator(list(texts), trainers.WordLevelTrainer(special_tokens=[PAD, UNK, BOS, EOS]))
    tok.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A {EOS}", special_tokens=[(BOS, tok.token_to_id(BOS)), (EOS, tok.token_to_id(EOS))]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=BOS,
        eos_token=EOS,
        pad_token=PAD,
        unk_token=UNK,
        model_max_length=max_length,
    )


def build_image_processor(image_size: int):
    """A ``CLIPImageProcessor`` that resizes any crop straight to ``image_size`` square
    (no centre crop, so nothing of the region is cut away)."""
    from transformers import CLIPImageProcessor

    side = {"height": int(image_size), "width": int(image_size)}
    return CLIPImageProcessor(size=side, crop_size=side, do_center_crop=False)


def build_dual_encoder(
    vocab_size: int,
    *,
    image_size: int = 64,
    patch_size: int = 8,
    hidden_size: int = 128,
    layers: int = 4,
    heads: int = 4,
    projection_dim: int = 128,
    max_length: int = 32,
    text_hidden_size: int | None = None,
    text_layers: int | None = None,
    text_heads: int | None = None,
    intermediate_factor: int = 4,
    pad_id: int = 0,
    bos_id: int = 2,
    eos_id: int = 3,
):
    """A randomly initialised ``CLIPModel`` built from config (no download)."""
    from transformers import CLIPConfig, CLIPModel

    th = text_hidden_size or hidden_size
    text = dict(
        vocab_size=int(vocab_size),
        hidden_size=th,
        intermediate_size=th * intermediate_factor,
        num_hidden_layers=text_layers or layers,
        num_attention_heads=text_heads or heads,
        max_position_embeddings=max_length,
        pad_token_id=pad_id,
        bos_token_id=bos_id,
        eos_token_id=eos_id,
    )
    vision = dict(
        hidden_size=hidden_size,
        intermediate_size=hidden_size * intermediate_factor,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        image_size=image_size,
        patch_size=patch_size,
    )
    return CLIPModel(CLIPConfig(text_config=text, vision_config=vision, projection_dim=projection_dim))


# --------------------------------------------------------------------------- data


@dataclass
class Pair:
    """One training / evaluation pair: a context crop of the image and the box inside it."""

    id: str
    query: str
    context: object  # PIL image: the box widened by the largest margin + jitter, cut once
    box: np.ndarray  # the target box in ``context`` pixels
    category: str | None = None


def _load_image(path: str):
    from ..data.io import load_image

    return load_image(path)


def load_pairs(path: str | os.PathLike, *, context: float = 0.5, progress: bool = False) -> list[Pair]:
    """(first ground-truth box, query) pairs of a canonical dataset; each image is
    read once and cut to the box widened by ``context`` of its size (enough room for
    the margin and jitter used in training).  Samples without a box are skipped."""
    from ..progress import progress as progress_bar

    samples = read_jsonl(path)
    pairs = []
    for s in progress_bar(samples, desc=f"reading {Path(path).name}", enabled=progress):
        if not s.boxes:
            continue
        try:
            image = _load_image(s.image)
        except MedgroundError:
            raise
        except Exception as exc:  # noqa: BLE001 - any unreadable image is a data error
            raise MedgroundError(f"{path} [id={s.id}]: cannot read image {s.image}: {exc}") from None
        box = np.asarray(s.boxes[0], dtype=np.float64)
        W, H = image.size
        w, h = box[2] - box[0], box[3] - box[1]
        if not (w > 0 and h > 0):
            raise MedgroundError(f"{path} [id={s.id}]: degenerate box {s.boxes[0]}")
        cx1 = int(max(0, math.floor(box[0] - context * w)))
        cy1 = int(max(0, math.floor(box[1] - context * h)))
        cx2 = int(min(W, math.ceil(box[2] + context * w)))
        cy2 = int(min(H, math.ceil(box[3] + context * h)))
        ctx = image.crop((cx1, cy1, cx2, cy2))
        ctx.load()
        offset = np.array([cx1, cy1, cx1, cy1], dtype=np.float64)
        pairs.append(Pair(s.id, s.query, ctx, box - offset, s.category))
    if not pairs:
        raise MedgroundError(f"{path}: no sample with a ground-truth box to train on")
    return pairs


def _crops(pairs: Sequence[Pair], margin: float, jitter: float, rng: np.random.Generator | None):
    out = []
    for p in pairs:
        box = p.box.copy()
        if rng is not None and jitter > 0:
            w, h = box[2] - box[0], box[3] - box[1]
            box = box + rng.uniform(-jitter, jitter, size=4) * np.array([w, h, w, h])
            if not (box[2] > box[0] + 1 and box[3] > box[1] + 1):
                box = p.box.copy()
        out.append(crop_regions(p.context, [box], margin)[0])
    return out


# --------------------------------------------------------------------------- evaluation


def retrieval_top1(encoder, pairs: Sequence[Pair], *, margin: float = 0.1) -> dict:
    """Crop→text retrieval on held-out pairs: for each ground-truth crop, is the nearest
    of the distinct candidate texts (all queries of ``pairs``) its own query?

    Returns ``top1``, ``chance`` (1 / number of distinct texts), ``n`` and ``n_texts``;
    when every pair has a category, also ``category_top1`` (the retrieved text was
    written for a finding of the same category — paraphrases of one finding count) and
    its chance level ``category_chance`` (expected share for a uniformly random text).
    """
    texts = sorted({p.query for p in pairs})
    index = {t: i for i, t in enumerate(texts)}
    img = encoder.encode_images(_crops(pairs, margin, 0.0, None))
    txt = encoder.encode_texts(texts)
    pred = (img @ txt.T).argmax(dim=1).tolist()
    hits = sum(int(pr == index[p.query]) for pr, p in zip(pred, pairs))
    out = {"top1": hits / len(pairs), "chance": 1.0 / len(texts), "n": len(pairs), "n_texts": len(texts)}
    if all(p.category for p in pairs):
        cats: dict[str, set] = {}
        for p in pairs:
            cats.setdefault(p.query, set()).add(p.category)
        out["category_top1"] = sum(int(p.category in cats[texts[pr]]) for pr, p in zip(pred, pairs)) / len(pairs)
        out["category_chance"] = float(np.mean([sum(p.category in cats[t] for t in texts) / len(texts) for p in pairs]))
    return out


# --------------------------------------------------------------------------- training


def _contrastive_loss(img: torch.Tensor, txt: torch.Tensor, labels: torch.Tensor, scale: torch.Tensor):
    """Symmetric InfoNCE with soft targets: pairs sharing a query are all positives."""
    logits = scale * img @ txt.T
    same = (labels[:, None] == labels[None, :]).float()
    target = same / same.sum(dim=1, keepdim=True)
    loss_i = -(target * logits.log_softmax(dim=1)).sum(dim=1).mean()
    loss_t = -(target * logits.T.log_softmax(dim=1)).sum(dim=1).mean()
    return (loss_i + loss_t) / 2


def fit(
    train: str | os.PathLike,
    out: str | os.PathLike,
    *,
    val: str | os.PathLike | None = None,
    config: FitConfig | None = None,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
) -> dict:
    """Train the dual encoder on ``train`` and save it to ``out``; returns the report
    (also written to ``out/fit_report.json``).  Held-out pairs come from ``val`` or,
    without it, from a ``val_fraction`` split of ``train``."""
    from ..progress import progress as progress_bar
    from .encoders import HFEncoder

    cfg = config or FitConfig()
    log = log or (lambda msg: None)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    random.seed(cfg.seed)

    context = cfg.margin + cfg.jitter + 0.05
    pairs = load_pairs(train, context=context, progress=progress)
    if val is not None:
        train_pairs, held = pairs, load_pairs(val, context=context, progress=progress)
    else:
        order = rng.permutation(len(pairs))
        n_val = max(1, int(round(cfg.val_fraction * len(pairs)))) if len(pairs) > 1 else 0
        held = [pairs[i] for i in order[:n_val]]
        train_pairs = [pairs[i] for i in order[n_val:]]
    if not train_pairs or not held:
        raise MedgroundError(f"{train}: too few samples to train and hold out ({len(pairs)} pairs)")

    texts = sorted({p.query for p in train_pairs})
    tokenizer = build_tokenizer(texts, cfg.max_length)
    processor = build_image_processor(cfg.image_size)
    model = build_dual_encoder(
        len(tokenizer),
        image_size=cfg.image_size,
        patch_size=cfg.patch_size,
        hidden_size=cfg.hidden_size,
        layers=cfg.layers,
        heads=cfg.heads,
        projection_dim=cfg.projection_dim,
        max_length=cfg.max_length,
        pad_id=tokenizer.pad_token_id,
        bos_id=tokenizer.bos_token_id,
        eos_id=tokenizer.eos_token_id,
    )
    text_index = {t: i for i, t in enumerate(texts)}
    enc = tokenizer(texts, padding=True, truncation=True, max_length=cfg.max_length, return_tensors="pt")
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    steps_per_epoch = math.ceil(len(train_pairs) / cfg.batch_size)
    total = max(1, cfg.epochs * steps_per_epoch)
    warmup = max(1, total // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(1.0, s / total)))
    )

    state_path = out / "fit_state.pt"
    settings = {k: v for k, v in asdict(cfg).items()}
    settings.update(train=str(Path(train).resolve()), val=str(Path(val).resolve()) if val else None, texts=texts)
    history: list[float] = []
    start = 0
    state = read_fit_state(state_path, log)
    if state is not None and state.get("settings") == settings:
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        sched.load_state_dict(state["sched"])
        history, start = list(state["history"]), int(state["epoch"])
        rng.bit_generator.state = state["rng"]
        log(f"resuming from epoch {start} ({state_path})")

    model.train()
    for epoch in range(start, cfg.epochs):
        order = rng.permutation(len(train_pairs))
        losses = []
        bar = progress_bar(range(steps_per_epoch), desc=f"epoch {epoch + 1}/{cfg.epochs}", enabled=progress,
                           leave=False)
        for b in bar:
            batch = [train_pairs[i] for i in order[b * cfg.batch_size : (b + 1) * cfg.batch_size]]
            if len(batch) < 2:
                continue
            px = processor(images=_crops(batch, cfg.margin, cfg.jitter, rng), return_tensors="pt")["pixel_values"]
            labels = torch.tensor([text_index[p.query] for p in batch])
            uniq, inv = torch.unique(labels, return_inverse=True)
            img = torch.nn.functional.normalize(_feat(model.get_image_features(pixel_values=px)), dim=-1)
            txt = torch.nn.functional.normalize(
                _feat(model.get_text_features(input_ids=enc["input_ids"][uniq], attention_mask=enc["attention_mask"][uniq])),
                dim=-1,
            )
            loss = _contrastive_loss(img, txt[inv], labels, model.logit_scale.exp().clamp(max=100))
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            losses.append(loss.item())
            bar.set_postfix(loss=f"{losses[-1]:.3f}")
        history.append(float(np.mean(losses)) if losses else float("nan"))
        with atomic_path(state_path) as tmp:  # tensors and plain values only: it loads with weights_only=True
            torch.save({"settings": settings, "model": model.state_dict(), "opt": opt.state_dict(),
                        "sched": sched.state_dict(), "history": history, "epoch": epoch + 1,
                        "rng": rng.bit_generator.state}, tmp)
        log(f"epoch {epoch + 1}/{cfg.epochs}: loss {history[-1]:.4f}")

    model.eval()
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    processor.save_pretrained(out)
    encoder = HFEncoder(model, tokenizer, processor, name=str(out))
    held_metrics = retrieval_top1(encoder, held, margin=cfg.margin)
    report = {
        "train": str(train),
        "val": str(val) if val else f"{cfg.val_fraction:.0%} of train",
        "n_train": len(train_pairs),
        "n_heldout": len(held),
        "heldout_top1": held_metrics["top1"],
        "heldout_chance": held_metrics["chance"],
        "heldout_texts": held_metrics["n_texts"],
        "heldout_category_top1": held_metrics.get("category_top1"),
        "heldout_category_chance": held_metrics.get("category_chance"),
        "loss_per_epoch": history,
        "config": asdict(cfg),
    }
    atomic_json(report, out / "fit_report.json")
    state_path.unlink(missing_ok=True)
    return report


def read_fit_state(path: Path, log: Callable[[str], None] = lambda msg: None) -> dict | None:
    """The training state saved by :func:`fit` after an epoch, or None when there is none
    or it cannot be read.  It is loaded with ``torch.load(..., weights_only=True)``: tensors
    and plain values only, so a ``fit_state.pt`` someone else wrote (a pickle that would
    run code when loaded in full) is refused without running anything, reported through
    ``log`` and ignored (training starts from epoch 0 and replaces it)."""
    import pickle
    import zipfile

    if not path.exists():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        log(f"ignoring {path}: not a training state that loads safely ({reason[:200]}); starting from epoch 0")
        return None
    if not isinstance(state, dict) or not {"settings", "model", "opt", "sched", "history", "epoch", "rng"} <= set(state):
        log(f"ignoring {path}: not a training state written by this version; starting from epoch 0")
        return None
    return state


def _feat(out) -> torch.Tensor:
    return out if isinstance(out, torch.Tensor) else out.pooler_output


def evaluate(encoder_spec, data: str | os.PathLike, *, margin: float | None = None, progress: bool = False) -> dict:
    """Held-out crop→text retrieval top-1 of any encoder on a canonical dataset; the
    crop margin defaults to the one the encoder was trained with (else 0.0)."""
    from .encoders import load_encoder

    encoder = load_encoder(encoder_spec)
    if margin is None:
        margin = getattr(encoder, "crop_margin", None) or 0.0
    result = retrieval_top1(encoder, load_pairs(data, context=margin + 0.01, progress=progress), margin=margin)
    return {**result, "margin": margin}
