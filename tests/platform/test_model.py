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
