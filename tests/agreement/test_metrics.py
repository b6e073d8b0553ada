"""Every agreement measure against hand-computed figures (the worked examples of docs/agreement.md), against
independent implementations (scikit-learn; brute force over every matching), and on the edge cases: identical
partitions, one thread for everything, singletons only, a single item, disjoint item sets."""

from __future__ import annotations

import math
import random
from itertools import combinations, permutations

import pytest
from sklearn.metrics import adjusted_rand_score, cohen_kappa_score, mutual_info_score

from annotation_platform.agreement import metrics as m

# The worked example of docs/agreement.md: six turns, A makes threads x, y, z; B makes p, q.
A = ["x", "x", "x", "y", "y", "z"]
B = ["p", "p", "q", "q", "q", "q"]


def approx(value: float) -> object:
    return pytest.approx(value, abs=1e-9)


def test_worked_example_by_hand() -> None:
    assert m.one_to_one(A, B) == approx(4 / 6)
    assert m.many_to_one(A, B) == approx(5 / 6)
    assert m.many_to_one(B, A) == approx(4 / 6)
    assert m.local_agreement(A, B, 3) == approx(5 / 12)
    h_a = -(0.5 * math.log2(0.5) + (1 / 3) * math.log2(1 / 3) + (1 / 6) * math.log2(1 / 6))
    assert m.variation_of_information(A, B) == approx(1.0 + (h_a - 1.0))  # H(A|B) = 1 bit, H(B|A) = H(A) - 1
    assert m.normalized_variation_of_information(A, B) == approx(h_a / math.log2(6))
    assert m.adjusted_rand_index(A, B) == approx((2 - 28 / 15) / (5.5 - 28 / 15))
    assert m.exact_match(A, B) == m.ExactMatch(0.0, 0.0, 0.0)
    assert m.shen_f1(A, B) == approx((2 * 0.8 + 4 * (2 / 3)) / 6)


def test_one_to_one_mapping_of_the_example() -> None:
    assert m.one_to_one_mapping(A, B) == {"x": "p", "y": "q"}


def test_local_agreement_window_one_compares_neighbours_only() -> None:
    # Neighbours: (x,x)/(p,p) agree, (x,x)/(p,q) no, (x,y)/(q,q) no, (y,y)/(q,q) agree, (y,z)/(q,q) no.
    assert m.local_agreement(A, B, 1) == approx(2 / 5)


def test_exact_match_counts_matching_conversations() -> None:
    a = [1, 1, 2, 2, 3, 3, 4]
    b = [7, 7, 8, 8, 8, 9, 9]  # {0,1} matches; a's {2,3},{4,5} do not; singletons ({6} of a) are left out
    result = m.exact_match(a, b)
    assert result.precision == approx(1 / 3)
    assert result.recall == approx(1 / 3)
    assert result.f1 == approx(1 / 3)


def test_shen_f1_is_asymmetric_with_b_as_reference() -> None:
    # Reference b has one cluster of 4; a splits it in two: best F1 = 2*2/(2+4) = 2/3.
    assert m.shen_f1([1, 1, 2, 2], [5, 5, 5, 5]) == approx(2 / 3)
    # Reference b has two clusters of 2; a's single cluster: F1 of each = 2*2/(4+2) = 2/3.
    assert m.shen_f1([5, 5, 5, 5], [1, 1, 2, 2]) == approx(2 / 3)
    assert m.shen_f1([1, 1, 1, 2], [1, 1, 2, 2]) != m.shen_f1([1, 1, 2, 2], [1, 1, 1, 2])


# --- independent implementations ----------------------------------------------------------------------------------


def random_labelling(rng: random.Random, n: int, clusters: int) -> list[int]:
    return [rng.randrange(clusters) for _ in range(n)]


def cases(count: int, seed: int) -> list[tuple[list[int], list[int]]]:
    rng = random.Random(seed)
    found = []
    for _ in range(count):
        n = rng.randint(1, 60)
        found.append((random_labelling(rng, n, rng.randint(1, 8)), random_labelling(rng, n, rng.randint(1, 8))))
    return found


