"""Chapter 2's claim rules on synthetic per-image outcomes: each rule reaches each of the three
verdicts where it should, measures the backdoor against the clean model's control, and reads its
effects the right way round."""

import numpy as np
import pytest

from backdoorbook.claims import ch02_zip as rules

N = 400


def _hits(percent, offset=0):
    """Per-image outcomes (0 or 100) with ``percent`` % hits: images ``offset`` onwards (cyclic),
    so two arrays with one offset are nested and differ on exactly the images between."""
    k = round(N * percent / 100)
    out = np.zeros(N)
    out[(offset + np.arange(k)) % N] = 100.0
    return out


ZERO = _hits(0)


def _shuffled(percent, seed):
    return np.random.default_rng(seed).permutation(_hits(percent))


# --- transform-only lowers ASR but costs CA ---------------------------------------------------


def _transform(h_none, h_tf, ok_none=85, ok_tf=70, control=None):
    control = control or {"no defense": ZERO, "transform-only": ZERO}
    return rules.transform_lowers_asr_costs_ca(
        {"no defense": _hits(h_none), "transform-only": _hits(h_tf)},
        control,
        {"no defense": _hits(ok_none), "transform-only": _hits(ok_tf)},
        seed=0,
    )


def test_transform_claim_reproduced_when_asr_and_ca_both_drop():
    claim = _transform(95, 30)
    assert claim.verdict == "reproduced" and claim.id == "transform-lowers-asr-costs-ca"
    assert [c["verdict"] for c in claim.criteria] == ["reproduced"] * 2
    assert claim.n == N


def test_transform_claim_not_reproduced_when_the_patch_survives():
    claim = _transform(95, 90)
    assert claim.verdict == "not reproduced"
    assert claim.effect == pytest.approx(5.0) and claim.ci_high < rules.TRANSFORM_ASR_DROP


def test_transform_claim_inconclusive_at_the_bar():
    claim = _transform(90, 70)  # a drop of exactly 20 points, interval about ±4
    assert claim.verdict == "inconclusive"
    assert claim.ci_low < rules.TRANSFORM_ASR_DROP < claim.ci_high


def test_transform_claim_not_reproduced_without_a_ca_cost():
    claim = _transform(95, 30, ok_none=80, ok_tf=80)
    assert claim.verdict == "not reproduced" and "CA" in claim.measure


def test_transform_claim_measures_the_backdoor_against_the_clean_model():
    # the clean model hits the target on the same triggered images: no backdoor to lower
    control = {"no defense": _hits(95), "transform-only": ZERO}
    claim = _transform(95, 30, control=control)
    assert claim.verdict == "not reproduced" and claim.effect == pytest.approx(-30.0)


def test_transform_claim_reads_the_drop_the_right_way_round():
    assert _transform(30, 95).verdict == "not reproduced"


# --- ZIP keeps ASR low and CA above transform-only ---------------------------------------------


def _zip(h_none, h_zip, gains=(10, 10)):
    correct = {
        f"victim{i}": {"ZIP": _hits(70 + g), "transform-only": _hits(70)}
        for i, g in enumerate(gains)
    }
    return rules.zip_low_asr_high_ca(
        {"no defense": _hits(h_none), "ZIP": _hits(h_zip)}, correct, seed=0
    )


def test_zip_claim_reproduced_when_asr_is_low_and_ca_gains_everywhere():
    claim = _zip(100, 5)
    assert claim.verdict == "reproduced" and len(claim.criteria) == 4


def test_zip_claim_not_reproduced_when_zip_leaves_asr_high():
    claim = _zip(100, 40)
    assert claim.verdict == "not reproduced"
    assert claim.measure.endswith("ASR after ZIP (%)") and claim.ci_low > rules.ZIP_ASR_MAX


def test_zip_claim_inconclusive_when_asr_sits_at_the_bar():
    claim = _zip(100, 20)
    assert claim.verdict == "inconclusive" and claim.direction == "at most"


def test_zip_claim_needs_zip_to_halve_the_undefended_asr():
    claim = _zip(30, 15)  # below 20 %, but exactly half of 30 %: the interval straddles 0
    assert claim.verdict == "inconclusive" and "× ASR without defense" in claim.measure
    assert _zip(24, 15).verdict == "not reproduced"  # more than half of a low ASR remains


def test_zip_claim_checks_every_victim():
    claim = _zip(100, 5, gains=(10, -10))
    assert claim.verdict == "not reproduced" and claim.measure.startswith("victim1")
    assert _zip(100, 5, gains=(10, 2)).verdict == "inconclusive"


def test_zip_claim_needs_a_victim():
    with pytest.raises(ValueError, match="at least one victim"):
        rules.zip_low_asr_high_ca({"no defense": _hits(90), "ZIP": _hits(5)}, {}, seed=0)


# --- λ trades fidelity for leakage -------------------------------------------------------------


def _centred(sd, seed):
    noise = np.random.default_rng(seed).normal(0.0, sd, N)
    return noise - noise.mean()


