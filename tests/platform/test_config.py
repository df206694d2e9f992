import pytest
from hydra.errors import ConfigCompositionException

from pathlib import Path

from scalelab.conf import __file__ as conf_init
from scalelab.record import non_embedding_params

GROUPS = {g.name: sorted(p.stem for p in g.glob("*.yaml")) for g in Path(conf_init).parent.iterdir() if g.is_dir()
          and not g.name.startswith("__")}


def test_groups_are_the_documented_ones():
    assert set(GROUPS) == {"model", "data", "optim", "schedule", "train", "trainer", "logger"}
    assert GROUPS["model"] == ["gpt_100m", "gpt_10m", "gpt_25m", "gpt_50m", "gpt_l", "gpt_m", "gpt_s", "gpt_xs"]
    assert GROUPS["schedule"] == ["constant", "cosine", "wsd"]


@pytest.mark.parametrize("group,option", [(g, o) for g, opts in GROUPS.items() for o in opts])
def test_every_group_option_composes(make_cfg, group, option):
    extra = ["data.train_path=a.bin", "data.val_path=b.bin"] if (group, option) == ("data", "tokens") else []
    cfg = make_cfg(f"{group}={option}", *extra)
    assert cfg[group] is not None
    if group == "model":
        assert cfg.model.name == option


def test_model_presets_span_10k_to_3m_parameters(make_cfg):
    from scalelab.platform.model import GPT, GPTShape, count_parameters

    sizes = []
    for name in ("gpt_xs", "gpt_s", "gpt_m", "gpt_l"):
        m = make_cfg(f"model={name}", tiny=False).model
        sizes.append(count_parameters(GPT(GPTShape(m.width, m.depth, m.heads, m.context, 256)))[0])
    assert sizes == sorted(sizes) and 1e4 <= sizes[0] < 2e4 and 2e6 <= sizes[-1] <= 3.5e6


def test_gpu_presets_reach_100m_parameters_with_a_context_of_at_least_512(make_cfg):
    sizes = []
    for name in ("gpt_10m", "gpt_25m", "gpt_50m", "gpt_100m"):
        m = make_cfg(f"model={name}", tiny=False).model
        assert m.context >= 512 and m.width // m.heads == 64, name
        sizes.append(non_embedding_params(m.width, m.depth))
    assert sizes == sorted(sizes) and 1e7 <= sizes[0] and 9e7 <= sizes[-1] <= 1.1e8


def test_unknown_key_is_refused_by_name(make_cfg):
    with pytest.raises(ConfigCompositionException, match="model.colour"):
        make_cfg("model.colour=red")


def test_wrong_type_is_refused_by_name(make_cfg):
    with pytest.raises(ConfigCompositionException) as info:
        make_cfg("model.width=wide")
    assert "model.width" in str(info.value.__cause__) or "model.width" in str(info.value)
