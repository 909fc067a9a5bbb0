"""Mixed precision as NVlabs run StyleGAN2-ADA: fp16 only where it pays, and kept in range there.

With `train.precision: fp16`, the blocks (and their toRGB / fromRGB) of the 4 highest resolutions of
the final network run under fp16 autocast, never below 8x8; the rest run in fp32. In those blocks every
layer's activations are clamped to +-FP16_CLAMP (fp16 overflows at 65504, and a few outliers there
would turn a step into inf), and the modulated convolutions normalise their weights and styles to a
largest magnitude of 1 before the fp16 product (demodulation cancels the scale, so the maths is the
same). bf16 needs none of this (fp32's range) and autocasts the whole network as before.
"""
from __future__ import annotations

import contextlib
from itertools import chain

import torch

from pipeline.gan.layers import ModulatedConv2d

FP16_RES_COUNT = 4          # resolutions in fp16, counted down from the final one (NVlabs num_fp16_res)
FP16_LOWEST = 8             # never below this (NVlabs)
FP16_CLAMP = 256.0          # activation clamp in fp16 layers (NVlabs conv_clamp)


def fp16_resolutions(final_res: int, count: int = FP16_RES_COUNT) -> list[int]:
    """The block resolutions that run in fp16 for a network of side `final_res`."""
    lowest = max(final_res >> (count - 1), FP16_LOWEST)
    return [r for r in (2 ** i for i in range(2, final_res.bit_length())) if lowest <= r <= final_res]


def enable_fp16(G, D, final_res: int) -> list[int]:
    """Put G's synthesis and D on the fp16 policy (in place); returns the fp16 resolutions."""
    chosen = [r for r in fp16_resolutions(final_res) if str(r) in D.blocks]
    for net, rgb in ((G.synthesis_net, G.synthesis_net.torgb), (D, D.fromrgb)):
        net.fp16_res = set(chosen)
        for r in chosen:
            for name, m in chain(net.blocks[str(r)].named_modules(), rgb[str(r)].named_modules()):
                # The residual D block's 1x1 shortcut is left unclamped, as in NVlabs (its skip layer has
                # no conv_clamp): the sum with the main path is scaled by 1/sqrt(2) and stays in range.
                if hasattr(m, "clamp") and name.rsplit(".", 1)[-1] != "skip":
                    m.clamp = FP16_CLAMP
                if isinstance(m, ModulatedConv2d):
                    m.fp16 = True
    return chosen


def block_precision(fp16_res: set[int], res: int, x: torch.Tensor | None, device_type: str):
    """(context, x) to run the block of `res` in: fp16 autocast for an fp16 block, fp32 (autocast off,
    x cast up) for the others of an fp16 network, and no change where the policy is off."""
    if not fp16_res:
        return contextlib.nullcontext(), x
    if res in fp16_res:
        return torch.autocast(device_type, dtype=torch.float16), x
    return torch.autocast(device_type, enabled=False), (x.float() if x is not None else None)