@pytest.mark.parametrize(("a", "b"), cases(150, seed=8))
def test_adjusted_rand_index_matches_scikit_learn(a: list[int], b: list[int]) -> None:
    assert m.adjusted_rand_index(a, b) == pytest.approx(adjusted_rand_score(a, b), abs=1e-9)


@pytest.mark.parametrize(("a", "b"), cases(150, seed=9))
def test_variation_of_information_matches_scikit_learn_mutual_information(a: list[int], b: list[int]) -> None:
    # VI = H(A) + H(B) - 2 I(A;B), with H(A) = I(A;A); scikit-learn works in nats.
    nats = mutual_info_score(a, a) + mutual_info_score(b, b) - 2 * mutual_info_score(a, b)
    assert m.variation_of_information(a, b) == pytest.approx(nats / math.log(2), abs=1e-9)


def brute_force_one_to_one(a: list[int], b: list[int]) -> float:
    a_clusters, b_clusters = sorted(set(a)), sorted(set(b))
    overlap = {
        (x, y): sum(1 for i, j in zip(a, b, strict=True) if (i, j) == (x, y)) for x in a_clusters for y in b_clusters
    }
    small, large = (a_clusters, b_clusters) if len(a_clusters) <= len(b_clusters) else (b_clusters, a_clusters)
    best = 0
    for chosen in permutations(large, len(small)):
        pairs = zip(small, chosen, strict=True)
        total = sum(overlap[(x, y)] if small is a_clusters else overlap[(y, x)] for x, y in pairs)
        best = max(best, total)
    return best / len(a)


@pytest.mark.parametrize(("a", "b"), [case for case in cases(120, seed=10) if len(set(case[0])) <= 6])
def test_one_to_one_matches_brute_force_over_every_matching(a: list[int], b: list[int]) -> None:
    assert m.one_to_one(a, b) == pytest.approx(brute_force_one_to_one(a, b), abs=1e-12)


@pytest.mark.parametrize(("a", "b"), cases(60, seed=11))
def test_many_to_one_and_shen_f1_match_their_definitions(a: list[int], b: list[int]) -> None:
    n = len(a)
    members_a = {x: {i for i in range(n) if a[i] == x} for x in set(a)}
    members_b = {y: {i for i in range(n) if b[i] == y} for y in set(b)}
    many = sum(max(len(ma & mb) for mb in members_b.values()) for ma in members_a.values()) / n
    assert m.many_to_one(a, b) == pytest.approx(many, abs=1e-12)
    shen = 0.0
    for mb in members_b.values():
        best = 0.0
        for ma in members_a.values():
            common = len(ma & mb)
            if common:
                precision, recall = common / len(ma), common / len(mb)
                best = max(best, 2 * precision * recall / (precision + recall))
        shen += len(mb) / n * best
    assert m.shen_f1(a, b) == pytest.approx(shen, abs=1e-12)


@pytest.mark.parametrize(("a", "b"), cases(60, seed=12))
def test_cohen_kappa_matches_scikit_learn(a: list[int], b: list[int]) -> None:
    ours = m.cohen_kappa(a, b)
    theirs = cohen_kappa_score(a, b) if len(set(a) | set(b)) > 1 else math.nan
    if ours is None:
        assert math.isnan(theirs)
    else:
        assert ours == pytest.approx(theirs, abs=1e-9)


# --- categorical measures by hand ---------------------------------------------------------------------------------


def test_percent_agreement_and_cohen_kappa_by_hand() -> None:
    a = ["pos", "pos", "neg", "neg", "neu", "pos"]
    b = ["pos", "neg", "neg", "neg", "neu", "pos"]
    assert m.percent_agreement(a, b) == approx(5 / 6)
    assert m.cohen_kappa(a, b) == approx(17 / 23)  # p_e = (3*2 + 2*3 + 1*1) / 36 = 13/36


