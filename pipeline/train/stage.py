"""Stage train@R: one resolution of the progressive schedule, resumable, logged with dvclive.

Writes models/res<R>/ (checkpoint.pt with the whole training state, options.json, stats.json,
samples.png, curves.png: the logged curves drawn as a chart) or, for a resolution the schedule does
not train, models/res<R>/skipped.json. While it runs it keeps snapshots in models/snapshots/res<R>/ (a
DVC persist output), named by a hash of the options: a killed stage resumes from its newest snapshot on
the next `dvc repro`; a snapshot made with other options is ignored.
"""
from __future__ import annotations

import copy
import hashlib
import json
import logging
import os
import time
from dataclasses import asdict
from pathlib import Path

import torch
from tqdm import tqdm

from pipeline.core import killpoints
from pipeline.core.errors import UserError
from pipeline.core.files import save_image, staging_dir, write_json
from pipeline.core.params import ModelParams, TrainParams
from pipeline.gan.grids import grid, to_uint8, upscale
from pipeline.gan.networks import RESAMPLE_VERSION, count_params
from pipeline.train import checkpoint, curves
from pipeline.train.dataset import ImageSource, dataset_fingerprint, pack
from pipeline.train.live_log import LossLog
from pipeline.train.live_log import write_skipped as write_skipped_log
from pipeline.train.schedule import StagePlan, plan_record, stage_plan
from pipeline.train.trainer import Runtime, Trainer

log = logging.getLogger("train")

MAX_ROLLBACKS = 3
# Switches that change speed, not what is learned: a snapshot made without them resumes with them.
NOT_HASHED = ("device", "log_every", "snapshot_kimg", "nan_policy", "compile", "cuda_graphs", "fused_adam",
              "channels_last")
# Params that reach a stage only through its plan (pipeline.train.schedule.plan_record).
PLANNED = ("start_res", "final_res", "progressive", "scratch_kimg", "schedule")


def runtime(tp: TrainParams) -> Runtime:
    """The device, and torch.distributed when started by torchrun (WORLD_SIZE > 1)."""
    world, rank = int(os.environ.get("WORLD_SIZE", "1")), int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if tp.device == "cuda" and not torch.cuda.is_available():
        raise UserError("train.device is cuda but torch sees no GPU (set train.device: auto or cpu)")
    cuda = tp.device == "cuda" or (tp.device == "auto" and torch.cuda.is_available())
    device = torch.device(f"cuda:{local}" if cuda else "cpu")
    if cuda:
        torch.cuda.set_device(device)
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True
    precision = tp.precision
    if precision == "fp16" and not cuda:
        log.warning("train.precision fp16 needs CUDA; using fp32 on the CPU")
        precision = "fp32"
    if world > 1:
        import torch.distributed as dist
        if not dist.is_initialized():
            dist.init_process_group("nccl" if cuda else "gloo")
    return Runtime(device, precision, rank, world)


def options(plan: StagePlan, tp: TrainParams, mp: ModelParams, background, fingerprint: str,
            prev_digest: str, rt: Runtime) -> dict:
    """The resolved options of this stage (options.json), and the hash that keys its snapshots."""
    # what decides the plan is in the plan (train.final_res must not reach a stage it does not change)
    train = {k: v for k, v in asdict(tp).items() if k not in NOT_HASHED + PLANNED}
    opts = {"res": plan.res, "plan": plan_record(plan.res, tp), "train": train, "model": asdict(mp),
            "background": list(background), "dataset_fingerprint": fingerprint, "previous": prev_digest,
            "world": rt.world, "resample_version": RESAMPLE_VERSION}
    opts["options_hash"] = hashlib.sha1(json.dumps(opts, sort_keys=True).encode()).hexdigest()[:12]
    # after the hash (model.aspect is in it already, under "model"): square runs keep their snapshots
    opts["aspect"] = mp.aspect
    opts["runtime"] = {"device": str(rt.device), "precision": rt.precision, "torch": str(torch.__version__)}
    return opts


def write_skipped(out: Path, snap_dir: Path, live_dir: Path, plan: StagePlan) -> None:
    """models/res<R>/skipped.json, and the same record in the two persist folders: DVC warns on every
    run about a persist output that is an empty folder. Snapshots stay, to resume if R trains again."""
    record = {"res": plan.res, "trained": False, "reason": plan.reason}
    with staging_dir(out) as stage:
        write_json(stage / "skipped.json", record)
    write_json(snap_dir / "skipped.json", record)
    write_skipped_log(live_dir, record)
    log.info("train@%d: skipped (%s)", plan.res, plan.reason)


def samples(G, res: int, device, seeds=range(16)) -> torch.Tensor:
    z = torch.stack([torch.randn(G.z_dim, generator=torch.Generator().manual_seed(s)) for s in seeds])
    with torch.no_grad():
        return G(z.to(device), res, noise_mode="const")


