"""The replication's statistics on inputs whose answers are known."""

import math

import pytest

from benchmarks.replication.stats import (
    example_scores,
    mean_interval,
    paired_difference,
    same_answer_share,
    sign_test,
    sign_test_p_value,
)


def test_seeds_become_the_share_right_per_example():
    runs = [(True, False, True), (True, False, False)]
    assert example_scores(runs) == [1.0, 0.0, 0.5]
    with pytest.raises(ValueError, match="different numbers"):
        example_scores([(True,), (True, False)])


def test_identical_methods_differ_by_exactly_zero():
    scores = {"a": [1, 0, 1, 1], "b": [0, 0, 1]}
    interval = paired_difference(scores, scores)
    assert (interval.estimate, interval.low, interval.high) == (0, 0, 0)
    assert not interval.excludes_zero


def test_a_constant_difference_has_no_spread():
    first = {"a": [1, 1, 1, 1], "b": [1, 1]}
    second = {"a": [0, 0, 0, 0], "b": [0.5, 0.5]}
    interval = paired_difference(first, second)
    assert interval.estimate == pytest.approx(0.75)
    assert interval.low == pytest.approx(0.75) and interval.high == pytest.approx(0.75)
    assert interval.excludes_zero


def test_the_average_is_over_tasks_not_examples():
    # 1.0 on a task of 2 examples, 0.0 on a task of 8: the average is 0.5, not 0.2.
    interval = mean_interval({"small": [1, 1], "large": [0] * 8})
    assert interval.estimate == pytest.approx(0.5)
    assert interval.low == interval.high == pytest.approx(0.5)


def test_a_coin_flip_interval_matches_the_normal_approximation():
    # 400 examples, half right: the mean's standard error is 0.025, so ±1.96 · 0.025.
    interval = mean_interval({"task": [1, 0] * 200})
    assert interval.estimate == 0.5
    assert interval.low == pytest.approx(0.5 - 1.96 * 0.025, abs=0.006)
    assert interval.high == pytest.approx(0.5 + 1.96 * 0.025, abs=0.006)


def test_pairing_removes_what_both_methods_share():
    # The second method is right exactly where the first is, plus on 10 more of 200.
    # Unpaired, the standard error would be about 0.05 (±0.098); paired, it is that of
    # 10 ones in 200, sqrt(0.05 · 0.95 / 200) = 0.0154 (±0.030).
    first = [1] * 90 + [0] * 110
    second = [1] * 100 + [0] * 100
    interval = paired_difference({"t": second}, {"t": first})
    assert interval.estimate == pytest.approx(0.05)
    assert interval.low == pytest.approx(0.05 - 0.030, abs=0.006)
    assert interval.high == pytest.approx(0.05 + 0.030, abs=0.006)
    assert interval.excludes_zero


def test_the_bootstrap_is_fixed_by_its_seed():
    scores = {"a": [1, 0, 0, 1, 1], "b": [0, 1, 0]}
    assert mean_interval(scores) == mean_interval(scores)
    assert mean_interval(scores, resamples=20, seed=1) != mean_interval(
        scores, resamples=20, seed=2
    )


def test_methods_scored_on_other_examples_are_refused():
    with pytest.raises(ValueError, match="different examples"):
        paired_difference({"a": [1, 0]}, {"a": [1, 0, 1]})
    with pytest.raises(ValueError, match="at least one example"):
        mean_interval({"a": []})


def test_sign_test_p_values():
    assert sign_test_p_value(10, 0) == pytest.approx(2 / 2**10)
    assert sign_test_p_value(0, 10) == pytest.approx(2 / 2**10)
    assert sign_test_p_value(5, 5) == 1.0
    assert sign_test_p_value(0, 0) == 1.0
    # 8 wins, 2 losses: P(X <= 2) = (1 + 10 + 45) / 1024, doubled.
    assert sign_test_p_value(8, 2) == pytest.approx(112 / 1024)
    assert math.isclose(sign_test_p_value(15, 5), 0.0414, abs_tol=1e-4)


def test_the_sign_test_counts_tasks_and_leaves_ties_out():
    result = sign_test({"a": 0.5, "b": 0.7, "c": 0.1, "d": 0.3}, {"a": 0.4, "b": 0.7, "c": 0.2})
    assert (result.wins, result.losses, result.ties) == (1, 1, 1)
    assert result.p_value == 1.0


def test_the_same_answer_share_counts_normalised_outputs():
    assert same_answer_share(["Yes", "yes.", "no", "(A)"]) == 0.5
    assert same_answer_share(["(B)"] * 4) == 1.0
