"""The training engine every task shares.

A task (see `Task`) says which networks and optimizers it has, how to make the batch of a step and
what one optimisation step does. The engine does the rest, the same way for every task:

- one CPU to many GPUs: under `torchrun` it joins the process group (NCCL on CUDA, gloo on CPU),
  wraps the networks in DistributedDataParallel and gives each rank its own data stream;
- mixed precision (`bf16` or `fp16` autocast, a GradScaler for fp16);
- checkpoints written atomically every N steps, holding networks, optimizers, schedulers, scalers,
  the step, the RNG state and the task's own state (`Task.state_dict`, e.g. an image pool), so
  `resume` continues exactly where the run stopped;
- progress (tqdm) with the losses, metrics as JSONL or CSV, a preview grid PNG every N steps;
- the final export through `models.weights.save()` with provenance;
- a clean stop on SIGINT (Ctrl-C) or SIGTERM: the run finishes its step, writes a checkpoint and
  exports the weights so far (a second signal aborts at once).

Batches are a pure function of (seed, step, rank), so a resumed run sees the same data as an
uninterrupted one; the only other randomness is torch's global RNG, which the checkpoint carries.
"""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import hashlib
import json
import logging
import math
import os
import signal
import tempfile
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn

from .. import weights
from .data import step_generator

log = logging.getLogger(__name__)

PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
CHECKPOINT_VERSION = 1


