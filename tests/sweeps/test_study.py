"""The budget of a study (which trials use up `n_trials`), and each scale's sampler seed."""
import zlib

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution
from optuna.storages import InMemoryStorage
from optuna.trial import TrialState

from scalelab.sweeps.config import SweepError, SweepSettings
from scalelab.sweeps.heartbeat import UNCOUNTED_ATTR
from scalelab.sweeps.storage import make_storage
from scalelab.sweeps.study import (INTERRUPTED_REASON, LADDER_ID_ATTR, SEARCH_SPACE_ATTR, budget_left,
                                   fail_interrupted, ladder_id, open_study, sampler_for_scale)


def test_trials_failed_by_their_process_going_away_do_not_count(tmp_path):
    study = optuna.create_study(study_name="b", storage=make_storage(f"sqlite:///{tmp_path}/s.db"))
    done, failed, interrupted, running = (study.ask() for _ in range(4))
    study.tell(done, 1.0)
    study.tell(failed, state=TrialState.FAIL)  # the trial's own failure: counted
    assert fail_interrupted(study, [interrupted, done]) == [interrupted.number]  # `done` had finished
    trials = study.get_trials()
    assert trials[interrupted.number].state == TrialState.FAIL
    assert trials[interrupted.number].user_attrs["fail_reason"] == INTERRUPTED_REASON
    assert trials[interrupted.number].system_attrs[UNCOUNTED_ATTR] == INTERRUPTED_REASON
    assert UNCOUNTED_ATTR not in trials[done.number].system_attrs
    # done, failed and running count; without the running one when only finished trials count
    assert budget_left(study, 5, grace_period=None) == 2
    assert budget_left(study, 5, grace_period=None, count_running=False) == 3
    assert running.number == 3


@pytest.mark.parametrize("sampler, scale, seed", [
    ({"_target_": "optuna.samplers.TPESampler", "seed": 0}, "", 0),  # one scale: the seed as given
    ({"_target_": "optuna.samplers.TPESampler", "seed": 0}, "model.width=64", zlib.crc32(b"model.width=64")),
    ({"_target_": "optuna.samplers.TPESampler", "seed": None}, "model.width=64", None),  # unseeded stays so
])
def test_each_scale_of_a_ladder_gets_its_own_seed(sampler, scale, seed):
    assert sampler_for_scale(sampler, scale)["seed"] == seed
    assert sampler["seed"] in (0, None)  # the plan's config is left alone


@pytest.mark.parametrize("scale", ["", "model.width=64"])
def test_a_study_that_holds_trials_gets_a_seed_of_its_own_and_the_same_one_every_time(scale):
    tpe = {"_target_": "optuna.samplers.TPESampler", "seed": 0}
    seeds = [sampler_for_scale(tpe, scale, held)["seed"] for held in (0, 1, 2)]
    assert len(set(seeds)) == 3  # not the start-up points of the trials it holds again
    assert [sampler_for_scale(tpe, scale, held)["seed"] for held in (0, 1, 2)] == seeds  # no entropy
    unseeded = {"_target_": "optuna.samplers.TPESampler", "seed": None}
    assert sampler_for_scale(unseeded, scale, 3) is unseeded


LR = {"optim.lr": FloatDistribution(1e-4, 3e-2, log=True)}
LR_BS = {**LR, "train.batch_size": CategoricalDistribution([8, 16])}


def test_a_study_name_reused_with_another_search_space_is_refused_naming_the_difference():
    storage, settings, tpe = InMemoryStorage(), SweepSettings(), {"_target_": "optuna.samplers.TPESampler"}
    study = open_study(storage, "lr", settings, tpe, LR)
    assert study.user_attrs[SEARCH_SPACE_ATTR] == {"optim.lr": "tag(log, interval(0.0001, 0.03))"}
    open_study(storage, "lr", settings, tpe, LR_BS)  # no trial yet: nothing to mix, the new space is kept
    open_study(storage, "lr", settings, tpe, LR)
    study.tell(study.ask(LR), 1.0)
    assert open_study(storage, "lr", settings, tpe, dict(LR)).user_attrs[SEARCH_SPACE_ATTR] == {
        "optim.lr": "tag(log, interval(0.0001, 0.03))"}  # the same sweep again resumes its study
    with pytest.raises(SweepError) as e:
        open_study(storage, "lr", settings, tpe, {"optim.lr": FloatDistribution(1e-3, 1e-2, log=True),
                                                  "train.batch_size": CategoricalDistribution([8, 16])})
    assert str(e.value) == (
        "study 'lr' holds trials of another search space: optim.lr was tag(log, interval(0.0001, 0.03)), is now "
        "tag(log, interval(0.001, 0.01)); train.batch_size is searched now as choice(8, 16), was not; give this "
        "sweep another hydra.sweeper.study_name, or search the study's own space to continue it")
    assert len(study.trials) == 1  # nothing was added to it


def test_a_ladder_id_is_made_once_and_kept_by_a_resumed_sweep(tmp_path):
    url = f"sqlite:///{tmp_path}/s.db"
    settings, tpe = SweepSettings(), {"_target_": "optuna.samplers.TPESampler", "seed": 0}
    storage = make_storage(url)
    first = ladder_id(storage, "lad")
    assert first.startswith("lad-") and len(first) == len("lad-") + 8
    assert optuna.get_all_study_summaries(storage) == []  # no study is made for it
    # the first study opened keeps it; a second start (a resume, or another worker) finds it
    assert open_study(storage, "lad/model.width=16", settings, tpe, LR, first).user_attrs[LADDER_ID_ATTR] == first
    again = make_storage(url)
    assert ladder_id(again, "lad") == first
    # every other scale's study keeps it, and one opened with another id keeps the one it has
    assert open_study(again, "lad/model.width=8", settings, tpe, LR, first).user_attrs[LADDER_ID_ATTR] == first
    assert open_study(again, "lad/model.width=16", settings, tpe, LR, "lad-other").user_attrs[LADDER_ID_ATTR] == first
    # a sweep of the same name in another storage is another ladder, and so is another name
    assert ladder_id(InMemoryStorage(), "lad") != first and ladder_id(again, "la") != first


def test_a_ladder_from_before_ids_gets_one_on_resume(tmp_path):
    settings, tpe = SweepSettings(), {"_target_": "optuna.samplers.TPESampler", "seed": 0}
    storage = make_storage(f"sqlite:///{tmp_path}/s.db")
    optuna.create_study(study_name="lad/model.width=8", storage=storage)  # made with no id
    made = ladder_id(storage, "lad")
    assert made.startswith("lad-")
    assert open_study(storage, "lad/model.width=8", settings, tpe, LR, made).user_attrs[LADDER_ID_ATTR] == made
    assert ladder_id(storage, "lad") == made
