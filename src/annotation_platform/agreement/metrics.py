"""Agreement measures between annotators: pure functions over label sequences, no database.

Two families, each defined with a worked example in docs/agreement.md:

- **clustering** (chat disentanglement: each item is put in a thread, and thread names are arbitrary, so only
  which items share a thread matters): one-to-one overlap, many-to-one accuracy, local agreement, variation of
  information, adjusted Rand index, exact-match conversation precision / recall / F1 and Shen's F1. They compare
  two labellings of the *same* items, given as two equally long sequences in item order (`a[i]` and `b[i]` label
  item i). Where a measure is asymmetric, `b` is the reference (gold) and `a` the labelling scored against it.
- **categorical** (sentiment and the like, where the label itself is the answer): percent agreement and Cohen's
  kappa for two annotators, Fleiss' kappa and Krippendorff's alpha (nominal) for any number, with missing labels.

A measure that is undefined for its input (no items, a kappa whose chance agreement is already 1) is None, never
NaN, so it serialises to JSON `null`.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from itertools import combinations
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy.optimize import linear_sum_assignment
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

Label = Hashable

CLUSTERING_MEASURES = (
    "one_to_one",
    "many_to_one",
    "many_to_one_reverse",
    "local_agreement",
    "variation_of_information",
    "normalized_variation_of_information",
    "adjusted_rand_index",
    "exact_match_precision",
    "exact_match_recall",
    "exact_match_f1",
    "shen_f1",
)
PAIR_CATEGORICAL_MEASURES = ("percent_agreement", "cohen_kappa")
GROUP_CATEGORICAL_MEASURES = ("fleiss_kappa", "krippendorff_alpha")
DEFAULT_WINDOW = 3


class LengthMismatch(ValueError):
    """The two labellings do not label the same number of items."""


@dataclass(frozen=True)
class Contingency:
    """How many items each (cluster of `a`, cluster of `b`) pair shares, kept sparse: one entry per pair that
    shares at least one item (`rows[i]`, `columns[i]`, `counts[i]`), so thousands of threads on each side cost
    memory in proportion to the items, not to the product of the thread counts."""

    rows: NDArray[np.int64]
    columns: NDArray[np.int64]
    counts: NDArray[np.int64]
    a_sizes: NDArray[np.int64]
    b_sizes: NDArray[np.int64]
    a_clusters: list[Label]
    b_clusters: list[Label]

    @property
    def total(self) -> int:
        return int(self.counts.sum())


def contingency(a: Sequence[Label], b: Sequence[Label]) -> Contingency:
    if len(a) != len(b):
        raise LengthMismatch(f"the labellings label {len(a)} and {len(b)} items")
    a_index: dict[Label, int] = {}
    b_index: dict[Label, int] = {}
    a_codes = np.fromiter((a_index.setdefault(label, len(a_index)) for label in a), dtype=np.int64, count=len(a))
    b_codes = np.fromiter((b_index.setdefault(label, len(b_index)) for label in b), dtype=np.int64, count=len(b))
    width = max(len(b_index), 1)
    cells, counts = np.unique(a_codes * width + b_codes, return_counts=True)
    return Contingency(
        rows=cells // width,
        columns=cells % width,
        counts=counts.astype(np.int64),
        a_sizes=np.bincount(a_codes, minlength=len(a_index)).astype(np.int64),
        b_sizes=np.bincount(b_codes, minlength=len(b_index)).astype(np.int64),
        a_clusters=list(a_index),
        b_clusters=list(b_index),
    )


# --- clustering measures ------------------------------------------------------------------------------------------


def _best_matching(counts: Contingency) -> list[tuple[int, int, int]]:
    """The one-to-one matching of clusters that maximises the items in matched pairs, as (row, column, shared).

    Only pairs that share items can add to the total, so the problem splits along the connected components of
    the "shares an item" graph; each component is solved exactly by the Hungarian algorithm on its own small
    dense table (scipy's `linear_sum_assignment`)."""
    if counts.total == 0:
        return []
    n_rows = len(counts.a_clusters)
    graph = coo_matrix(
        (np.ones_like(counts.counts), (counts.rows, counts.columns + n_rows)),
        shape=(n_rows + len(counts.b_clusters),) * 2,
    )
    _, component = connected_components(graph, directed=False)
    cell_component = component[counts.rows]
    order = np.argsort(cell_component, kind="stable")
    boundaries = np.flatnonzero(np.diff(cell_component[order])) + 1
    matched = []
    for cells in np.split(order, boundaries):
        rows, row_index = np.unique(counts.rows[cells], return_inverse=True)
        columns, column_index = np.unique(counts.columns[cells], return_inverse=True)
        table = np.zeros((len(rows), len(columns)), dtype=np.int64)
        table[row_index, column_index] = counts.counts[cells]
        chosen_rows, chosen_columns = linear_sum_assignment(table, maximize=True)
        for row, column in zip(chosen_rows, chosen_columns, strict=True):
            if table[row, column] > 0:
                matched.append((int(rows[row]), int(columns[column]), int(table[row, column])))
    return matched


def one_to_one(a: Sequence[Label], b: Sequence[Label]) -> float | None:
    """Fraction of items in matched clusters under the best one-to-one matching of `a`'s clusters to `b`'s
    (Elsner & Charniak 2008), found by the Hungarian algorithm. Symmetric."""
    counts = contingency(a, b)
    if counts.total == 0:
        return None
    return sum(shared for _, _, shared in _best_matching(counts)) / counts.total


def one_to_one_mapping(a: Sequence[Label], b: Sequence[Label]) -> dict[Label, Label]:
    """The best one-to-one matching itself: each matched cluster of `a` to its cluster of `b` (clusters left
    unmatched, or matched only as padding with no item shared, are absent)."""
    counts = contingency(a, b)
    return {counts.a_clusters[row]: counts.b_clusters[column] for row, column, _ in _best_matching(counts)}


def many_to_one(a: Sequence[Label], b: Sequence[Label]) -> float | None:
    """Fraction of items in the right cluster when each cluster of `a` is mapped to the cluster of `b` it
    overlaps most (several may map to one). Asymmetric: `b` is the reference."""
    counts = contingency(a, b)
    if counts.total == 0:
        return None
    best = np.zeros(len(counts.a_clusters), dtype=np.int64)
    np.maximum.at(best, counts.rows, counts.counts)
    return float(best.sum()) / counts.total


def local_agreement(a: Sequence[Label], b: Sequence[Label], window: int = DEFAULT_WINDOW) -> float | None:
    """Over every pair of items at most `window` apart in order, the fraction on which `a` and `b` agree about
    "same thread" versus "different threads" (Elsner & Charniak's loc_k). None with fewer than two items."""
    if len(a) != len(b):
        raise LengthMismatch(f"the labellings label {len(a)} and {len(b)} items")
    if window < 1:
        raise ValueError("window must be at least 1")
    agreed = compared = 0
    for later in range(1, len(a)):
        for earlier in range(max(0, later - window), later):
            agreed += (a[later] == a[earlier]) == (b[later] == b[earlier])
            compared += 1
    return agreed / compared if compared else None


def _entropy_bits(counts: NDArray[np.int64], total: int) -> float:
    probabilities = counts[counts > 0] / total
    return float(-(probabilities * np.log2(probabilities)).sum())


def variation_of_information(a: Sequence[Label], b: Sequence[Label]) -> float | None:
    """VI = H(A|B) + H(B|A) = H(A) + H(B) - 2 I(A;B), in bits (Meila 2007). 0 for identical partitions."""
    counts = contingency(a, b)
    total = counts.total
    if total == 0:
        return None
    joint = _entropy_bits(counts.counts, total)
    h_a = _entropy_bits(counts.a_sizes, total)
    h_b = _entropy_bits(counts.b_sizes, total)
    # H(A|B) + H(B|A) = 2 H(A,B) - H(A) - H(B); rounding can leave a hair below zero for identical partitions.
    return max(0.0, 2 * joint - h_a - h_b)


def normalized_variation_of_information(a: Sequence[Label], b: Sequence[Label]) -> float | None:
    """VI divided by its largest possible value for n items, log2(n): 0 identical, 1 as far apart as can be.
    With one item there is only one partition, so the distance is 0."""
    vi = variation_of_information(a, b)
    if vi is None:
        return None
    n = len(a)
    return vi / math.log2(n) if n > 1 else 0.0


def adjusted_rand_index(a: Sequence[Label], b: Sequence[Label]) -> float | None:
    """The Rand index corrected for chance (Hubert & Arabie 1985): 1 identical, about 0 for chance, can be
    negative. Computed from the pair counts: pairs of items together in both, in `a` only, in `b` only, in
    neither. Identical partitions score 1, including the degenerate ones where the formula is 0/0 (both all
    singletons, both one cluster, a single item), as in scikit-learn."""
    counts = contingency(a, b)
    n = counts.total
    if n == 0:
        return None
    cells = counts.counts.astype(np.float64)
    together_both = float((cells * (cells - 1)).sum()) / 2
    a_sizes = counts.a_sizes.astype(np.float64)
    b_sizes = counts.b_sizes.astype(np.float64)
    together_a = float((a_sizes * (a_sizes - 1)).sum()) / 2
    together_b = float((b_sizes * (b_sizes - 1)).sum()) / 2
    a_only = together_a - together_both
    b_only = together_b - together_both
    apart_both = n * (n - 1) / 2 - together_both - a_only - b_only
    if a_only == 0 and b_only == 0:
        return 1.0
    numerator = 2.0 * (together_both * apart_both - a_only * b_only)
    denominator = (together_both + b_only) * (b_only + apart_both) + (together_both + a_only) * (a_only + apart_both)
    return numerator / denominator


@dataclass(frozen=True)
class ExactMatch:
    precision: float | None
    recall: float | None
    f1: float | None


def exact_match(a: Sequence[Label], b: Sequence[Label]) -> ExactMatch:
    """Conversations (clusters) of two or more items that `a` and `b` both form with exactly the same items
    (Kummerfeld et al. 2019). Precision over `a`'s clusters, recall over `b`'s (the reference). Single-item
    clusters are left out on both sides, as the corpus's evaluation does; with none left the share is None."""
    if len(a) != len(b):
        raise LengthMismatch(f"the labellings label {len(a)} and {len(b)} items")
    a_sets = {frozenset(members) for members in _clusters(a).values() if len(members) > 1}
    b_sets = {frozenset(members) for members in _clusters(b).values() if len(members) > 1}
    matched = len(a_sets & b_sets)
    precision = matched / len(a_sets) if a_sets else None
    recall = matched / len(b_sets) if b_sets else None
    f1: float | None
    if precision is None or recall is None:
        f1 = None
    elif precision + recall == 0:
        f1 = 0.0
    else:
        f1 = 2 * precision * recall / (precision + recall)
    return ExactMatch(precision, recall, f1)


def _clusters(labels: Sequence[Label]) -> dict[Label, list[int]]:
    members: dict[Label, list[int]] = {}
    for index, label in enumerate(labels):
        members.setdefault(label, []).append(index)
    return members


def shen_f1(a: Sequence[Label], b: Sequence[Label]) -> float | None:
    """Shen et al. (2006): for each reference cluster j of `b`, the best F1 of any cluster i of `a` against it
    (P = n_ij / |i|, R = n_ij / |j|), averaged with weights |j| / n."""
    counts = contingency(a, b)
    n = counts.total
    if n == 0:
        return None
    # F1 of (i, j) = 2 n_ij / (|i| + |j|), the harmonic mean of n_ij/|i| and n_ij/|j|; pairs sharing no item
    # score 0, and every cluster of `b` shares items with some cluster of `a`.
    f1 = 2 * counts.counts / (counts.a_sizes[counts.rows] + counts.b_sizes[counts.columns])
    best = np.zeros(len(counts.b_clusters), dtype=np.float64)
    np.maximum.at(best, counts.columns, f1)
    return float((counts.b_sizes * best).sum()) / n


def clustering_measures(
    a: Sequence[Label], b: Sequence[Label], window: int = DEFAULT_WINDOW
) -> dict[str, float | None]:
    """Every clustering measure of `a` against `b` (the reference for the asymmetric ones)."""
    exact = exact_match(a, b)
    return {
        "one_to_one": one_to_one(a, b),
        "many_to_one": many_to_one(a, b),
        "many_to_one_reverse": many_to_one(b, a),
        "local_agreement": local_agreement(a, b, window),
        "variation_of_information": variation_of_information(a, b),
        "normalized_variation_of_information": normalized_variation_of_information(a, b),
        "adjusted_rand_index": adjusted_rand_index(a, b),
        "exact_match_precision": exact.precision,
        "exact_match_recall": exact.recall,
        "exact_match_f1": exact.f1,
        "shen_f1": shen_f1(a, b),
    }


# --- categorical measures -----------------------------------------------------------------------------------------


def percent_agreement(a: Sequence[Label], b: Sequence[Label]) -> float | None:
    """Fraction of items on which both give the same label."""
    if len(a) != len(b):
        raise LengthMismatch(f"the labellings label {len(a)} and {len(b)} items")
    if not a:
        return None
    return sum(x == y for x, y in zip(a, b, strict=True)) / len(a)


def cohen_kappa(a: Sequence[Label], b: Sequence[Label]) -> float | None:
    """(p_o - p_e) / (1 - p_e), chance agreement p_e from each annotator's own label distribution (Cohen 1960).
    None when p_e = 1 (both used one and the same label throughout: agreement cannot exceed chance)."""
    observed = percent_agreement(a, b)
    if observed is None:
        return None
    n = len(a)
    a_counts = Counter(a)
    b_counts = Counter(b)
    expected = sum(a_counts[label] * b_counts.get(label, 0) for label in a_counts) / (n * n)
    if expected >= 1:
        return None
    return (observed - expected) / (1 - expected)


Units = Sequence[Mapping[Any, Label]]
"""Labels by unit (item): for each unit, annotator -> label; an annotator who did not label a unit is absent."""


def fleiss_kappa(units: Units) -> float | None:
    """Fleiss (1971), generalised to a varying number of labels per unit: units with fewer than two labels are
    left out; P_i is the share of agreeing ordered pairs among the unit's own labels; P_e = sum of p_k squared,
    where p_k is label k's share of all labels counted. With the same number of annotators on every unit this is
    exactly Fleiss' kappa. None without any usable unit, or when P_e = 1."""
    usable = [Counter(unit.values()) for unit in units if len(unit) >= 2]
    if not usable:
        return None
    per_unit = []
    totals: Counter[Label] = Counter()
    for counts in usable:
        m = sum(counts.values())
        per_unit.append(sum(c * (c - 1) for c in counts.values()) / (m * (m - 1)))
        totals.update(counts)
    all_labels = sum(totals.values())
    expected = sum((count / all_labels) ** 2 for count in totals.values())
    if expected >= 1:
        return None
    observed = sum(per_unit) / len(per_unit)
    return (observed - expected) / (1 - expected)


def krippendorff_alpha(units: Units) -> float | None:
    """Krippendorff's alpha for nominal labels: 1 - D_o / D_e from the coincidence matrix (Krippendorff 2011).
    Units with fewer than two labels are not pairable and are left out; missing labels are simply absent.
    None without two pairable labels, or when every label counted is the same (D_e = 0)."""
    coincidences: dict[tuple[Label, Label], float] = {}
    for unit in units:
        labels = list(unit.values())
        m = len(labels)
        if m < 2:
            continue
        for first, second in combinations(range(m), 2):
            x, y = labels[first], labels[second]
            coincidences[(x, y)] = coincidences.get((x, y), 0.0) + 1 / (m - 1)
            coincidences[(y, x)] = coincidences.get((y, x), 0.0) + 1 / (m - 1)
    marginals: dict[Label, float] = {}
    for (x, _), weight in coincidences.items():
        marginals[x] = marginals.get(x, 0.0) + weight
    n = sum(marginals.values())
    if n < 2:
        return None
    observed_disagreement = sum(weight for (x, y), weight in coincidences.items() if x != y)
    expected_disagreement = (n * n - sum(count * count for count in marginals.values())) / (n - 1)
    if expected_disagreement <= 1e-12:
        return None
    return 1 - observed_disagreement / expected_disagreement


def paired(
    a: Mapping[Any, Label], b: Mapping[Any, Label], order: Sequence[Any]
) -> tuple[list[Any], list[Label], list[Label]]:
    """The items both labelled, in `order`, with each one's labels: the pairwise measures rest on these only."""
    items = [item for item in order if item in a and item in b]
    return items, [a[item] for item in items], [b[item] for item in items]
