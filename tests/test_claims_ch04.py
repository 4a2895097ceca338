"""Chapter 4's claim rules on synthetic per-image outcomes: each verdict where it should be."""

import numpy as np
import pytest

from backdoorbook.claims import ch04_clip_defenses as rules
from backdoorbook.claims.core import Criterion, make_claim
from backdoorbook.claims.intervals import Interval

N = 600  # images per synthetic test set
ATTACKS = ("badnets", "blended", "sig", "wanet", "badclip")


def hits(rate, n=N, seed=0):
    """A bool outcome per image with exactly ``rate`` percent hits, in a seeded order."""
    out = np.zeros(n, dtype=bool)
    out[: round(rate * n / 100)] = True
    return np.random.default_rng(seed).permutation(out)


def outcomes(asr1, asr10=None, ca=None, seed=0):
    """One model's outcomes; CA defaults to one fixed array (the same clean images)."""
    return {
        "ASR@1": hits(asr1, seed=seed),
        "ASR@10": hits(asr10 if asr10 is not None else asr1, seed=seed + 1),
        "CA": ca if ca is not None else hits(15, seed=99),
    }


def wrong_on(ca, share, seed=5):
    """``ca`` (bool per image) with ``share`` percent of all images, drawn among its correct
    ones, made wrong: a CA lower by exactly ``share`` points."""
    out = ca.copy()
    correct = np.random.default_rng(seed).permutation(np.flatnonzero(out))
    out[correct[: round(share * len(out) / 100)]] = False
    return out


# --- claim 1: poisoning gives high ASR (against the clean control) at little CA loss ---


def claim1(asr_poisoned, asr_control, ca_loss=0.0):
    control_ca = hits(15, seed=99)
    poisoned = {
        a: outcomes(asr_poisoned[i], ca=wrong_on(control_ca, ca_loss), seed=i)
        for i, a in enumerate(ATTACKS)
    }
    control = {
        a: outcomes(asr_control[i], ca=control_ca, seed=10 + i) for i, a in enumerate(ATTACKS)
    }
    return rules.poisoning_high_asr_low_ca_loss(
        poisoned, control, poisoned_pairs=150, training_pairs=3000, seed=0
    )


def test_claim1_four_implanted_attacks_reproduce():
    claim = claim1([90, 90, 95, 85, 2], [1, 1, 1, 1, 1])
    assert claim.verdict == "reproduced"
    assert claim.n == N and "wanet" in claim.measure  # the 4th best attack decides
    assert len(claim.criteria) == 2 * len(ATTACKS)


def test_claim1_three_implanted_attacks_do_not():
    assert claim1([90, 90, 95, 2, 2], [1, 1, 1, 1, 1]).verdict == "not reproduced"


def test_claim1_a_borderline_fourth_attack_is_inconclusive():
    claim = claim1([90, 90, 95, 51, 2], [1, 1, 1, 1, 1])  # 4th: excess exactly 50 points
    assert claim.verdict == "inconclusive"
    assert claim.ci_low < rules.HIGH_ASR < claim.ci_high


def test_claim1_counts_asr_against_the_clean_control():
    # every attack fools the poisoned model 90 % of the time, but the clean control 80 %:
    # an absolute-ASR rule would pass, the rule against the control does not
    assert claim1([90] * 5, [80] * 5).verdict == "not reproduced"


def test_claim1_a_large_ca_loss_fails_it():
    claim = claim1([90] * 5, [1] * 5, ca_loss=6.0)
    assert claim.verdict == "not reproduced" and claim.threshold == -rules.CA_LOSS


def test_claim1_needs_the_same_attacks():
    with pytest.raises(ValueError, match="same attacks"):
        rules.poisoning_high_asr_low_ca_loss(
            {a: outcomes(90) for a in ATTACKS},
            {a: outcomes(1) for a in ATTACKS[:4]},
            poisoned_pairs=1,
            training_pairs=2,
            seed=0,
        )


# --- claim 2: CleanCLIP's drop on simple triggers vs on the patch ---


def claim2(simple_before, simple_after, patch_before, patch_after, control=1):
    before = {a: outcomes(simple_before, seed=i) for i, a in enumerate(ATTACKS[:4])}
    before["badclip"] = outcomes(patch_before, seed=7)
    after = {a: {**o, "ASR@1": o["ASR@1"].copy()} for a, o in before.items()}
    for a in after:  # CleanCLIP removes the hits of the first images that had one
        target = patch_after if a == "badclip" else simple_after
        target_hits = round(target * N / 100)
        idx = np.flatnonzero(after[a]["ASR@1"])
        after[a]["ASR@1"][idx[target_hits:]] = False
    ctrl = {a: outcomes(control, seed=20 + i) for i, a in enumerate(ATTACKS)}
    return rules.cleanclip_simple_vs_patch(before, after, ctrl, seed=0)


def test_claim2_large_simple_drops_reproduce():
    claim = claim2(90, 10, 90, 85)
    assert claim.verdict == "reproduced" and claim.effect == pytest.approx(75.0)
    assert "badnets, blended, sig, wanet" in claim.note


