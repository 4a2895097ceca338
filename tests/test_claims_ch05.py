"""Chapter 5's claim rules on synthetic per-episode rates: each rule reaches each of the three
verdicts where it should, measures against its control, and reads its effects the right way
round."""

import numpy as np
import pytest

from backdoorbook.claims import ch05_flba as rules

EPISODES = 100


def _rates(mean, sd=0.0, seed=0):
    """Per-episode rates (%) around ``mean``, clipped to [0, 100]."""
    noise = np.random.default_rng(seed).normal(0.0, sd, EPISODES) if sd else np.zeros(EPISODES)
    return np.clip(mean + noise, 0.0, 100.0)


def _jitter(base, mean, sd, seed):
    """``base`` plus a paired difference of exactly mean ``mean`` and spread ``sd`` per
    episode."""
    noise = np.random.default_rng(seed).normal(0.0, sd, EPISODES)
    return base + mean + noise - noise.mean()


BASE = _rates(40.0, 10.0, seed=1)


# --- BadNets: ASR rises with the poison rate ---------------------------------------------------


def _asr_by_rate(step1, step2, sd=1.0):
    low = _rates(10.0, 3.0, seed=2)
    mid = _jitter(low, step1, sd, seed=3)
    return {0.0: low, 0.25: mid, 0.5: _jitter(mid, step2, sd, seed=4)}


def test_badnets_asr_rises_reproduced_when_every_step_clears_the_bar():
    claim = rules.badnets_asr_rises(_asr_by_rate(50.0, 25.0), 5, seed=0)
    assert claim.verdict == "reproduced" and claim.id == "badnets-asr-rises-5-shot"
    assert len(claim.criteria) == 2 and claim.n == EPISODES
    assert claim.threshold == rules.TREND_STEP
    # the headline is the step with the narrower margin: the second one
    assert claim.effect == pytest.approx(25.0, abs=1.0)


def test_badnets_asr_rises_not_reproduced_when_badnets_simply_fails():
    # the old trade-off rule passed here (accuracy falls, ASR stays low)
    claim = rules.badnets_asr_rises(_asr_by_rate(1.0, 1.0), 1, seed=0)
    assert claim.verdict == "not reproduced"
    assert claim.ci_high < rules.TREND_STEP


def test_badnets_asr_rises_inconclusive_when_a_step_straddles_the_bar():
    claim = rules.badnets_asr_rises(_asr_by_rate(50.0, rules.TREND_STEP, sd=10.0), 1, seed=0)
    assert claim.verdict == "inconclusive"
    assert claim.ci_low < rules.TREND_STEP < claim.ci_high
    assert "0.5 minus at 0.25" in claim.measure


def test_badnets_asr_that_falls_with_the_rate_is_not_a_rise():
    by_rate = _asr_by_rate(50.0, 25.0)
    falling = {0.0: by_rate[0.5], 0.25: by_rate[0.25], 0.5: by_rate[0.0]}
    claim = rules.badnets_asr_rises(falling, 5, seed=0)
    assert claim.verdict == "not reproduced" and claim.effect < 0


def test_badnets_trend_needs_the_rate_zero_control():
    by_rate = _asr_by_rate(50.0, 25.0)
    with pytest.raises(ValueError, match="rate 0"):
        rules.badnets_asr_rises({0.25: by_rate[0.25], 0.5: by_rate[0.5]}, 5, seed=0)
    with pytest.raises(ValueError, match="rate 0"):
        rules.badnets_accuracy_falls({0.0: by_rate[0.0]}, 5, seed=0)


def test_the_bootstrap_is_seeded():
    by_rate = _asr_by_rate(50.0, 6.0, sd=10.0)
    first = rules.badnets_asr_rises(by_rate, 5, seed=3)
    assert first == rules.badnets_asr_rises(by_rate, 5, seed=3)
    assert first.ci_low != rules.badnets_asr_rises(by_rate, 5, seed=4).ci_low


# --- BadNets: accuracy falls as the poison rate rises ------------------------------------------


def _accuracy_by_rate(drop1, drop2, sd=1.0):
    mid = _jitter(BASE, -drop1, sd, seed=5)
    return {0.0: BASE, 0.25: mid, 0.5: _jitter(mid, -drop2, sd, seed=6)}


def test_badnets_accuracy_falls_in_all_three_verdicts():
    reproduced = rules.badnets_accuracy_falls(_accuracy_by_rate(15.0, 10.0), 5, seed=0)
    assert reproduced.verdict == "reproduced" and reproduced.id == "badnets-accuracy-falls-5-shot"
    assert reproduced.effect > 0  # a drop is reported as a positive number of points
    flat = rules.badnets_accuracy_falls(_accuracy_by_rate(0.0, 0.0), 1, seed=0)
    assert flat.verdict == "not reproduced"
    edge = rules.badnets_accuracy_falls(
        _accuracy_by_rate(rules.TREND_STEP, 20.0, sd=10.0), 1, seed=0
    )
    assert edge.verdict == "inconclusive"
    assert "accuracy at poison rate 0 minus at 0.25" in edge.measure


