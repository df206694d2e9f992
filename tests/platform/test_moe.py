"""The mixture-of-experts option (platform/moe.py): dense unchanged, counts by hand, the
balance loss balancing, one expert being the dense MLP, and the record's MoE fields."""
import pytest
import torch

from scalelab.analysis.table import load_table
from scalelab.platform.errors import ConfigError
from scalelab.platform.model import GPT, GPTShape, count_parameters
from scalelab.platform.moe import MoE, MoEShape
from scalelab.platform.setup import set_up_run
from scalelab.platform.train import train
from scalelab.record import MOE_METRICS, MOE_SCALE, flops_per_token, non_embedding_params, read

MOE = ["model.moe.experts=4", "model.moe.top_k=2", "model.moe.expert_width=16", "model.moe.shared_expert=true",
       "model.moe.z_coef=0.001"]


def _state(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_a_dense_config_builds_the_pre_moe_model_from_the_same_random_numbers(make_cfg):
    setup = set_up_run(make_cfg())  # the moe keys at their defaults
    assert setup.model.shape.moe is None and setup.model.moe_layers == []
    after_setup = torch.rand(4)
    torch.manual_seed(0)  # set_up_run seeds with train.seed=0
    plain = GPT(GPTShape(16, 1, 2, 32, 256))
    assert torch.equal(torch.rand(4), after_setup)  # the RNG consumed identically
    assert list(setup.model.state_dict()) == [
        "token_embedding.weight", "position_embedding.weight", "blocks.0.ln_attn.weight", "blocks.0.ln_attn.bias",
        "blocks.0.qkv.weight", "blocks.0.proj.weight", "blocks.0.ln_mlp.weight", "blocks.0.ln_mlp.bias",
        "blocks.0.mlp.0.weight", "blocks.0.mlp.2.weight", "ln_final.weight", "ln_final.bias"]
    for (name, a), (_, b) in zip(setup.model.state_dict().items(), plain.state_dict().items()):
        assert torch.equal(a, b), name
    x = torch.randint(0, 256, (2, 32))
    assert torch.equal(setup.model(x), plain(x))
    assert set(setup.scale("gpt_s")) == {"N", "N_total", "D", "C", "flops_per_token", "model"}


def test_a_dense_run_ignores_the_unused_moe_keys_to_the_bit(make_cfg, tmp_path):
    # (checked once against the code before the MoE option: the same final loss, 3.4093682765960693)
    default = train(make_cfg(), run_dir=tmp_path / "default")
    unused = train(make_cfg("model.moe.top_k=3", "model.moe.expert_width=8", "model.moe.shared_expert=true",
                            "model.moe.balance_coef=1", "model.moe.z_coef=1"), run_dir=tmp_path / "unused")
    assert default == unused
    a, b = read(tmp_path / "default"), read(tmp_path / "unused")
    assert a["curve"] == b["curve"] and a["scale"] == b["scale"]
    assert not set(MOE_METRICS) & set(a["metrics"]) and not set(MOE_SCALE) & set(a["scale"])


def test_parameter_and_flop_counts_match_hand_computed_values():
    # width 16, depth 2, 4 experts 32 wide, top 2, a shared expert: per block attention 4*16^2 = 1,024,
    # two LayerNorms 64, router 16*4 = 64, each expert (and the shared one) 2*16*32 = 1,024.
    moe = MoEShape(experts=4, top_k=2, expert_width=32, shared_expert=True)
    model = GPT(GPTShape(16, 2, 2, 8, 40, moe=moe))
    total_block = 1024 + 64 + 64 + 4 * 1024 + 1024  # 6,272
    active_block = 1024 + 64 + 64 + 2 * 1024 + 1024  # 4,224
    n_active, n_total = 2 * active_block + 32, 2 * total_block + 32 + 40 * 16 + 8 * 16  # final LayerNorm, embeddings
    assert (n_active, n_total) == (8_480, 13_344)
    assert count_parameters(model) == (n_active, n_total)
    assert non_embedding_params(16, 2, experts=4, top_k=2, expert_width=32, shared_expert=True) == 8_480
    assert non_embedding_params(16, 2, experts=4, top_k=2, expert_width=32, shared_expert=True, active=False) == 12_576
    assert moe.sparsity == 0.5
    # 6 x active N (the router's matmul included) + 6 x depth x context x width
    assert flops_per_token(n_active, 2, 8, 16) == 6 * 8_480 + 6 * 2 * 8 * 16 == 52_416
    # no shared expert, the default expert width (4 x 16 = 64): experts 2*16*64 = 2,048 each
    model = GPT(GPTShape(16, 1, 2, 8, 40, moe=MoEShape(experts=8, top_k=1)))
    assert count_parameters(model)[0] == 1024 + 64 + 16 * 8 + 2048 + 32 == non_embedding_params(16, 1, experts=8)


def test_the_balance_loss_pushes_an_unbalanced_router_toward_balance():
    torch.manual_seed(0)
    layer = MoE(16, 4, MoEShape(experts=4, top_k=1, expert_width=8, balance_coef=1.0))
    x = torch.randn(512, 16) + 1.0
    with torch.no_grad():  # a random router, biased toward expert 0: it gets 87% of the tokens
        layer.router.weight.normal_(std=0.3)
        layer.router.weight[0] += 0.3
    layer(x)
    before = layer.stats["load"].max().item()
    assert before > 0.8
    optimizer = torch.optim.Adam(layer.router.parameters(), lr=0.01)
    for _ in range(40):
        optimizer.zero_grad()
        layer(x)
        layer.aux_loss.backward()  # the balance loss alone
        optimizer.step()
    layer(x)
    assert layer.stats["load"].max().item() < 0.4  # 0.25 is balanced
    assert layer.stats["load"].min().item() > 0.1


def test_one_expert_with_the_dense_width_is_the_dense_model():
    torch.manual_seed(0)
    dense = GPT(GPTShape(32, 2, 4, 16, 64))
    moe = GPT(GPTShape(32, 2, 4, 16, 64, moe=MoEShape(experts=1, top_k=1, expert_width=128)))
    weights = _state(dense)
    for i in range(2):
        weights[f"blocks.{i}.mlp.w_in"] = weights.pop(f"blocks.{i}.mlp.0.weight")[None]
        weights[f"blocks.{i}.mlp.w_out"] = weights.pop(f"blocks.{i}.mlp.2.weight")[None]
        weights[f"blocks.{i}.mlp.router.weight"] = moe.state_dict()[f"blocks.{i}.mlp.router.weight"]
    moe.load_state_dict(weights)
    x = torch.randint(0, 64, (3, 16))
    torch.testing.assert_close(moe(x), dense(x), rtol=0, atol=1e-6)
    # one expert takes every token with gate exactly 1: balanced by definition
    metrics = moe.router_metrics()
    assert (metrics["moe_balance_loss"], metrics["moe_load_min"], metrics["moe_load_max"]) == (1.0, 1.0, 1.0)


def test_an_moe_run_records_its_scale_and_router_metrics(make_cfg, tmp_path):
    final = train(make_cfg(*MOE, "logger=csv"), run_dir=tmp_path)
    r = read(tmp_path)
    assert r["status"] == "completed" and final < r["metrics"]["initial_loss"] - 1.0
    s, m = r["scale"], r["metrics"]
    n_active = non_embedding_params(16, 1, experts=4, top_k=2, expert_width=16, shared_expert=True)
    assert s["N"] == s["N_active"] == n_active and s["sparsity"] == 0.5
    assert s["N_total"] == non_embedding_params(16, 1, experts=4, expert_width=16, shared_expert=True, active=False) \
        + 256 * 16 + 32 * 16
    assert s["flops_per_token"] == flops_per_token(n_active, 1, 32, 16) and s["C"] == s["flops_per_token"] * s["D"]
    assert set(MOE_METRICS) <= set(m) and m["moe_balance_loss"] >= 1.0 and m["moe_z_loss"] > 0
    assert 0 <= m["moe_load_min"] <= 0.25 <= m["moe_load_max"] <= 1
    logged = (tmp_path / "csv" / "metrics.csv").read_text().splitlines()[0].split(",")
    assert set(MOE_METRICS) <= set(logged)
    row = load_table(tmp_path, quiet=True).iloc[0]  # the analysis reads the sparsity axis
    assert (row["N_active"], row["sparsity"], row["experts"], row["top_k"]) == (n_active, 0.5, 4, 2)


@pytest.mark.parametrize("overrides, message", [
    (["model.moe.experts=2", "model.moe.top_k=3"], "model.moe.top_k=3 must be at most model.moe.experts=2"),
    (["model.moe.experts=2", "model.moe.expert_width=0"], "model.moe.expert_width=0 must be >= 1"),
    (["model.moe.experts=-1"], "model.moe.experts=-1 must be >= 0 (0 is the dense model)"),
    (["model.moe.experts=2", "model.moe.balance_coef=-0.1"], "model.moe.balance_coef=-0.1 must be >= 0"),
])
def test_bad_moe_settings_are_refused_in_one_line_before_training(make_cfg, overrides, message):
    with pytest.raises(ConfigError) as e:
        set_up_run(make_cfg(*overrides))
    assert message in str(e.value) and "\n" not in str(e.value)
