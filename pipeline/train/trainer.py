"""One resolution of progressive GAN training: the networks, their optimisers and one step.

The Trainer holds everything a run needs to continue bit for bit: G, D, G_ema, both Adam states, the
images seen, the fade-in, the augmentation state, the loss running means and every RNG. Its
`state_dict` is the checkpoint; `step` is one D update plus one G update, and on their intervals the lazy
regularisers' own updates (StyleGAN2's Dreg and Greg phases), done entirely on the device.

Fast path (TrainParams switches, measured by `python -m pipeline.bench train`): autocast (bf16, or fp16
with a grad scaler), channels_last, fused Adam, torch.compile of the main G and D passes (optionally as
CUDA graphs). R1 and path length need double backward, which torch.compile cannot trace: they run
eagerly on the same modules, every r1_interval / pl_interval steps. Nothing in `step` reads a tensor
back to the host, so the GPU is never waited for until the caller asks for the losses.
"""
from __future__ import annotations

import copy
import random
from dataclasses import dataclass

import torch

from pipeline.core import killpoints
from pipeline.core.errors import UserError
from pipeline.core.params import ModelParams, TrainParams
from pipeline.gan import losses
from pipeline.gan.augment import ADA_INTERVAL, Augment
from pipeline.gan.networks import MBSTD_GROUP, RESAMPLE_VERSION, build_networks, mix_ws
from pipeline.gan.precision import enable_fp16
from pipeline.train import checkpoint
from pipeline.train.schedule import StagePlan, fade_alpha


@dataclass
class Runtime:
    """Where and how the step runs."""
    device: torch.device
    precision: str = "fp32"         # fp32 | bf16 | fp16
    rank: int = 0
    world: int = 1                  # processes training together (torchrun)

    @property
    def autocast_dtype(self):
        return {"bf16": torch.bfloat16, "fp16": torch.float16}.get(self.precision)


def _all_reduce_grads(params, world: int) -> None:
    if world <= 1:
        return
    import torch.distributed as dist
    grads = [p.grad for p in params if p.grad is not None]
    if grads:
        flat = torch.cat([g.flatten() for g in grads])
        dist.all_reduce(flat)
        flat /= world
        offset = 0
        for g in grads:
            g.copy_(flat[offset:offset + g.numel()].view_as(g))
            offset += g.numel()


def _load_adam_by_name(opt: torch.optim.Optimizer, net: torch.nn.Module, old: dict, old_names: list[str]) -> None:
    """Adam state of a smaller network (the previous stage's) into `opt` over `net`, matched by parameter
    name; parameters the old network lacked get no state, so Adam starts them fresh."""
    index = {name: i for i, (name, _) in enumerate(net.named_parameters())}
    assert [id(p) for p in opt.param_groups[0]["params"]] == [id(p) for p in net.parameters()]
    moved = {index[old_names[i]]: s for i, s in old["state"].items()}
    opt.load_state_dict({"state": moved, "param_groups": opt.state_dict()["param_groups"]})