def test_badnets_accuracy_that_rises_is_not_a_fall():
    claim = rules.badnets_accuracy_falls(_accuracy_by_rate(-15.0, -10.0), 5, seed=0)
    assert claim.verdict == "not reproduced" and claim.effect < 0


# --- FLBA: high ASR against the clean head, accuracy within a few points -----------------------


def _flba(lift, change, sd=1.0, clean_asr=10.0):
    clean_asr_values = _rates(clean_asr, 3.0, seed=7)
    asr = {
        k: {"clean": clean_asr_values, "flba": _jitter(clean_asr_values, lift, sd, seed=8 + k)}
        for k in (1, 5)
    }
    accuracy = {k: {"clean": BASE, "flba": _jitter(BASE, change, sd, seed=20 + k)} for k in (1, 5)}
    return asr, accuracy


def test_flba_claim_reproduced_with_a_large_lift_and_no_accuracy_cost():
    claim = rules.flba_high_asr_stealthy(*_flba(85.0, -1.0), seed=0)
    assert claim.verdict == "reproduced" and len(claim.criteria) == 4
    better = rules.flba_high_asr_stealthy(*_flba(85.0, +3.0), seed=0)
    assert better.verdict == "reproduced"  # higher accuracy than clean is no cost


def test_flba_claim_measures_asr_against_the_clean_head():
    # absolute ASR about 95 %, but the patch alone already sends 50 % to the target
    asr, accuracy = _flba(45.0, 0.0, clean_asr=50.0)
    assert min(v.mean() for v in (asr[1]["flba"], asr[5]["flba"])) > rules.ASR_LIFT
    claim = rules.flba_high_asr_stealthy(asr, accuracy, seed=0)
    assert claim.verdict == "not reproduced"
    assert claim.effect == pytest.approx(45.0, abs=1.0)


def test_flba_claim_not_reproduced_when_accuracy_drops_and_inconclusive_at_the_edges():
    costly = rules.flba_high_asr_stealthy(*_flba(85.0, -12.0), seed=0)
    assert costly.verdict == "not reproduced" and "accuracy" in costly.measure
    edge_lift = rules.flba_high_asr_stealthy(*_flba(rules.ASR_LIFT, 0.0, sd=8.0), seed=0)
    assert edge_lift.verdict == "inconclusive" and "ASR" in edge_lift.measure
    edge_acc = rules.flba_high_asr_stealthy(*_flba(85.0, -rules.ACC_TOLERANCE, sd=8.0), seed=0)
    assert edge_acc.verdict == "inconclusive" and edge_acc.threshold == -rules.ACC_TOLERANCE


def test_flba_claim_names_missing_conditions():
    asr, accuracy = _flba(85.0, 0.0)
    del asr[5]["clean"]
    with pytest.raises(ValueError, match="clean"):
        rules.flba_high_asr_stealthy(asr, accuracy, seed=0)


# --- Both perturbations contribute -------------------------------------------------------------


def _ablations(gap_attractive, gap_repulsive, sd=1.0):
    full = _rates(50.0, 10.0, seed=9)
    return {
        k: {
            "flba": full,
            "flba_attractive_only": _jitter(full, -gap_attractive, sd, seed=30 + k),
            "flba_repulsive_only": _jitter(full, -gap_repulsive, sd, seed=40 + k),
        }
        for k in (1, 5)
    }


def test_ablation_claim_in_all_three_verdicts_and_both_directions():
    assert rules.both_perturbations_contribute(_ablations(15.0, 10.0), seed=0).verdict == (
        "reproduced"
    )
    one_useless = rules.both_perturbations_contribute(_ablations(15.0, 0.0), seed=0)
    assert one_useless.verdict == "not reproduced" and "repulsive only" in one_useless.measure
    stronger_ablation = rules.both_perturbations_contribute(_ablations(-10.0, 10.0), seed=0)
    assert stronger_ablation.verdict == "not reproduced" and stronger_ablation.effect < 0
    edge = rules.both_perturbations_contribute(_ablations(15.0, rules.ABLATION_GAP, sd=8.0), seed=0)
    assert edge.verdict == "inconclusive"
    assert len(edge.criteria) == 4 and edge.n == EPISODES


def test_every_claim_records_its_interval_threshold_and_n():
    claims = [
        rules.badnets_asr_rises(_asr_by_rate(50.0, 25.0), 1, seed=0),
        rules.badnets_accuracy_falls(_accuracy_by_rate(15.0, 10.0), 1, seed=0),
        rules.flba_high_asr_stealthy(*_flba(85.0, 0.0), seed=0),
        rules.both_perturbations_contribute(_ablations(15.0, 10.0), seed=0),
    ]
    for claim in claims:
        record = claim.as_dict()
        assert record["ci_low"] <= record["effect"] <= record["ci_high"]
        assert record["threshold"] is not None and record["n"] == EPISODES
        assert record["source"] in ("[abs]", "[?]") and record["ours"]