def run(res: int, tp: TrainParams, mp: ModelParams, background=(255, 255, 255),
        models: Path = Path("models"), logs: Path = Path("logs"), data: Path = Path("data/dataset")) -> dict:
    if tp.dataset == "faces" and mp.aspect != 1:
        raise UserError("train.dataset faces needs model.aspect 1: face crops are square (model.aspect 2 is "
                        "for the full-body set, train.dataset fullbody)")
    plan = stage_plan(res, tp)
    out, snap_dir, live_dir = models / f"res{res}", models / "snapshots" / f"res{res}", logs / f"res{res}"
    snap_dir.mkdir(parents=True, exist_ok=True)   # declared persist outputs: they must exist, even
    live_dir.mkdir(parents=True, exist_ok=True)   # for a stage that does not train
    for tmp in snap_dir.glob(".snapshot-*.tmp"):  # a write that a kill cut short: never renamed, never used
        tmp.unlink(missing_ok=True)
    if not plan.train:
        write_skipped(out, snap_dir, live_dir, plan)
        return {"trained": False, "reason": plan.reason}
    (snap_dir / "skipped.json").unlink(missing_ok=True)
    rt = runtime(tp)
    folder = data / ("fullbody" if tp.dataset == "fullbody" else "faces")
    fingerprint = dataset_fingerprint(folder)
    prev_path = models / f"res{plan.grow_from}" / "checkpoint.pt" if plan.grow_from else None
    if prev_path is not None and not prev_path.exists():
        raise UserError(f"train@{res} grows from {prev_path}, which is missing: run train@{plan.grow_from} first")
    opts = options(plan, tp, mp, background, fingerprint,
                   checkpoint.digest_of(prev_path) if prev_path else "", rt)
    key = opts["options_hash"]
    trainer = Trainer(plan, tp, mp, rt)
    state = checkpoint.latest_snapshot(snap_dir, key, map_location=rt.device)
    if state is not None:
        trainer.load_state_dict(state, f"the snapshot of train@{res} in {snap_dir}")
    elif prev_path is not None:
        try:
            trainer.continue_from(checkpoint.load(prev_path, map_location=rt.device))
        except checkpoint.BadCheckpoint as e:
            raise UserError(f"{e}; re-run train@{plan.grow_from} (dvc repro -f -s train@{plan.grow_from})")
    total = int(round(plan.total_kimg * 1000))
    source = ImageSource(pack(folder, res, tp.fit, background, aspect=mp.aspect), rt.device)
    # One line on how the stage starts; after "resuming from <snapshot>" it must not claim a fresh start.
    if state is not None and trainer.images >= total:
        log.info("train@%d: that snapshot holds the finished training; writing its outputs without training "
                 "(to train again, delete %s)", res, snap_dir)
    else:
        how = plan.reason if state is None else f"resuming at {trainer.images} of {total} images"
        log.info("train@%d: %s, %d real image(s), %.2f+%.2f kimg, batch %d, lr %g, %s on %s%s", res, how,
                 len(source), plan.fade_kimg, plan.stable_kimg, plan.batch, plan.lr, mp.arch, rt.device,
                 f" x{rt.world}" if rt.world > 1 else "")
    live = LossLog(live_dir, resume_step=trainer.step_index if state is not None else None,
                   enabled=rt.rank == 0)
    try:
        _loop(trainer, source, plan, tp, live, snap_dir, key)
    except torch.cuda.OutOfMemoryError:
        raise UserError(f"out of GPU memory at {res}x{res // mp.aspect} with batch {plan.batch}: lower "
                        f"train.schedule.{res}.batch (or use train.precision: bf16)")
    finally:
        live.close()
    if rt.world > 1:
        _check_in_sync(trainer)
    if rt.rank != 0:
        return {"trained": True}
    final = trainer.state_dict()
    if not checkpoint.all_finite([final["G"], final["D"], final["G_ema"]]):
        raise UserError(f"train@{res}: the weights hold NaN/inf; not writing them (see train.nan_policy)")
    # The finished state stays in the persist folder until the next run of these options ends: DVC
    # deletes models/res<R> before it re-runs a stage that it saw fail, and a kill between here and the
    # process's exit is such a failure. The re-run then restores from this instead of training again.
    final_snapshot = checkpoint.snapshot_path(snap_dir, key, trainer.images)
    if not final_snapshot.exists():
        checkpoint.save(final_snapshot, final)
    stats = {"res": res, "images_seen": trainer.images, "total_images": trainer.prev_images + trainer.images,
             "train_seconds": round(trainer.train_seconds, 3),
             "total_train_seconds": round(trainer.prev_seconds + trainer.train_seconds, 3),
             "img_per_s": round(trainer.images / max(trainer.train_seconds, 1e-9), 3),
             "params_G": count_params(trainer.G, res), "params_D": count_params(trainer.D, res)}
    with staging_dir(out) as stage:
        final["options"] = opts
        checkpoint.save(stage / "checkpoint.pt", final)
        write_json(stage / "options.json", opts)
        write_json(stage / "stats.json", stats)
        save_image(stage / "samples.png", upscale(grid(to_uint8(samples(trainer.G_ema, res, rt.device)), 4, 4)))
        curves.write(live_dir, stage / "curves.png", f"train@{res}: {plan.reason}")
    checkpoint.prune_snapshots(snap_dir, key, keep=1)   # only the finished state, for a re-run after a kill
    log.info("train@%d: %d images in %.1f s (%.1f img/s); wrote %s", res, trainer.images,
             trainer.train_seconds, stats["img_per_s"], out)
    return {"trained": True, **stats}


