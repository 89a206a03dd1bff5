"""Training callbacks: greedy grounding evaluation on the validation split every N
steps (``val/miou``, ``val/acc@0.5`` logged beside TRL's metrics, so TensorBoard and
``trainer_state.json`` have them; with negatives or multi-target samples in the split also
``val/specificity``, ``val/f1_multi`` and ``val/sample_f1``), validation completions, and
the training plot.

The evaluation runs on every process (each takes a shard of the validation samples)
and gathers the IoUs, so it works under DDP, ZeRO and FSDP alike.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
from transformers import TrainerCallback

from ..data.schema import Sample
from ..evaluate.scoring import best_iou
from ..fileio import save_figure
from ..geometry import Frame
from ..metrics import match_boxes
from ..parsing import parse_completion

CURVES_PNG = "training_curves.png"
VAL_COMPLETIONS = "val_completions.jsonl"


def greedy_generate(model, processor, images, texts, *, max_new_tokens: int, synced_gpus: bool = False) -> list[str]:
    """Greedy completions for chat-formatted ``texts`` (one image each), left-padded."""
    import torch

    inputs = processor(text=texts, images=[[im] for im in images], padding=True, return_tensors="pt")  # per prompt
    device = next(model.parameters()).device
    inputs = inputs.to(device)
    tok = processor.tokenizer
    with torch.inference_mode():
        out = model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False,
                             temperature=None, top_p=None, top_k=None,
                             pad_token_id=tok.pad_token_id, synced_gpus=synced_gpus)
    new = out[:, inputs["input_ids"].shape[1]:]
    return processor.batch_decode(new, skip_special_tokens=True, clean_up_tokenization_spaces=False)


def evaluate_grounding(model, processor, frame: Frame, template, samples: list[Sample], *, batch_size: int = 16,
                       max_new_tokens: int = 256, iou_threshold: float = 0.5, synced_gpus: bool = False,
                       images: list | None = None) -> dict:
    """Greedy grounding metrics of ``model`` on ``samples``: ``{"miou", "acc", "n",
    "parsed", "records"}`` (fractions in [0, 1]; ``records`` has one dict per sample)."""
    from ..data.trl_dataset import _load_rgb, prompt_messages
    from ..predict import decode_answer

    records = []
    for start in range(0, len(samples), batch_size):
        chunk = samples[start:start + batch_size]
        imgs = images[start:start + batch_size] if images is not None else [_load_rgb(s) for s in chunk]
        sizes = [(s.width or im.width, s.height or im.height) for s, im in zip(chunk, imgs)]
        texts = [processor.apply_chat_template(prompt_messages(template, s, frame, size), tokenize=False,
                                               add_generation_prompt=True) for s, size in zip(chunk, sizes)]
        outs = greedy_generate(model, processor, imgs, texts, max_new_tokens=max_new_tokens, synced_gpus=synced_gpus)
        for s, size, text in zip(chunk, sizes, outs):
            boxes, _ = decode_answer(text, size, frame)
            iou = best_iou(boxes[0] if len(boxes) else None, s.boxes)
            record = {"id": s.id, "query": s.query, "category": s.category, "completion": text,
                      "pred_box": boxes[0] if boxes else None, "gt_box": s.boxes[0] if s.boxes else None,
                      "iou": iou}
            if s.boxes:
                record["set_f1"] = match_boxes(boxes, s.boxes).f1
            else:  # a negative: right only when answered "not in this image"
                record["empty"] = not boxes and parse_completion(text).empty
                record["set_f1"] = 1.0 if record["empty"] else 0.0
            if len(s.boxes) != 1:
                record["kind"] = "negative" if not s.boxes else "multi"
            records.append(record)
    return summarize(records, iou_threshold)


def summarize(records: list[dict], iou_threshold: float = 0.5) -> dict:
    """``miou`` / ``acc`` over the samples with a target (fractions), ``parsed`` over all; with
    negatives or multi-target samples among them also ``specificity`` (negatives answered
    with an explicit empty answer), ``f1_multi`` (mean set F1 of the multi-target samples)
    and ``sample_f1`` (every sample: the set F1, 1 for a correct negative)."""
    positive = [r for r in records if r.get("kind") != "negative"]
    ious = np.array([r["iou"] for r in positive], dtype=float)
    n = len(records)
    out = {
        "n": n,
        "miou": float(ious.mean()) if len(ious) else 0.0,
        "acc": float((ious > iou_threshold).mean()) if len(ious) else 0.0,
        "parsed": float(np.mean([r["pred_box"] is not None for r in records])) if n else 0.0,
        "records": records,
    }
    if any("kind" in r for r in records):
        neg = [r["empty"] for r in records if r.get("kind") == "negative"]
        multi = [r["set_f1"] for r in records if r.get("kind") == "multi"]
        out["specificity"] = float(np.mean(neg)) if neg else None
        out["f1_multi"] = float(np.mean(multi)) if multi else None
        out["sample_f1"] = float(np.mean([r["set_f1"] for r in records]))
    return out


class GroundingEvalCallback(TrainerCallback):
    """Evaluate greedy grounding on ``samples`` every ``every_steps`` optimizer steps
    (and before the first step), log ``val/miou`` and ``val/acc@{t}``, append the first
    completions to ``val_completions.jsonl`` and refresh the plot."""

    def __init__(self, samples: list[Sample], processor, frame: Frame, template, eval_cfg, output_dir):
        from ..data.trl_dataset import _load_rgb

        self.samples = list(samples)[: eval_cfg.max_samples] if eval_cfg.max_samples else list(samples)
        self.images = [_load_rgb(s) for s in self.samples]
        self.processor = processor
        self.frame = frame
        self.template = template
        self.cfg = eval_cfg
        self.output_dir = Path(output_dir)
        self.trainer = None
        self._done_steps: set[int] = set()

    def attach(self, trainer) -> GroundingEvalCallback:
        self.trainer = trainer
        return self

    def on_train_begin(self, args, state, control, **kwargs):
        if self.cfg.every_steps and state.global_step == 0:
            self.run(state.global_step)

    def on_step_end(self, args, state, control, **kwargs):
        every = self.cfg.every_steps
        last = state.max_steps and state.global_step >= state.max_steps
        if every and (state.global_step % every == 0 or last):
            self.run(state.global_step)

    def run(self, step: int) -> dict | None:
        if self.trainer is None or step in self._done_steps:
            return None
        self._done_steps.add(step)
        trainer = self.trainer
        acc = trainer.accelerator
        model = acc.unwrap_model(trainer.model)
        was_training = model.training
        model.eval()
        rank, world = acc.process_index, acc.num_processes
        shard = list(range(rank, len(self.samples), world))
        synced = world > 1 and (getattr(trainer, "is_deepspeed_enabled", False) or getattr(trainer, "is_fsdp_enabled", False))
        res = evaluate_grounding(model, self.processor, self.frame, self.template, [self.samples[i] for i in shard],
                                 images=[self.images[i] for i in shard], batch_size=self.cfg.batch_size,
                                 max_new_tokens=self.cfg.max_new_tokens, iou_threshold=self.cfg.iou_threshold,
                                 synced_gpus=synced)
        records = res["records"]
        if world > 1:
            from accelerate.utils import gather_object

            records = gather_object(records)
        summary = summarize(records, self.cfg.iou_threshold)
        t = self.cfg.iou_threshold
        metrics = {"val/miou": summary["miou"], f"val/acc@{t:g}": summary["acc"], "val/parsed": summary["parsed"]}
        for key in ("specificity", "f1_multi", "sample_f1"):
            if summary.get(key) is not None:
                metrics[f"val/{key}"] = summary[key]
        # logged while the model is in eval mode: TRL's trainers then add no training averages.
        # Trainer.log clears control.should_log; keep it, or this step's training log is lost.
        should_log = trainer.control.should_log
        trainer.log(metrics)
        trainer.control.should_log = should_log
        model.train(was_training)
        if acc.is_main_process:
            self._write_completions(step, records)
            if self.cfg.plot:
                write_training_plot(trainer.state.log_history, self.output_dir / CURVES_PNG)
        return summary

    def _write_completions(self, step: int, records: list[dict]) -> None:
        k = self.cfg.log_completions
        if not k:
            return
        self.output_dir.mkdir(parents=True, exist_ok=True)
        with open(self.output_dir / VAL_COMPLETIONS, "a", encoding="utf-8") as fh:
            for r in records[:k]:
                fh.write(json.dumps({"step": step, **r}, ensure_ascii=False) + "\n")


class PlotCallback(TrainerCallback):
    """Rewrite the training plot at the end of training (and every ``every`` logs)."""

    def __init__(self, output_dir, every_logs: int = 10):
        self.path = Path(output_dir) / CURVES_PNG
        self.every = every_logs
        self._n = 0

    def on_log(self, args, state, control, **kwargs):
        self._n += 1
        if state.is_world_process_zero and self.every and self._n % self.every == 0:
            write_training_plot(state.log_history, self.path)

    def on_train_end(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            write_training_plot(state.log_history, self.path)


def curves(log_history: list[dict]) -> dict[str, list[tuple[int, float]]]:
    """``{metric: [(step, value), ...]}`` for the plotted metrics of a log history:
    ``reward``, ``rewards/<name>/mean``, ``loss`` and every ``val/...``."""
    out: dict[str, list[tuple[int, float]]] = {}
    for h in log_history:
        step = h.get("step")
        if step is None:
            continue
        for k, v in h.items():
            keep = k in ("reward", "loss") or (k.startswith("rewards/") and k.endswith("/mean")) or k.startswith("val/")
            if keep and isinstance(v, (int, float)) and math.isfinite(v):
                out.setdefault(k, []).append((int(step), float(v)))
    return out


def write_training_plot(log_history: list[dict], path) -> Path | None:
    """Two panels (training signal: rewards or loss; validation metrics) over steps."""
    data = curves(log_history)
    if not data:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    train_keys = [k for k in data if k == "reward" or k.startswith("rewards/")] or [k for k in data if k == "loss"]
    val_keys = [k for k in data if k.startswith("val/") and k != "val/parsed"]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, keys, title in ((axes[0], train_keys, "training"), (axes[1], val_keys, "validation (greedy)")):
        for k in keys:
            xs, ys = zip(*data[k])
            ax.plot(xs, ys, marker="o" if len(xs) < 30 else None, ms=3, label=k)
        ax.set_xlabel("step")
        ax.set_title(title)
        ax.grid(alpha=0.3)
        if keys:
            ax.legend(fontsize=8)
    fig.tight_layout()
    return save_figure(fig, path, dpi=90)
