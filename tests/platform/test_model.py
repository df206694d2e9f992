import pytest

from scalelab.platform.model import GPT, GPTShape, count_parameters
from scalelab.record import flops_per_token, non_embedding_params


def hand_count(width, depth, context, vocab):
    per_layer = 3 * width * width + width * width + 2 * 4 * width * width + 2 * 2 * width  # qkv, proj, mlp, 2 LN
    n = depth * per_layer + 2 * width  # final LayerNorm
    return n, n + vocab * width + context * width


def test_parameter_counts_match_hand_computed_values():
    # width 64, depth 2: per layer 12*64^2 + 4*64 = 49,408; N = 2*49,408 + 128 = 98,944.
    shape = GPTShape(width=64, depth=2, heads=4, context=128, vocab_size=256)
    assert count_parameters(GPT(shape)) == (98_944, 98_944 + 256 * 64 + 128 * 64) == hand_count(64, 2, 128, 256)
    shape = GPTShape(width=96, depth=3, heads=6, context=64, vocab_size=50304)
    assert count_parameters(GPT(shape)) == hand_count(96, 3, 64, 50304)


@pytest.mark.parametrize("width, depth, heads", [(8, 1, 2), (12, 2, 2), (64, 2, 4), (96, 3, 6)])
def test_the_formula_for_n_counts_what_the_model_builds(width, depth, heads):
    # a scaling study sizes its models from the formula, before building any
    model = GPT(GPTShape(width=width, depth=depth, heads=heads, context=16, vocab_size=256))
    assert non_embedding_params(width, depth) == count_parameters(model)[0]


def test_init_std_sets_the_weights_scale():
    for std in (0.02, 0.1):
        model = GPT(GPTShape(width=256, depth=2, heads=4, context=16, vocab_size=256, init_std=std))
        assert model.blocks[0].qkv.weight.std().item() == pytest.approx(std, rel=0.02)
        assert model.blocks[0].proj.weight.std().item() == pytest.approx(std / 2, rel=0.05)  # / sqrt(2 depth)


def test_flops_per_token_is_six_n_plus_attention():
    shape = GPTShape(width=64, depth=2, heads=4, context=128, vocab_size=256)
    # 6 * 98,944 + 6 * 2 layers * 128 context * 64 width
    assert flops_per_token(98_944, shape.depth, shape.context, shape.width) == 593_664 + 98_304


def test_forward_shapes_and_causality():
    import torch

    model = GPT(GPTShape(width=16, depth=1, heads=2, context=8, vocab_size=32))
    x = torch.randint(0, 32, (2, 8))
    logits = model(x)
    assert logits.shape == (2, 8, 32)
    changed = x.clone()
    changed[:, -1] = (changed[:, -1] + 1) % 32
    # the last token must not influence earlier positions
    assert torch.allclose(model(changed)[:, :-1], logits[:, :-1])


# ------------------------------------------------------------------------------------------- µP
def _trained_coordinates(parametrization: str, width: int, steps: int = 5, lr: float = 1e-2) -> dict[str, float]:
    """RMS of each block's output and of the logits after `steps` Adam steps on fixed batches."""
    import torch

    torch.manual_seed(0)
    model = GPT(GPTShape(width, 2, 4, 32, 256, parametrization=parametrization, base_width=32))
    optimizer = torch.optim.AdamW([{**g, "lr": lr * g["lr_scale"]} for g in model.optimizer_groups(0.0)], lr=lr)
    batches = torch.randint(0, 256, (steps + 1, 16, 33), generator=torch.Generator().manual_seed(1))
    for batch in batches[:-1]:
        optimizer.zero_grad()
        model.loss(batch[:, :-1], batch[:, 1:]).backward()
        optimizer.step()
    sizes = {}
    for i, block in enumerate(model.blocks):
        block.register_forward_hook(lambda m, args, out, i=i: sizes.__setitem__(f"block {i}", out.pow(2).mean().sqrt().item()))
    with torch.no_grad():
        sizes["logits"] = model(batches[-1][:, :-1]).pow(2).mean().sqrt().item()
    return sizes


def test_coordinate_check_activations_keep_their_size_across_widths_under_mup_only():
    """Tensor Programs V's coordinate check: after a few Adam steps, each layer's activations
    grow with width under SP (the updates add up over the fan-in) and keep their size under µP.
    Measured here over widths 32-256: SP grows by 1.6-2.2 (blocks) and 0.6 (logits) doublings per
    doubling of width; µP changes by -0.15 to -0.28 (a finite-width effect that fades with width)."""
    import numpy as np

    widths = [32, 64, 128, 256]
    for parametrization, allowed in (("sp", lambda slope: slope > 0.5), ("mup", lambda slope: abs(slope) < 0.35)):
        rows = [_trained_coordinates(parametrization, w) for w in widths]
        for layer in rows[0]:
            slope = np.polyfit(np.log2(widths), np.log2([r[layer] for r in rows]), 1)[0]
            assert allowed(slope), (parametrization, layer, slope)


def test_mup_is_sp_at_the_base_width():
    import torch

    shapes = [GPTShape(48, 2, 4, 16, 64), GPTShape(48, 2, 4, 16, 64, parametrization="mup", base_width=48)]
    models = []
    for shape in shapes:
        torch.manual_seed(0)
        models.append(GPT(shape))
    x = torch.randint(0, 64, (4, 16))
    assert torch.equal(models[0](x), models[1](x))
    assert [g["lr_scale"] for g in models[1].optimizer_groups(0.1)] == [1.0, 1.0, 1.0]


def test_mup_scales_the_hidden_matrices_and_their_learning_rate_only():
    shape = GPTShape(256, 2, 4, 16, 256, init_std=0.1, parametrization="mup", base_width=64)  # m = 4
    model = GPT(shape)
    assert model.blocks[0].qkv.weight.std().item() == pytest.approx(0.1 / 2, rel=0.03)  # / sqrt(m)
    assert model.token_embedding.weight.std().item() == pytest.approx(0.1, rel=0.03)  # an input weight: as SP
    hidden, other, vectors = model.optimizer_groups(0.1)
    assert hidden["lr_scale"] == 0.25 and other["lr_scale"] == vectors["lr_scale"] == 1.0
    assert {id(p) for p in hidden["params"]} == {id(p) for _, p in model.hidden_matrices()}
    assert len(hidden["params"]) == 2 * 4 and vectors["weight_decay"] == 0.0
    assert shape.attention_scale == pytest.approx(16 ** 0.5 / 64)  # sqrt(d_base) / d_head, d_base = 64 / 4


@pytest.mark.parametrize("device, peak", [
    ("cuda (NVIDIA H100 80GB HBM3)", 989e12), ("cuda (NVIDIA H100 PCIe)", 756e12), ("cuda (NVIDIA L40S)", 362e12),
    ("cuda (NVIDIA L4)", 121e12), ("cuda (NVIDIA A100-SXM4-40GB)", 312e12), ("cpu", None),
    ("cuda (NVIDIA GeForce RTX 4090)", None),
])
def test_peak_flops_from_the_device_name(device, peak):
    from scalelab.platform.mfu import mfu, peak_flops

    assert peak_flops(device) == peak
    assert peak_flops(device, override=5e12) == 5e12
    assert mfu(1e6, 6e6, peak, devices=2) == (None if peak is None else pytest.approx(6e12 / (2 * peak)))