def _check_in_sync(trainer: Trainer) -> None:
    """Every process must end with the same weights (gradients are averaged over all of them)."""
    import torch.distributed as dist

    total = torch.stack([p.detach().double().sum() for p in trainer.G.parameters()]).sum().view(1)
    found = [torch.zeros_like(total) for _ in range(trainer.rt.world)]
    dist.all_gather(found, total)
    if any(not torch.equal(f, found[0]) for f in found):
        raise UserError(f"train@{trainer.res}: the {trainer.rt.world} processes ended with different weights")
    log.info("train@%d: all %d processes hold the same weights", trainer.res, trainer.rt.world)


def _loop(trainer: Trainer, source, plan: StagePlan, tp: TrainParams, live, snap_dir: Path, key: str) -> None:
    total = int(round(plan.total_kimg * 1000))
    rank0 = trainer.rt.rank == 0
    start_state = None if trainer.step_index else copy.deepcopy(trainer.state_dict())
    bar = tqdm(total=total, initial=min(trainer.images, total), unit="img", desc=f"train@{plan.res}",
               disable=not rank0, mininterval=1.0, dynamic_ncols=True)
    pending, rollbacks = [], 0
    last_snapshot, tick = trainer.images, time.perf_counter()
    while trainer.images < total:
        pending.append(trainer.step(source))
        bar.update(min(trainer.batch * trainer.rt.world, total - bar.n))
        if trainer.step_index % tp.log_every and trainer.images < total:
            continue
        # The only host sync: every log_every steps, read the losses back (all at once).
        names = sorted({k for d in pending for k in d})
        means = {n: torch.stack([d[n].float() for d in pending if n in d]).mean() for n in names}
        values = dict(zip(names, torch.stack(list(means.values())).tolist()))
        pending.clear()
        now = time.perf_counter()
        trainer.train_seconds += now - tick
        tick = now
        if not all(checkpoint.is_finite_number(v) for v in values.values()):
            rollbacks += 1
            bad = ", ".join(f"{n}={v}" for n, v in values.items() if not checkpoint.is_finite_number(v))
            if tp.nan_policy == "stop" or rollbacks > MAX_ROLLBACKS:
                raise UserError(f"train@{plan.res}: {bad} at step {trainer.step_index}; lower "
                                f"train.schedule.{plan.res}.lr (or raise train.r1_gamma) and re-run")
            back = checkpoint.latest_snapshot(snap_dir, key, map_location=trainer.rt.device) or start_state
            if back is None:
                raise UserError(f"train@{plan.res}: {bad} at step {trainer.step_index} and nothing to roll back to")
            trainer.load_state_dict(back)
            trainer.lower_lr(0.5 ** rollbacks)
            live.rewind(trainer.step_index)
            bar.reset(total)
            bar.update(trainer.images)
            log.warning("train@%d: %s; rolled back to step %d with lr x%g", plan.res, bad,
                        trainer.step_index, trainer.lr_scale)
            continue
        values.update(alpha=trainer.alpha(), augment_p=trainer.augment.probability,
                      kimg=trainer.images / 1000, img_per_s=trainer.images / max(trainer.train_seconds, 1e-9))
        live.log(trainer.step_index, values)
        bar.set_postfix(G=f"{values['loss_G']:.3f}", D=f"{values['loss_D']:.3f}", a=f"{values['alpha']:.2f}")
        if rank0 and (trainer.images - last_snapshot >= tp.snapshot_kimg * 1000) and trainer.images < total:
            checkpoint.save(checkpoint.snapshot_path(snap_dir, key, trainer.images), trainer.state_dict())
            checkpoint.prune_snapshots(snap_dir, key)
            killpoints.reached("snapshot_written")
            last_snapshot = trainer.images
    bar.close()