def cpu_has_native_bf16() -> bool:
    """Whether oneDNN has bf16 convolution kernels on this CPU (AVX512-BF16 / AMX); without them bf16 autocast
    on the CPU is much slower than fp32."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


@dataclass(frozen=True)
class Export:
    """What a task hands to `weights.save()` at the end of a run."""

    module: nn.Module
    arch: str
    config: Any
    task: str


@dataclass(frozen=True)
class RunOptions:
    """How to run (not what to learn: that is the task's own config)."""

    out: Path
    steps: int
    seed: int = 0
    checkpoint_every: int = 500
    preview_every: int = 500
    log_every: int = 10
    resume: bool = False
    precision: str = "fp32"
    device: str = "auto"
    metrics_format: str = "jsonl"
    decay_from: float = 1.0  # fraction of the run after which learning rates fall linearly to 0
    max_minutes: float | None = None  # stop early (and still export) after this much wall time
    stop_at: int | None = None  # stop early (and export) after this step; the schedule still spans `steps`
    progress: bool = True

    def __post_init__(self) -> None:
        if self.steps < 1:
            raise ValueError(f"steps must be >= 1, got {self.steps}")
        if min(self.checkpoint_every, self.preview_every, self.log_every) < 1:
            raise ValueError("checkpoint_every, preview_every and log_every must be >= 1")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {list(PRECISIONS)}, got {self.precision!r}")
        if self.metrics_format not in ("jsonl", "csv"):
            raise ValueError(f"metrics_format must be 'jsonl' or 'csv', got {self.metrics_format!r}")
        if not 0.0 <= self.decay_from <= 1.0:
            raise ValueError(f"decay_from must be in [0, 1], got {self.decay_from}")
        if Path(self.out).suffix != ".safetensors":
            raise ValueError(f"the output must be a .safetensors file, got {self.out}")

    def sibling(self, suffix: str) -> Path:
        """Files that belong to this run sit next to the output: model.ckpt.pt, model.metrics.jsonl ..."""
        out = Path(self.out)
        return out.with_name(out.name.removesuffix(".safetensors") + suffix)


@dataclass(frozen=True)
class StepReport:
    """What `Trainer.run`'s `on_step` observer sees after each step."""

    step: int
    steps: int  # the run's planned total
    losses: dict[str, float]
    preview: Path | None  # the preview grid written at this step, if one was


@dataclass
class StepContext:
    """What a task's `train_step` works with."""

    nets: dict[str, nn.Module]  # for training forwards: DistributedDataParallel-wrapped under torchrun
    plain: dict[str, nn.Module]  # the same modules unwrapped: for forwards that must not sync gradients
    optimizers: dict[str, torch.optim.Optimizer]
    scalers: dict[str, torch.amp.GradScaler]
    device: torch.device
    amp_dtype: torch.dtype | None
    step: int

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def optimize(self, loss: Tensor, name: str) -> None:
        """Zero the grads of optimizer `name`, backpropagate `loss` and step it (with AMP scaling)."""
        optimizer, scaler = self.optimizers[name], self.scalers[name]
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()

    @contextlib.contextmanager
    def frozen(self, name: str) -> Iterator[nn.Module]:
        """Use network `name` (unwrapped) without computing gradients for its parameters."""
        module = self.plain[name]
        flags = [p.requires_grad for p in module.parameters()]
        for p in module.parameters():
            p.requires_grad_(False)
        try:
            yield module
        finally:
            for p, flag in zip(module.parameters(), flags, strict=True):
                p.requires_grad_(flag)


class Task(ABC):
    """One trainable capability (inpaint, enhance, ...): its networks, data, step and export."""

    name: str = ""

    @abstractmethod
    def networks(self) -> dict[str, nn.Module]: ...

    @abstractmethod
    def optimizers(self, nets: dict[str, nn.Module]) -> dict[str, torch.optim.Optimizer]: ...

    @abstractmethod
    def make_batch(self, generator: torch.Generator) -> Any:
        """The batch of one step on one rank, drawn only from `generator`."""

    @abstractmethod
    def train_step(self, ctx: StepContext, batch: Any) -> dict[str, float]:
        """One optimisation step; returns the losses to log."""

    @abstractmethod
    def preview(self, nets: dict[str, nn.Module], batch: Any) -> Tensor:
        """Images [N,3,H,W] in [0,1] laid out as rows of a grid (nrow = `preview_columns`)."""

    @abstractmethod
    def export(self, nets: dict[str, nn.Module]) -> Export: ...

    preview_columns: int = 4

    def describe(self) -> dict[str, Any]:
        """Task settings and data facts for the provenance and the resume check."""
        return {}

    def state_dict(self) -> dict[str, Any]:
        """Training state the task keeps outside its networks (e.g. an image pool); checkpointed per rank.

        Tensors, numbers, strings and lists/dicts of them only (the checkpoint is read with weights_only).
        """
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:  # noqa: B027 (optional hook, no-op by default)
        """Restore what `state_dict` returned, on resume."""

    def extra_exports(self, nets: dict[str, nn.Module]) -> list[tuple[Path, Export]]:
        """Further files to write next to the main export (e.g. the second generator of a pair)."""
        return []


def start_from(module: nn.Module, path: str, arch: str, config: Any) -> nn.Module:
    """Fine-tuning (`--init`): `module` with the weights of the model file `path`, which must be an `arch` model
    with exactly `config` (the network this run builds)."""
    start = weights.load(path)
    if start.arch != arch or start.config != config:
        raise ValueError(f"--init {path}: a {start.arch!r} model with config {start.config}; this run builds "
                         f"{arch!r} with {config}")
    module.load_state_dict(start.module.state_dict())
    return module


def adam(params, lr: float, betas: tuple[float, float] = (0.5, 0.999)) -> torch.optim.Optimizer:
    """Adam as GAN papers use it; fused kernels where this torch has them (much faster on CPU)."""
    params = list(params)
    try:
        return torch.optim.Adam(params, lr=lr, betas=betas, fused=True)
    except (RuntimeError, TypeError):
        return torch.optim.Adam(params, lr=lr, betas=betas)


# ---------------------------------------------------------------------------------------------------


@dataclass
class _Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0


def _init_distributed(device_choice: str) -> tuple[_Dist, torch.device]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    cuda = torch.cuda.is_available() and device_choice in ("auto", "cuda")
    if device_choice == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("--device cuda was asked for, but this torch sees no CUDA device")
    if world > 1:
        info = _Dist(int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_RANK", "0")))
        if not dist.is_initialized():
            dist.init_process_group(backend="nccl" if cuda else "gloo")
    else:
        info = _Dist()
    if cuda:
        torch.cuda.set_device(info.local_rank)
        return info, torch.device("cuda", info.local_rank)
    return info, torch.device("cpu")


def leave_process_group() -> None:
    """Tear down the torchrun process group, if any, before the interpreter exits.

    Left to interpreter shutdown, gloo's worker threads can outlive their group and abort the process
    ("terminate called without an active exception") after a successful run.
    """
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def write_atomically(path: Path, write: Callable[[str], None]) -> None:
    """`write(temporary path)` next to `path`, then rename it over `path`: readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _atomic_torch_save(obj: Any, path: Path) -> None:
    write_atomically(path, lambda tmp: torch.save(obj, tmp))


def _digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _param_checksum(nets: dict[str, nn.Module]) -> Tensor:
    total = torch.zeros((), dtype=torch.float64)
    for name in sorted(nets):
        for i, t in enumerate(nets[name].state_dict().values()):
            if t.is_floating_point():
                total += (t.detach().double().cpu() * (1 + (i % 7) / 7)).sum()
    return total


@contextlib.contextmanager
def _stop_on_signals() -> Iterator[list[bool]]:
    """A flag set by the first SIGINT / SIGTERM (the second raises KeyboardInterrupt); only in the main thread,
    where signal handlers can be installed (a run inside a server thread is stopped by its own means)."""
    requested = [False]
    if threading.current_thread() is not threading.main_thread():
        yield requested
        return

    def handler(signum: int, frame: Any) -> None:
        if requested[0]:
            raise KeyboardInterrupt
        requested[0] = True
        log.warning("signal %d: stopping after this step, with a checkpoint and the weights so far (send it again "
                    "to abort)", signum)

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield requested
    finally:
        for s, old in previous.items():
            signal.signal(s, old)


class _Metrics:
    def __init__(self, path: Path, fmt: str, fresh: bool) -> None:
        self.path, self.fmt = path, fmt
        path.parent.mkdir(parents=True, exist_ok=True)
        if fresh and path.exists():
            path.unlink()

    def write(self, row: dict[str, Any]) -> None:
        with open(self.path, "a", newline="") as f:
            if self.fmt == "jsonl":
                f.write(json.dumps(row) + "\n")
                return
            writer = csv.DictWriter(f, fieldnames=list(row))
            if f.tell() == 0:
                writer.writeheader()
            writer.writerow(row)


class Trainer:
    """Runs a `Task` to completion with the engine features listed in the module docstring."""

    def __init__(self, task: Task, options: RunOptions) -> None:
        self.task, self.options = task, options
        self.dist, self.device = _init_distributed(options.device)
        self.amp_dtype = PRECISIONS[options.precision]
        if self.amp_dtype == torch.bfloat16 and self.device.type == "cpu" and not cpu_has_native_bf16():
            log.warning("--precision bf16 on a CPU without native bf16 kernels (capability %s): convolutions fall "
                        "back to slow reference code, often 10-30x slower than fp32; use --precision fp32 here",
                        torch.backends.cpu.get_cpu_capability())
        torch.manual_seed(options.seed)  # same initial weights on every rank
        self.plain = {k: v.to(self.device) for k, v in task.networks().items()}
        self.nets = dict(self.plain)
        if self.dist.world > 1:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.nets = {k: nn.parallel.DistributedDataParallel(v, device_ids=ids) for k, v in self.plain.items()}
        self.optimizers = task.optimizers(self.plain)
        total = options.steps
        start_decay = options.decay_from * total

        def factor(step: int) -> float:
            return 1.0 if step < start_decay else max(0.0, (total - step) / max(1.0, total - start_decay))

        self.schedulers = {k: torch.optim.lr_scheduler.LambdaLR(o, factor) for k, o in self.optimizers.items()}
        use_scaler = self.amp_dtype == torch.float16 and self.device.type == "cuda"
        self.scalers = {k: torch.amp.GradScaler(self.device.type, enabled=use_scaler) for k in self.optimizers}
        self.step = 0
        self.elapsed = 0.0
        self.identity = _digest({"task": task.name, "describe": task.describe(), "seed": options.seed,
                                 "world": self.dist.world, "steps": options.steps})

    # -- checkpoints ---------------------------------------------------------------------------------

    @property
    def checkpoint_path(self) -> Path:
        return self.options.sibling(".ckpt.pt")

    def save_checkpoint(self) -> None:
        rng = self._rng_states()  # collective: every rank takes part
        task_states = self._gather(self.task.state_dict())
        if self.dist.main:
            state = {
                "version": CHECKPOINT_VERSION,
                "identity": self.identity,
                "step": self.step,
                "elapsed": self.elapsed,
                "nets": {k: v.state_dict() for k, v in self.plain.items()},
                "optimizers": {k: v.state_dict() for k, v in self.optimizers.items()},
                "schedulers": {k: v.state_dict() for k, v in self.schedulers.items()},
                "scalers": {k: v.state_dict() for k, v in self.scalers.items()},
                "rng": rng,
                "task": task_states,
            }
            _atomic_torch_save(state, self.checkpoint_path)
        if self.dist.world > 1:
            dist.barrier()

    def _rng_states(self) -> list[dict[str, Tensor]]:
        """Every rank's RNG state (CPU, and CUDA where used), indexed by rank."""
        mine = {"torch": torch.get_rng_state()}
        if self.device.type == "cuda":
            mine["cuda"] = torch.cuda.get_rng_state(self.device)
        return self._gather(mine)

    def _gather(self, mine: Any) -> list[Any]:
        """Every rank's `mine`, indexed by rank (collective under torchrun)."""
        if self.dist.world == 1:
            return [mine]
        states: list[Any] = [None] * self.dist.world
        dist.all_gather_object(states, _to_device(mine, torch.device("cpu")))
        return states

    def load_checkpoint(self) -> None:
        path = self.checkpoint_path
        if not path.is_file():
            raise FileNotFoundError(f"--resume: no checkpoint at {path}; start without --resume")
        state = torch.load(path, map_location="cpu", weights_only=True)
        if state.get("version") != CHECKPOINT_VERSION:
            raise ValueError(f"{path}: checkpoint format {state.get('version')} is not {CHECKPOINT_VERSION}")
        if state["identity"] != self.identity:
            raise ValueError(
                f"{path}: the checkpoint belongs to a different run (task settings, seed, world size or step "
                "count differ); resume with the same arguments, or start a new run with another --out"
            )
        for k, module in self.plain.items():
            module.load_state_dict(state["nets"][k])
        for group in ("optimizers", "schedulers", "scalers"):
            for k, obj in getattr(self, group).items():
                obj.load_state_dict(state[group][k])
        if "task" in state:
            self.task.load_state_dict(_to_device(state["task"][self.dist.rank], self.device))
        mine = state["rng"][self.dist.rank]
        torch.set_rng_state(mine["torch"])
        if self.device.type == "cuda" and "cuda" in mine:
            torch.cuda.set_rng_state(mine["cuda"], self.device)
        self.step, self.elapsed = int(state["step"]), float(state["elapsed"])
        if self.dist.main:
            log.info("resumed from %s at step %d", path, self.step)

    # -- the loop ------------------------------------------------------------------------------------

    def sync_buffers(self) -> None:
        """Average floating buffers (BatchNorm running statistics) over the ranks.

        DDP keeps parameters identical, but each rank updates its running statistics on its own
        data; their mean is the better estimate, and it makes every rank's state identical.
        """
        if self.dist.world == 1:
            return
        for module in self.plain.values():
            for buffer in module.buffers():
                if buffer.is_floating_point():
                    dist.all_reduce(buffer, op=dist.ReduceOp.SUM)
                    buffer.div_(self.dist.world)

    def check_ranks_agree(self) -> None:
        """All ranks must hold identical weights and buffers; raise if they drifted apart."""
        if self.dist.world == 1:
            return
        self.sync_buffers()
        mine = _param_checksum(self.plain).to(self.device)
        sums = [torch.zeros_like(mine) for _ in range(self.dist.world)]
        dist.all_gather(sums, mine)
        values = [float(s) for s in sums]
        if max(values) - min(values) > 1e-9 * max(1.0, abs(values[0])):
            raise RuntimeError(f"ranks disagree at step {self.step}: parameter checksums {values}")
        if self.dist.main:
            log.info("step %d: all %d ranks agree (checksum %.10g)", self.step, self.dist.world, values[0])

    def run(self, on_step: Callable[[StepReport], bool] | None = None) -> Path | None:
        """Train to `steps` (or `max_minutes`), export, and return the output path (on rank 0).

        `on_step(report)` is called on rank 0 after every step; when it returns True the run stops as
        at `max_minutes` (or a signal, see the module doc): a checkpoint that resumes exactly, and the
        weights exported.
        """
        opts = self.options
        if opts.resume:
            self.load_checkpoint()
        metrics = _Metrics(opts.sibling(f".metrics.{opts.metrics_format}"), opts.metrics_format, fresh=not opts.resume)
        bar = None
        if self.dist.main and opts.progress:
            from tqdm import tqdm

            bar = tqdm(total=opts.steps, initial=self.step, desc=f"train {self.task.name}", dynamic_ncols=True)
        for module in self.plain.values():
            module.train()
        with _stop_on_signals() as stop_requested:
            self._loop(metrics, bar, on_step, stop_requested)
        if bar is not None:
            bar.close()
        return self.export()

    def _loop(self, metrics: _Metrics, bar: Any, on_step: Callable[[StepReport], bool] | None,
              stop_requested: list[bool]) -> None:
        opts = self.options
        started = time.perf_counter() - self.elapsed
        window_start, window_steps = time.perf_counter(), 0
        while self.step < opts.steps:
            step = self.step + 1
            batch = self.task.make_batch(step_generator(opts.seed, step, self.dist.rank))
            batch = _to_device(batch, self.device)
            ctx = StepContext(self.nets, self.plain, self.optimizers, self.scalers, self.device, self.amp_dtype, step)
            losses = self.task.train_step(ctx, batch)
            lrs = {f"lr_{k}": o.param_groups[0]["lr"] for k, o in self.optimizers.items()}
            for scheduler in self.schedulers.values():
                scheduler.step()
            self.step = step
            self.elapsed = time.perf_counter() - started
            window_steps += 1
            if bar is not None:
                bar.update(1)
                bar.set_postfix({k: f"{v:.4f}" for k, v in losses.items()}, refresh=False)
            if self.dist.main and (step % opts.log_every == 0 or step == opts.steps):
                rate = window_steps / max(1e-9, time.perf_counter() - window_start)
                window_start, window_steps = time.perf_counter(), 0
                metrics.write({"step": step, "time_s": round(self.elapsed, 3), "steps_per_s": round(rate, 4),
                               **{k: round(float(v), 6) for k, v in losses.items()}, **lrs})
            preview = None
            if self.dist.main and step % opts.preview_every == 0:
                preview = self.write_preview(batch)
            out_of_time = opts.max_minutes is not None and self.elapsed > opts.max_minutes * 60
            out_of_time = out_of_time or (opts.stop_at is not None and step >= opts.stop_at)
            if on_step is not None and self.dist.main:
                out_of_time = bool(on_step(StepReport(step, opts.steps, dict(losses), preview))) or out_of_time
            out_of_time = out_of_time or stop_requested[0]
            if self.dist.world > 1:
                flag = torch.tensor([float(out_of_time)], device=self.device)
                dist.all_reduce(flag, op=dist.ReduceOp.MAX)
                out_of_time = bool(flag.item())
            if step % opts.checkpoint_every == 0 or step == opts.steps or out_of_time:
                self.check_ranks_agree()
                self.save_checkpoint()
            if out_of_time:
                if self.dist.main:
                    log.info("stopping early at step %d of %d (--max-minutes / --stop-at / a stop request)", step,
                             opts.steps)
                break

    def write_preview(self, batch: Any) -> Path:
        from torchvision.utils import save_image

        was_training = {k: m.training for k, m in self.plain.items()}
        for m in self.plain.values():
            m.eval()
        with torch.no_grad():
            grid = self.task.preview(self.plain, batch).float().clamp(0, 1).cpu()
        for k, m in self.plain.items():
            m.train(was_training[k])
        path = self.options.sibling(".previews") / f"step_{self.step:07d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        save_image(grid, path, nrow=self.task.preview_columns, padding=2)
        return path

    def export(self) -> Path | None:
        if not self.dist.main:
            if self.dist.world > 1:
                dist.barrier()
            return None
        spec = self.task.export(self.plain)
        spec.module.eval()
        provenance = {
            "made_by": "python -m nodes.train " + self.task.name,
            "task_settings": self.task.describe(),
            "steps": self.step,
            "steps_planned": self.options.steps,
            "seed": self.options.seed,
            "world_size": self.dist.world,
            "device": self.device.type,
            "precision": self.options.precision,
            "wall_seconds": round(self.elapsed, 1),
            "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "torch": torch.__version__,
            "run_options": {k: v for k, v in asdict(self.options).items() if k not in ("out", "progress")},
        }
        path = weights.save(spec.module.cpu(), self.options.out, spec.arch, spec.config, spec.task, provenance)
        spec.module.to(self.device)
        log.info("wrote %s (%d steps, %.1f s)", path, self.step, self.elapsed)
        for extra_path, extra in self.task.extra_exports(self.plain):
            extra.module.eval()
            weights.save(extra.module.cpu(), extra_path, extra.arch, extra.config, extra.task, provenance)
            extra.module.to(self.device)
            log.info("wrote %s", extra_path)
        if self.dist.world > 1:
            dist.barrier()
        return path


def _to_device(batch: Any, device: torch.device) -> Any:
    if isinstance(batch, Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, dict):
        return {k: _to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(_to_device(v, device) for v in batch)
    return batch


def finite_or_raise(losses: dict[str, float], step: int) -> dict[str, float]:
    """Stop a diverged run with a clear message instead of training on NaNs."""
    bad = {k: v for k, v in losses.items() if not math.isfinite(v)}
    if bad:
        raise FloatingPointError(f"step {step}: non-finite losses {bad}; lower the learning rate or use fp32")
    return losses