def _lam(steps=(4.0, 1.0), asrs=(10, 50, 95), controls=(0, 0, 0)):
    """λ = 1, 10, 100 with PSNR 23 dB (spread 1 dB) rising by ``steps`` (each exact on average,
    per-image spread 0.3 dB)."""
    lams = (1.0, 10.0, 100.0)
    psnr = [23.0 + _centred(1.0, 0)]
    for i, step in enumerate(steps):
        psnr.append(psnr[-1] + step + _centred(0.3, i + 1))
    return rules.lambda_fidelity_leakage(
        dict(zip(lams, psnr)),
        dict(zip(lams, map(_hits, asrs))),
        dict(zip(lams, map(_hits, controls))),
        seed=0,
    )


def test_lambda_claim_reproduced_when_fidelity_and_asr_rise():
    claim = _lam()
    assert claim.verdict == "reproduced" and len(claim.criteria) == 3


def test_lambda_claim_not_reproduced_when_fidelity_falls_at_a_step():
    claim = _lam(steps=(4.0, -2.0))
    assert claim.verdict == "not reproduced" and "λ = 100 minus at λ = 10" in claim.measure


def test_lambda_claim_inconclusive_on_a_flat_step():
    claim = _lam(steps=(4.0, 0.0))
    assert claim.verdict == "inconclusive" and claim.ci_low < 0 < claim.ci_high


def test_lambda_claim_measures_leakage_against_the_clean_model():
    # the clean model follows the victim: the purified images drift to the target by themselves
    claim = _lam(asrs=(10, 50, 95), controls=(10, 50, 95))
    assert claim.verdict == "not reproduced" and claim.effect == pytest.approx(0.0)


def test_lambda_claim_reads_the_rise_the_right_way_round():
    assert _lam(asrs=(95, 50, 10)).verdict == "not reproduced"


def test_lambda_claim_needs_the_same_settings_everywhere():
    with pytest.raises(ValueError, match="same two or more"):
        rules.lambda_fidelity_leakage(
            {1.0: 20 + _centred(1.0, 0), 10.0: 25 + _centred(1.0, 1)},
            {1.0: _hits(10), 100.0: _hits(90)},
            {1.0: ZERO, 100.0: ZERO},
            seed=0,
        )


# --- global triggers survive the transforms -----------------------------------------------------


def _survive(badnets, blended, wanet, controls=None):
    controls = controls or {a: ZERO for a in ("badnets", "blended", "wanet")}
    hit = {"badnets": _hits(badnets), "blended": _hits(blended), "wanet": _hits(wanet)}
    return rules.global_triggers_survive(hit, controls, seed=0)


def test_survival_claim_reproduced_when_both_global_triggers_beat_the_patch():
    assert _survive(20, 60, 70).verdict == "reproduced"


def test_survival_claim_not_reproduced_when_a_global_trigger_is_worn_down():
    claim = _survive(40, 70, 10)
    assert claim.verdict == "not reproduced" and "wanet" in claim.measure


def test_survival_claim_inconclusive_at_the_gap():
    claim = _survive(40, 45, 90)  # nested: blended beats badnets by exactly the gap
    assert claim.verdict == "inconclusive" and "blended" in claim.measure


def test_survival_claim_measures_against_the_clean_model():
    controls = {"badnets": ZERO, "blended": _hits(60), "wanet": ZERO}
    claim = _survive(20, 60, 70, controls=controls)
    assert claim.verdict == "not reproduced" and "blended" in claim.measure


def test_survival_claim_pairs_over_images_not_across_shuffles():
    # the same rates on unrelated images still give a rate difference, with a wider interval
    paired = rules.global_triggers_survive(
        {"badnets": _hits(40), "blended": _hits(50), "wanet": _hits(50)},
        {a: ZERO for a in ("badnets", "blended", "wanet")},
        seed=0,
    )
    shuffled = rules.global_triggers_survive(
        {"badnets": _hits(40), "blended": _shuffled(50, 1), "wanet": _shuffled(50, 2)},
        {a: ZERO for a in ("badnets", "blended", "wanet")},
        seed=0,
    )
    half = (paired.ci_high - paired.ci_low) / 2
    assert half < (shuffled.ci_high - shuffled.ci_low) / 2
    assert paired.effect == pytest.approx(shuffled.effect)


# --- input checks -------------------------------------------------------------------------------


def test_rules_refuse_outcomes_that_are_not_per_image_hits():
    with pytest.raises(ValueError, match="0 or 100"):
        rules.global_triggers_survive(
            {"badnets": _hits(20) / 100, "blended": _hits(60), "wanet": _hits(70)},
            {a: ZERO for a in ("badnets", "blended", "wanet")},
            seed=0,
        )
    with pytest.raises(ValueError, match="lacks"):
        rules.global_triggers_survive(
            {"badnets": _hits(20), "blended": _hits(60)},
            {a: ZERO for a in ("badnets", "blended", "wanet")},
            seed=0,
        )
    with pytest.raises(ValueError, match="one length"):
        rules.transform_lowers_asr_costs_ca(
            {"no defense": _hits(90), "transform-only": _hits(30)[:-1]},
            {"no defense": ZERO, "transform-only": ZERO},
            {"no defense": _hits(85), "transform-only": _hits(70)},
            seed=0,
        )