def test_the_documented_three_annotator_example_with_a_missing_label() -> None:
    units = [
        {"a": "pos", "b": "pos", "c": "pos"},
        {"a": "pos", "b": "neg", "c": "neg"},
        {"a": "neg", "b": "neg"},
        {"a": "neu", "b": "pos", "c": "neg"},
    ]
    # P_i = 1, 1/3, 1, 0; P_e = (5^2 + 5^2 + 1^2) / 11^2; coincidences give D_o = 5, D_e = 70 / 10.
    assert m.fleiss_kappa(units) == approx((7 / 12 - 51 / 121) / (1 - 51 / 121))
    assert m.krippendorff_alpha(units) == approx(1 - 5 / 7)


def test_fleiss_kappa_of_fleiss_classic_table() -> None:
    # Ten subjects, fourteen raters, five categories (Fleiss 1971, as reproduced on Wikipedia): kappa = 0.210.
    table = [
        [0, 0, 0, 0, 14],
        [0, 2, 6, 4, 2],
        [0, 0, 3, 5, 6],
        [0, 3, 9, 2, 0],
        [2, 2, 8, 1, 1],
        [7, 7, 0, 0, 0],
        [3, 2, 6, 3, 0],
        [2, 5, 3, 2, 2],
        [6, 5, 2, 1, 0],
        [0, 2, 2, 3, 7],
    ]
    units = []
    for row in table:
        labels = [category for category, count in enumerate(row) for _ in range(count)]
        units.append({f"rater{index}": label for index, label in enumerate(labels)})
    assert m.fleiss_kappa(units) == pytest.approx(0.20993, abs=5e-5)


KRIPPENDORFF_RELIABILITY_DATA = {
    # Krippendorff (2011), "Computing Krippendorff's alpha-reliability": 4 observers, 12 units, None = missing.
    "A": [1, 2, 3, 3, 2, 1, 4, 1, 2, None, None, None],
    "B": [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, None, 3],
    "C": [None, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, None],
    "D": [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, None],
}


def reliability_units() -> list[dict[str, int]]:
    units = []
    for index in range(12):
        units.append(
            {
                observer: values[index]
                for observer, values in KRIPPENDORFF_RELIABILITY_DATA.items()
                if values[index] is not None
            }
        )
    return units  # type: ignore[return-value]


def test_krippendorff_alpha_of_krippendorffs_own_example_with_missing_values() -> None:
    assert m.krippendorff_alpha(reliability_units()) == pytest.approx(0.743, abs=5e-4)


def test_krippendorff_alpha_matches_its_pairwise_definition() -> None:
    # D_o: disagreeing pairs within units (each unit's pairs weighted 1/(m-1)); D_e: disagreeing pairs among all
    # pairable values, ignoring units. Computed here by enumerating pairs instead of a coincidence matrix.
    units = [list(unit.values()) for unit in reliability_units() if len(unit) >= 2]
    n = sum(len(values) for values in units)
    observed = sum(2 * (x != y) / (len(values) - 1) for values in units for x, y in combinations(values, 2)) / n
    pooled = [value for values in units for value in values]
    expected = sum(2 * (x != y) for x, y in combinations(pooled, 2)) / (n * (n - 1))
    assert m.krippendorff_alpha(reliability_units()) == pytest.approx(1 - observed / expected, abs=1e-12)


def test_fleiss_kappa_leaves_out_units_with_fewer_than_two_labels() -> None:
    complete = [{"a": 1, "b": 1}, {"a": 2, "b": 2}, {"a": 1, "b": 2}]
    assert m.fleiss_kappa([*complete, {"a": 1}, {}]) == m.fleiss_kappa(complete)


# --- edge cases ---------------------------------------------------------------------------------------------------


def test_identical_partitions_agree_perfectly_whatever_the_names() -> None:
    a = [1, 1, 2, 3, 3, 3]
    b = ["u", "u", "v", "w", "w", "w"]
    measures = m.clustering_measures(a, b)
    assert measures["variation_of_information"] == 0.0
    assert measures["normalized_variation_of_information"] == 0.0
    for key in ("one_to_one", "many_to_one", "many_to_one_reverse", "local_agreement", "adjusted_rand_index"):
        assert measures[key] == 1.0, key
    assert measures["exact_match_f1"] == 1.0
    assert measures["shen_f1"] == 1.0


