"""The fp16 policy of NVlabs on a CPU: which blocks run in fp16, the clamp, the modulated-conv scaling.
(fp16 training itself needs CUDA; CPU autocast runs the same fp16 convolutions, slowly.)"""
import pytest
import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode

from pipeline.core import params
from pipeline.gan.layers import ModulatedConv2d
from pipeline.gan.networks import build_networks
from pipeline.gan.precision import FP16_CLAMP, enable_fp16, fp16_resolutions
from tests.helpers.tiny import TINY_MODEL


class ConvDtypes(TorchDispatchMode):
    """Records (input side, dtype) of every convolution as autocast hands it to the kernels."""

    def __init__(self):
        super().__init__()
        self.seen = set()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func is torch.ops.aten.convolution.default:
            self.seen.add((args[0].shape[-1], args[0].dtype))
        return func(*args, **(kwargs or {}))


def test_the_four_highest_resolutions_never_below_8():
    assert fp16_resolutions(256) == [32, 64, 128, 256]
    assert fp16_resolutions(64) == [8, 16, 32, 64]
    assert fp16_resolutions(32) == [8, 16, 32]
    assert fp16_resolutions(8) == [8]


def autocast_of_each_conv(G, D, z, res):
    """{module name: whether it ran under fp16 autocast} for every convolution module of G and D."""
    seen = {}
    for net, prefix in ((G, "G"), (D, "D")):
        for name, m in net.named_modules():
            if type(m).__name__ in ("EqualConv2d", "ModulatedConv2d", "Blur"):
                m.register_forward_pre_hook(lambda m, i, name=f"{prefix}.{name}": seen.__setitem__(
                    name, torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == torch.float16))
    with ConvDtypes() as mode:
        img = G(z, res)
        logits = D(img, res)
    assert img.dtype == logits.dtype == torch.float32
    return seen, {dtype for _, dtype in mode.seen}


@pytest.mark.parametrize("arch", ["stylegan", "stylegan2"])
def test_convolutions_run_in_fp16_only_in_the_top_blocks(arch):
    mp = params.parse("model", {**TINY_MODEL, "arch": arch})
    G, D = build_networks(mp, max_res=128)
    assert enable_fp16(G, D, 128) == [16, 32, 64, 128]
    z = torch.randn(2, mp.z_dim, generator=torch.Generator().manual_seed(0))
    seen, dtypes = autocast_of_each_conv(G, D, z, 128)
    assert dtypes == {torch.float16, torch.float32}
    for name, fp16 in seen.items():
        res = int(next(part for part in name.split(".") if part.isdigit()))  # blocks.<res>, torgb.<res>, ...
        assert fp16 == (res >= 16), name
    assert any(fp16 for fp16 in seen.values()) and not all(seen.values())
    # the policy off: fp32 everywhere
    seen, dtypes = autocast_of_each_conv(*build_networks(mp, max_res=128), z, 128)
    assert dtypes == {torch.float32} and not any(seen.values())


def test_fp16_layers_clamp_their_activations_at_256():
    mp = params.parse("model", TINY_MODEL)
    G, D = build_networks(mp, max_res=16)
    with torch.no_grad():
        D.fromrgb["16"].weight.mul_(1e4)                            # activations far beyond 256
    outs = {}
    D.fromrgb["16"].register_forward_hook(lambda m, i, o: outs.__setitem__("fromrgb", o))
    img = torch.rand(2, 3, 16, 16) * 2 - 1
    D(img, 16)
    assert outs["fromrgb"].abs().max() > 10 * FP16_CLAMP            # no clamp without the policy
    enable_fp16(G, D, 16)
    D(img, 16)
    assert outs["fromrgb"].abs().max() <= FP16_CLAMP


def test_modulated_conv_scaling_for_fp16_changes_nothing_but_the_range():
    torch.manual_seed(0)
    conv = ModulatedConv2d(8, 6, 3, w_dim=5)
    x, w = torch.randn(3, 8, 7, 7, dtype=torch.float64), torch.randn(3, 5, dtype=torch.float64)
    conv.double()
    plain = conv(x, w)
    conv.fp16 = True
    scaled = conv(x, w)
    # the direct computation: one modulated, demodulated kernel per sample (the paper's equations 1-3)
    styles = conv.affine(w)
    weight = conv.weight * conv.weight_gain
    expected = []
    for i in range(3):
        wi = weight * styles[i].view(1, -1, 1, 1)
        wi = wi / torch.sqrt(wi.square().sum(dim=[1, 2, 3], keepdim=True) + 1e-8)
        expected.append(F.conv2d(x[i:i + 1], wi, padding=1))
    expected = torch.cat(expected)
    assert torch.allclose(plain, expected, atol=1e-6)
    assert torch.allclose(scaled, expected, atol=1e-6)


def test_the_residual_shortcut_of_d_is_not_clamped_as_in_nvlabs():
    """stylegan2's D blocks: conv layers get the clamp, the 1x1 skip (NVlabs: no conv_clamp) does not."""
    mp = params.parse("model", {**TINY_MODEL, "arch": "stylegan2"})
    G, D = build_networks(mp, max_res=16)
    enable_fp16(G, D, 16)
    block = D.blocks["16"]
    clamps = {name: m.clamp for name, m in block.named_modules() if hasattr(m, "clamp")}
    assert clamps["skip"] is None, clamps
    assert sum(v == FP16_CLAMP for v in clamps.values()) >= 2, clamps