class Trainer:
    # What torch.compile hands the traced graphs to. Tests use "aot_eager": the same tracing and
    # autograd, without inductor's minute of C++ compilation on a CPU.
    compile_backend = "inductor"

    def __init__(self,
        plan: StagePlan,            # what this stage trains (resolution, fade, lengths, batch, lr)
        tp: TrainParams,            # train section of params.yaml
        mp: ModelParams,            # model section of params.yaml
        rt: Runtime,                # device, precision, distributed rank
    ):
        self.plan, self.tp, self.mp, self.rt = plan, tp, mp, rt
        self.res = plan.res
        self.batch = plan.batch // rt.world
        assert self.batch * rt.world == plan.batch, f"batch {plan.batch} does not split over {rt.world} processes"
        group = min(MBSTD_GROUP, self.batch)
        if self.batch % group:
            raise UserError(f"train.schedule.{plan.res}.batch {plan.batch} gives {self.batch} image(s) per process, "
                            f"which D's minibatch-stddev groups of {group} do not divide: use a multiple of {group}")
        self.r1_gamma = tp.gamma(plan.res, plan.batch, mp.aspect)
        torch.manual_seed(tp.seed)
        # This stage's own networks, up to its resolution: what it learns cannot depend on how far the
        # run will go (train.final_res), so raising final_res re-trains only the new resolutions.
        self.G, self.D = build_networks(mp, max_res=plan.res)
        self.memory_format = torch.channels_last if tp.channels_last else torch.contiguous_format
        self.G.to(rt.device, memory_format=self.memory_format)
        self.D.to(rt.device, memory_format=self.memory_format)
        # fp16: the top blocks only, clamped (NVlabs); bf16 autocasts everything (see _autocast)
        self.fp16_res = enable_fp16(self.G, self.D, tp.final_res) if rt.precision == "fp16" else []
        self.G_ema = copy.deepcopy(self.G).eval().requires_grad_(False)
        # Lazy regularisation (StyleGAN2): a regulariser run every k steps is scaled by k, and Adam's
        # lr and betas are adjusted by k/(k+1) so the effective dynamics match running it every step.
        self.c_g = tp.pl_interval / (tp.pl_interval + 1) if self._pl_on else 1.0
        self.c_d = tp.r1_interval / (tp.r1_interval + 1) if self.r1_gamma > 0 else 1.0
        # fused=None lets torch pick (foreach on CUDA); fused=True is one kernel per network.
        fused = True if tp.fused_adam else None
        self.opt_G = torch.optim.Adam(self.G.parameters(), lr=plan.lr * self.c_g,
                                      betas=(0.0, 0.99 ** self.c_g), eps=1e-8, fused=fused)
        self.opt_D = torch.optim.Adam(self.D.parameters(), lr=plan.lr * self.c_d,
                                      betas=(0.0, 0.99 ** self.c_d), eps=1e-8, fused=fused)
        self.augment = Augment(tp.augment, tp.augment_policy, tp.ada_target, tp.ada_kimg, rt.device)
        # fp16 needs loss scaling; bf16 has fp32's range and does not.
        fp16 = rt.precision == "fp16" and rt.device.type == "cuda"
        self.scaler_G = torch.amp.GradScaler("cuda", enabled=fp16)
        self.scaler_D = torch.amp.GradScaler("cuda", enabled=fp16)
        self.gen = torch.Generator(device=rt.device).manual_seed(tp.seed * 1_000_003 + plan.res + rt.rank)
        self.pl_mean = torch.zeros([], device=rt.device)
        self.images = 0             # images seen in this stage (all processes together)
        self.step_index = 0
        self.lr_scale = 1.0         # lowered after a NaN roll-back
        self.train_seconds = 0.0    # time spent training in this stage, over resumes
        self.prev_images = 0        # images seen by the stages before this one
        self.prev_seconds = 0.0
        self._set_trainable()
        self._synthesis, self._discriminate = self._main_passes()

    def _main_passes(self):
        """G.synthesis and D for the main losses: compiled when asked, else the modules themselves.

        The compiled versions share the modules' parameters (state_dict, EMA and the eager
        regularisers all see the same weights). Each is traced for the few cases the step uses
        (with or without grad, fading or not); a recompile budget of 8 covers them.
        """
        G, D = self.G, self.D
        if not self.tp.compile:
            return G.synthesis, D
        graphs = self.tp.cuda_graphs and self.rt.device.type == "cuda"
        options = dict(backend=self.compile_backend, mode="reduce-overhead" if graphs else None, dynamic=False)
        return torch.compile(G.synthesis, **options), torch.compile(D, **options)

    @property
    def _pl_on(self) -> bool:
        return self.mp.arch == "stylegan2" and self.tp.pl_weight > 0

    def _set_trainable(self) -> None:
        """freeze_lower: the layers of lower resolutions stay as the previous stage left them."""
        frozen_g, frozen_d = set(), set()
        if self.tp.freeze_lower and self.plan.grow_from:
            for r in self.G.resolutions:
                if r < self.res:
                    frozen_g |= {id(p) for p in self.G.params_at(r)}
                    frozen_d |= {id(p) for p in self.D.params_at(r)}
        self.g_params = [p for p in self.G.parameters() if id(p) not in frozen_g]
        self.d_params = [p for p in self.D.parameters() if id(p) not in frozen_d]
        for p in self.G.parameters():
            p.requires_grad_(id(p) not in frozen_g)
        for p in self.D.parameters():
            p.requires_grad_(id(p) not in frozen_d)

    # -- state ---------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        rng = {"torch": torch.get_rng_state(), "gen": self.gen.get_state(),
               "python": list(random.getstate()[1])}
        if self.rt.device.type == "cuda":
            rng["cuda"] = torch.cuda.get_rng_state(self.rt.device)
        return {"G": self.G.state_dict(), "D": self.D.state_dict(), "G_ema": self.G_ema.state_dict(),
                "opt_G": self.opt_G.state_dict(), "opt_D": self.opt_D.state_dict(),
                "augment": self.augment.state_dict(), "pl_mean": self.pl_mean.detach().cpu(),
                "images": self.images, "step": self.step_index, "alpha": self.alpha(),
                "lr_scale": self.lr_scale, "train_seconds": self.train_seconds,
                "prev_images": self.prev_images, "prev_seconds": self.prev_seconds,
                "res": self.res, "max_res": self.res, "rng": rng, "resample_version": RESAMPLE_VERSION,
                "aspect": self.mp.aspect,
                "param_names": {"G": [n for n, _ in self.G.named_parameters()],
                                "D": [n for n, _ in self.D.named_parameters()]}}

    def load_state_dict(self, state: dict, what: str = "that snapshot") -> None:
        """Continue a snapshot of this same stage exactly where it stopped (`what`: it, in errors)."""
        checkpoint.check_aspect(checkpoint.aspect_of(state), self.mp.aspect, what)
        self._load_learned(state)
        self.images, self.step_index = int(state["images"]), int(state["step"])
        self.lr_scale, self.train_seconds = float(state["lr_scale"]), float(state["train_seconds"])
        self.prev_images, self.prev_seconds = int(state["prev_images"]), float(state["prev_seconds"])
        self._set_lr()
        rng = state["rng"]
        torch.set_rng_state(rng["torch"])
        if "python" in rng:     # so a restored state saves byte for byte as it was saved
            random.setstate((3, tuple(rng["python"]), None))
        self.gen.set_state(rng["gen"].to(self.gen.device) if self.gen.device.type != "cpu" else rng["gen"])
        if "cuda" in rng and self.rt.device.type == "cuda":
            torch.cuda.set_rng_state(rng["cuda"], self.rt.device)
        if self.rt.rank:  # other ranks' streams were not saved: give each its own fresh one
            self.gen.manual_seed(self.tp.seed * 1_000_003 + self.res + self.rt.rank + 7919 * self.step_index)

    def continue_from(self, state: dict) -> None:
        """Start this stage from the previous resolution's final state (progressive growing).

        The previous stage's networks are this one's without the newest block: their weights and Adam's
        moments carry over by name; the new block (and its toRGB / fromRGB) starts fresh."""
        checkpoint.check_aspect(checkpoint.aspect_of(state), self.mp.aspect, f"models/res{state.get('res')}")
        self._check_resampling(state)
        names = state.get("param_names")
        if names is None or int(state.get("max_res", 0)) != int(state["res"]):
            raise UserError(f"models/res{state.get('res')} was trained before each stage had its own networks: "
                            f"train it again (dvc repro -f -s train@{state.get('res')}) before growing from it")
        new = (f"synthesis_net.blocks.{self.res}.", f"synthesis_net.torgb.{self.res}.",
               f"blocks.{self.res}.", f"fromrgb.{self.res}.")
        for net, key in ((self.G, "G"), (self.D, "D"), (self.G_ema, "G_ema")):
            missing, unexpected = net.load_state_dict(state[key], strict=False)
            fresh = [k for k in missing if not k.startswith(new)]
            assert not unexpected and not fresh, f"{key}: unexpected {unexpected}, missing {fresh}"
        _load_adam_by_name(self.opt_G, self.G, state["opt_G"], names["G"])
        _load_adam_by_name(self.opt_D, self.D, state["opt_D"], names["D"])
        self.augment.load_state_dict(state["augment"], self.rt.device)
        self.pl_mean = state["pl_mean"].to(self.rt.device)
        self.prev_images = int(state["prev_images"]) + int(state["images"])
        self.prev_seconds = float(state["prev_seconds"]) + float(state["train_seconds"])
        self._set_lr()

    def _check_resampling(self, state: dict) -> None:
        version = int(state.get("resample_version", 1))
        if self.mp.arch == "stylegan2" and version != RESAMPLE_VERSION:
            raise UserError(f"that stylegan2 state (res {state.get('res')}) resamples its images with version "
                            f"{version}, this code with version {RESAMPLE_VERSION} (the [1,3,3,1] filter): it "
                            f"cannot go on training here; train again from scratch (dvc repro -f), or draw "
                            f"from it with stages.generate, which keeps its own resampling")

    def _load_learned(self, state: dict) -> None:
        """What a resume takes over: networks, optimisers, augmentation, pl_mean."""
        self._check_resampling(state)
        self.G.load_state_dict(state["G"])
        self.D.load_state_dict(state["D"])
        self.G_ema.load_state_dict(state["G_ema"])
        self.opt_G.load_state_dict(state["opt_G"])
        self.opt_D.load_state_dict(state["opt_D"])
        self.augment.load_state_dict(state["augment"], self.rt.device)
        self.pl_mean = state["pl_mean"].to(self.rt.device)

    def _set_lr(self) -> None:
        for opt, c in ((self.opt_G, self.c_g), (self.opt_D, self.c_d)):
            for group in opt.param_groups:
                group["lr"] = self.plan.lr * self.lr_scale * c
                group["betas"] = (0.0, 0.99 ** c)

    def lower_lr(self, factor: float = 0.5) -> None:
        self.lr_scale *= factor
        self._set_lr()

    # -- one step ------------------------------------------------------------------------------
    def alpha(self) -> float:
        return fade_alpha(self.images, self.plan)

    def _autocast(self):
        """bf16 autocasts the whole passes; fp16 is switched on block by block inside the networks."""
        bf16 = self.rt.precision == "bf16"
        return torch.autocast(self.rt.device.type, dtype=torch.bfloat16, enabled=bf16)

    def _z(self, n: int) -> torch.Tensor:
        return torch.randn(n, self.mp.z_dim, generator=self.gen, device=self.rt.device)

    def make_ws(self, z: torch.Tensor, update_w_avg: bool = False) -> torch.Tensor:
        """ws for a batch, with style mixing: past a random layer, styles come from a second z."""
        G, n = self.G, z.shape[0]
        ws = G.mapping(z, update_w_avg_beta=0.995 if update_w_avg else None)
        if self.tp.style_mixing > 0:
            count = G.num_ws(self.res)
            cutoff = torch.randint(1, count, (), generator=self.gen, device=self.rt.device)
            mixing = torch.rand((), generator=self.gen, device=self.rt.device) < self.tp.style_mixing
            cutoff = torch.where(mixing, cutoff, torch.full_like(cutoff, count))
            ws = mix_ws(ws, G.mapping(self._z(n)), cutoff)
        return ws

    def reals(self, source) -> torch.Tensor:
        x = source.batch(self.batch, self.gen)
        a = self.alpha()
        if a < 1:  # blend reals the way G's output is blended while the new block fades in
            x = torch.lerp(self.G.upsample_image(self.D.downsample_image(x)), x, a)
        return x.contiguous(memory_format=self.memory_format)

    def step(self, source) -> dict[str, torch.Tensor]:
        """One D and one G update; returns detached losses (on the device)."""
        G, D, res = self.G, self.D, self.res
        a = self.alpha()
        # a device tensor while fading (one compiled graph for every value); torch.full is a fill
        # kernel, where torch.tensor would copy from the host
        alpha = 1.0 if a >= 1 else torch.full((), a, device=self.rt.device)
        synthesis, discriminate = self._synthesis, self._discriminate
        if self.tp.compile and self.tp.cuda_graphs and self.rt.device.type == "cuda":
            # a new round of graph replays: the previous step's graph outputs may be overwritten
            torch.compiler.cudagraph_mark_step_begin()
        out = {}
        # D: reals up, fakes down (+ R1 every r1_interval steps).
        G.requires_grad_(False)
        for p in self.d_params:
            p.requires_grad_(True)
        real = self.reals(source)
        with torch.no_grad(), self._autocast():
            fake = synthesis(self.make_ws(self._z(self.batch)), res, alpha)
        with self._autocast():
            real_logits = discriminate(self.augment(real, self.gen), res, alpha).float()
            fake_logits = discriminate(self.augment(fake.float(), self.gen), res, alpha).float()
            loss_d = losses.d_logistic(real_logits, fake_logits)
        self.augment.observe(real_logits)
        if (self.step_index + 1) % ADA_INTERVAL == 0:
            self.augment.adjust(self.plan.batch, self.rt.world)
        self._update(loss_d, self.d_params, self.opt_D, self.scaler_D)
        out["loss_D"], out["real_score"], out["fake_score"] = (
            loss_d.detach(), real_logits.detach().mean(), fake_logits.detach().mean())
        # Dreg (lazy R1, StyleGAN2): its own optimiser step every r1_interval steps, scaled by the interval.
        if self.r1_gamma > 0 and self.step_index % self.tp.r1_interval == 0:
            r1 = losses.r1_penalty(D, real, res, alpha, self.augment, self.gen)
            self._update(r1 * (self.r1_gamma / 2) * self.tp.r1_interval, self.d_params, self.opt_D, self.scaler_D)
            out["r1"] = r1.detach()
        killpoints.reached("mid_step")
        # G: fool D (+ path length every pl_interval steps, stylegan2).
        D.requires_grad_(False)
        for p in self.g_params:
            p.requires_grad_(True)
        with self._autocast():
            fake = synthesis(self.make_ws(self._z(self.batch), update_w_avg=True), res, alpha)
            fake_logits = discriminate(self.augment(fake.float(), self.gen), res, alpha).float()
            loss_g = losses.g_nonsaturating(fake_logits)
        self._update(loss_g, self.g_params, self.opt_G, self.scaler_G)
        out["loss_G"] = loss_g.detach()
        # Greg (lazy path length, stylegan2): its own optimiser step every pl_interval steps.
        if self._pl_on and self.step_index % self.tp.pl_interval == 0:
            n = max(1, self.batch // 2)      # NVlabs' pl_batch_shrink 2
            pl, self.pl_mean = losses.path_length_penalty(G, self._z(n), res, alpha, self.pl_mean, self.make_ws)
            self._update(pl * self.tp.pl_weight * self.tp.pl_interval, self.g_params, self.opt_G, self.scaler_G)
            out["pl"] = pl.detach()
        for p in self.d_params:
            p.requires_grad_(True)
        self._update_ema()
        self.images += self.batch * self.rt.world
        self.step_index += 1
        return out

    def _update(self, loss, params, opt, scaler) -> None:
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.unscale_(opt)
        _all_reduce_grads(params, self.rt.world)
        if not scaler.is_enabled():  # the fp16 scaler skips inf steps itself; elsewhere a stray inf
            for p in params:         # in one layer must not wreck Adam's moments
                if p.grad is not None:
                    torch.nan_to_num_(p.grad, nan=0.0, posinf=1e5, neginf=-1e5)
        scaler.step(opt)
        scaler.update()

    @torch.no_grad()
    def _update_ema(self) -> None:
        # Ramp-up (StyleGAN2-ADA): early on, average over at most ema_rampup x the images seen so far,
        # so a short run's G_ema is not dominated by its random start.
        full = self.tp.ema_half_life(self.plan.batch)
        half_life = min(full, (self.prev_images + self.images) * self.tp.ema_rampup) \
            if self.tp.ema_rampup > 0 else full
        beta = 0.5 ** (self.batch * self.rt.world / half_life) if half_life > 0 else 0.0
        ema, cur = list(self.G_ema.parameters()), list(self.G.parameters())
        torch._foreach_lerp_(ema, cur, 1.0 - beta)
        torch._foreach_copy_(list(self.G_ema.buffers()), list(self.G.buffers()))
