"""pass_at_k: the unbiased estimator 1 - C(n-c, k) / C(n, k), against hand-computed values."""

from math import comb

import pytest
from hypothesis import given
from hypothesis import strategies as st

from train.evaluation.passk import pass_at_k


@pytest.mark.parametrize(
    ("n", "c", "k", "expected"),
    [
        (10, 3, 1, 3 / 10),  # k = 1 is the fraction correct
        (5, 2, 2, 1 - 3 / 10),  # C(3, 2) / C(5, 2) = 3 / 10
        (10, 1, 5, 1 - 126 / 252),  # C(9, 5) / C(10, 5) = 126 / 252: one correct sample is in half the 5-subsets
        (10, 2, 5, 1 - 56 / 252),  # C(8, 5) = 56
        (4, 1, 4, 1.0),  # n - c = 3 < k = 4: every 4-subset holds the correct sample
    ],
)
def test_pass_at_k_matches_hand_computed_values(n, c, k, expected):
    assert pass_at_k(n, c, k) == pytest.approx(expected, abs=1e-12)


def test_no_correct_sample_gives_zero():
    assert pass_at_k(10, 0, 1) == 0.0
    assert pass_at_k(10, 0, 10) == 0.0


def test_all_correct_gives_one():
    assert pass_at_k(10, 10, 1) == 1.0
    assert pass_at_k(10, 10, 10) == 1.0


def test_fewer_wrong_samples_than_k_gives_one():
    assert pass_at_k(10, 6, 5) == 1.0  # n - c = 4 < 5


def test_k_larger_than_n_is_an_error():
    with pytest.raises(ValueError, match="at least k=11"):
        pass_at_k(10, 3, 11)


@pytest.mark.parametrize(("n", "c", "k"), [(0, 0, 1), (5, 6, 1), (5, -1, 1), (5, 2, 0)])
def test_impossible_counts_are_errors(n, c, k):
    with pytest.raises(ValueError):
        pass_at_k(n, c, k)


@given(st.integers(1, 60).flatmap(lambda n: st.tuples(st.just(n), st.integers(0, n), st.integers(1, n))))
def test_product_form_equals_the_binomial_definition(case):
    n, c, k = case
    assert pass_at_k(n, c, k) == pytest.approx(1 - comb(n - c, k) / comb(n, k), abs=1e-9)


@given(st.integers(10, 100).flatmap(lambda n: st.tuples(st.just(n), st.integers(0, n))))
def test_pass_at_k_grows_with_k(case):
    n, c = case
    assert pass_at_k(n, c, 1) <= pass_at_k(n, c, 5) <= pass_at_k(n, c, 10)


@given(st.integers(10, 100).flatmap(lambda n: st.tuples(st.just(n), st.integers(0, n - 1))))
def test_pass_at_k_grows_with_correct_samples(case):
    n, c = case
    assert pass_at_k(n, c, 5) <= pass_at_k(n, c + 1, 5)
