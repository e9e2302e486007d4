"""The unbiased pass@k estimator, in its own module so `train.pass_at_k` imports nothing heavy."""

from __future__ import annotations

import math


def pass_at_k(n: int, c: int, k: int) -> float:
    """The probability that at least one of k samples, drawn without replacement from n with c correct, is correct.

        pass@k = 1 - C(n - c, k) / C(n, k)
               = 1 - prod_{i = n - c + 1}^{n} (1 - k / i)

    This is the unbiased estimator of Chen et al. 2021, "Evaluating Large Language Models Trained on Code"
    (the Codex paper, section 2.1 and its numpy snippet): the product form never builds the huge binomial
    coefficients, so it is exact to float precision for any n. It is 1.0 when n - c < k (every k-subset holds a
    correct sample) and 0.0 when c = 0. Average it over prompts for a data set's pass@k.

        pass_at_k(10, 3, 1) = 0.3      (c / n when k = 1)
        pass_at_k(5, 2, 2)  = 0.7      (1 - C(3, 2) / C(5, 2) = 1 - 3/10)
    """
    if n < 1 or k < 1:
        raise ValueError(f"pass@k needs n >= 1 and k >= 1 (got n={n}, k={k})")
    if k > n:
        raise ValueError(f"pass@{k} needs at least k={k} samples per prompt, got n={n}")
    if not 0 <= c <= n:
        raise ValueError(f"the number of correct samples c={c} must be between 0 and n={n}")
    if n - c < k:
        return 1.0
    return 1.0 - math.prod(1.0 - k / i for i in range(n - c + 1, n + 1))