def test_claim2_equal_drops_do_not():
    claim = claim2(90, 80, 90, 80)
    assert claim.verdict == "not reproduced" and claim.effect == pytest.approx(0.0)


def test_claim2_a_difference_at_the_bar_is_inconclusive():
    claim = claim2(100, 80, 90, 90)  # simple drops 20 points, the patch's 0
    assert claim.effect == pytest.approx(rules.MUCH_MORE)
    assert claim.verdict == "inconclusive"


def test_claim2_note_says_when_no_simple_trigger_was_implanted():
    claim = claim2(10, 5, 90, 10, control=5)
    assert claim.verdict == "not reproduced" and claim.note.startswith("no simple trigger")


# --- claim 3: TA-Cleaner vs CleanCLIP on the patch ---


def test_claim3_verdicts():
    cc = outcomes(60, 90)
    assert rules.ta_cleaner_beats_cleanclip(outcomes(20, 50), cc, seed=0).verdict == "reproduced"
    assert rules.ta_cleaner_beats_cleanclip(outcomes(70, 95), cc, seed=0).verdict == (
        "not reproduced"
    )
    # top-1 ASR exactly 5 points below, top-10 far below: inconclusive
    borderline = rules.ta_cleaner_beats_cleanclip(outcomes(55, 50), cc, seed=0)
    assert borderline.verdict == "inconclusive" and borderline.effect == pytest.approx(-5.0)


def test_claim3_ca_must_stay_similar_in_both_directions():
    cc = outcomes(60, 90)
    lower = {**outcomes(20, 50), "CA": wrong_on(cc["CA"], 6.0)}
    assert rules.ta_cleaner_beats_cleanclip(lower, cc, seed=0).verdict == "not reproduced"
    higher = {**outcomes(20, 50), "CA": cc["CA"]}
    worse_cc = {**cc, "CA": wrong_on(cc["CA"], 6.0)}
    claim = rules.ta_cleaner_beats_cleanclip(higher, worse_cc, seed=0)
    assert claim.verdict == "not reproduced" and claim.threshold == rules.SIMILAR_CA


# --- claim 4: UBT vs CleanCLIP, CA by non-inferiority ---


def claim4(ubt_asr, cc_asr, ca_loss):
    cc = {a: outcomes(cc_asr, seed=i) for i, a in enumerate(ATTACKS)}
    ubt = {
        a: outcomes(ubt_asr, ca=wrong_on(o["CA"], ca_loss, seed=i), seed=30 + i)
        for i, (a, o) in enumerate(cc.items())
    }
    return rules.ubt_beats_cleanclip(ubt, cc, seed=0)


def test_claim4_lower_asr_at_equal_ca_reproduces():
    assert claim4(5, 40, 0.0).verdict == "reproduced"


def test_claim4_a_small_ca_loss_within_the_margin_still_reproduces():
    claim = claim4(5, 40, 0.5)
    assert claim.verdict == "reproduced"
    ca = next(c for c in claim.criteria if "CA" in c["measure"])
    assert ca["effect"] == pytest.approx(-0.5) and ca["ci_high"] < 0 < ca["ci_low"] + 1


def test_claim4_a_ca_loss_beyond_the_margin_does_not():
    claim = claim4(5, 40, 3.0)
    assert claim.verdict == "not reproduced" and claim.threshold == -rules.CA_MARGIN


def test_claim4_a_ca_loss_at_the_margin_is_inconclusive():
    claim = claim4(5, 40, rules.CA_MARGIN)
    assert claim.verdict == "inconclusive" and claim.effect == pytest.approx(-rules.CA_MARGIN)


def test_claim4_asr_not_lower_does_not():
    assert claim4(40, 40, 0.0).verdict == "not reproduced"


# --- helpers ---


def test_percent_reads_bool_as_hits_and_rejects_other_ranges():
    assert rules.percent(np.array([True, False])).tolist() == [100.0, 0.0]
    assert rules.percent([0, 50.0, 100]).tolist() == [0.0, 50.0, 100.0]
    with pytest.raises(ValueError, match="percent"):
        rules.percent([0, 101])
    with pytest.raises(ValueError, match="one outcome per image"):
        rules.percent([[1, 0]])


def test_at_least_k_of_takes_the_kth_group():
    def group(name, low, high):
        criterion = Criterion(name, Interval((low + high) / 2, low, high, 10), 0.0)
        return make_claim(name, name, criterion, rule="", ours="")

    groups = {"a": group("a", 1, 3), "b": group("b", -1, 2), "c": group("c", -3, -1)}
    fields = {"statement": "s", "rule": "r", "ours": "o"}
    assert rules.at_least_k_of("x", groups, 1, **fields).verdict == "reproduced"
    second = rules.at_least_k_of("x", groups, 2, **fields)
    assert second.verdict == "inconclusive" and second.measure == "b"
    assert rules.at_least_k_of("x", groups, 3, **fields).verdict == "not reproduced"
    assert {c["group"] for c in second.criteria} == {"a", "b", "c"}
    with pytest.raises(ValueError, match="k"):
        rules.at_least_k_of("x", groups, 4, **fields)