def test_everything_in_one_thread_against_a_finer_partition() -> None:
    one = [0] * 6
    finer = [1, 1, 1, 2, 2, 2]
    assert m.one_to_one(one, finer) == approx(0.5)
    assert m.many_to_one(one, finer) == approx(0.5)
    assert m.many_to_one(finer, one) == 1.0  # every fine thread maps into the one thread
    assert m.adjusted_rand_index(one, finer) == approx(adjusted_rand_score(one, finer))
    assert m.adjusted_rand_index(one, finer) == 0.0
    assert m.variation_of_information(one, finer) == approx(1.0)  # H(finer | one) = 1 bit, H(one | finer) = 0
    assert m.exact_match(one, finer) == m.ExactMatch(0.0, 0.0, 0.0)


def test_both_annotators_putting_everything_in_one_thread() -> None:
    one = [0] * 5
    assert m.adjusted_rand_index(one, [9] * 5) == 1.0
    assert m.exact_match(one, [9] * 5) == m.ExactMatch(1.0, 1.0, 1.0)
    assert m.cohen_kappa(one, one) is None  # chance agreement is 1: kappa undefined
    assert m.krippendorff_alpha([{"a": 0, "b": 0}] * 5) is None


def test_singletons_only() -> None:
    singles = [1, 2, 3, 4]
    other = [5, 6, 7, 8]
    assert m.one_to_one(singles, other) == 1.0
    assert m.adjusted_rand_index(singles, other) == 1.0
    assert m.variation_of_information(singles, other) == 0.0
    # No conversation of two or more messages on either side: exact match has nothing to count.
    assert m.exact_match(singles, other) == m.ExactMatch(None, None, None)
    assert m.exact_match(singles, [1, 1, 2, 2]) == m.ExactMatch(None, 0.0, None)
    assert m.adjusted_rand_index(singles, [1, 1, 1, 1]) == approx(adjusted_rand_score(singles, [1, 1, 1, 1]))


def test_a_single_item() -> None:
    measures = m.clustering_measures(["x"], ["y"])
    assert measures["one_to_one"] == 1.0
    assert measures["many_to_one"] == 1.0
    assert measures["local_agreement"] is None  # no pair of items to compare
    assert measures["variation_of_information"] == 0.0
    assert measures["normalized_variation_of_information"] == 0.0
    assert measures["adjusted_rand_index"] == 1.0
    assert measures["exact_match_f1"] is None
    assert measures["shen_f1"] == 1.0
    assert m.percent_agreement(["x"], ["x"]) == 1.0
    assert m.fleiss_kappa([{"a": "x", "b": "y"}]) == approx(-1.0)


def test_disjoint_item_sets_share_nothing_to_measure() -> None:
    order = ["t1", "t2", "t3", "t4"]
    items, a, b = m.paired({"t1": 1, "t2": 1}, {"t3": 1, "t4": 2}, order)
    assert items == a == b == []
    assert all(value is None for value in m.clustering_measures(a, b).values())
    assert m.percent_agreement(a, b) is None
    assert m.cohen_kappa(a, b) is None
    assert m.krippendorff_alpha([{"a": 1}, {"a": 1}, {"b": 1}, {"b": 2}]) is None
    assert m.fleiss_kappa([{"a": 1}, {"b": 2}]) is None


def test_paired_keeps_the_common_items_in_order() -> None:
    items, a, b = m.paired({"t3": "x", "t1": "y", "t2": "z"}, {"t2": "p", "t3": "q"}, ["t1", "t2", "t3"])
    assert (items, a, b) == (["t2", "t3"], ["z", "x"], ["p", "q"])


def test_labellings_of_different_lengths_are_refused() -> None:
    with pytest.raises(m.LengthMismatch):
        m.one_to_one([1, 2], [1])
    with pytest.raises(m.LengthMismatch):
        m.local_agreement([1, 2], [1])
    with pytest.raises(ValueError, match="window"):
        m.local_agreement([1, 2], [1, 2], 0)
