"""Agreement of a modality's kNN item graph with the co-interaction graph (graphs.agreement), by hand."""
import numpy as np
import scipy.sparse as sp

from mmdenoise.graphs.agreement import item_cooccurrence, modality_agreement, neighbour_overlap

# users 0, 1 consume items {0, 1}; users 2, 3 consume items {2, 3}: each item's one co-neighbour is its pair
USERS = np.array([0, 0, 1, 1, 2, 2, 3, 3])
ITEMS = np.array([0, 1, 0, 1, 2, 3, 2, 3])


def test_item_cooccurrence_pairs():
    graph = item_cooccurrence(USERS, ITEMS, 4, 4, k=1).toarray()
    assert np.array_equal(graph, np.array([[0, 2, 0, 0], [2, 0, 0, 0], [0, 0, 0, 2], [0, 0, 2, 0]]))


def test_features_that_pair_items_like_users_do_agree_fully():
    agreeing = np.array([[1, 0.1], [1, 0.2], [0.1, 1], [0.2, 1]], dtype=np.float32)
    result = modality_agreement(agreeing, USERS, ITEMS, 4, 4, k=1)
    assert result == {"k": 1, "overlap": 1.0, "chance": 1 / 3, "lift": 3.0}
    # features pairing 0 with 2 and 1 with 3 find none of the co-interaction neighbours
    crossed = np.array([[1, 0.1], [0.1, 1], [1, 0.2], [0.2, 1]], dtype=np.float32)
    assert modality_agreement(crossed, USERS, ITEMS, 4, 4, k=1)["overlap"] == 0.0


def test_overlap_divides_by_the_neighbours_that_exist_and_skips_items_without_any():
    # item 0: co-neighbours {1, 2}, feature neighbours {1, 3} -> 1 / min(3, 2) = 0.5
    # item 1: one co-neighbour {0}, found -> 1 / 1; item 2: no co-neighbour -> not averaged
    features = sp.csr_matrix(np.array([[0, 1, 0, 1], [1, 0, 1, 1], [1, 1, 0, 1], [1, 1, 1, 0]]))
    cooc = sp.csr_matrix(np.array([[0, 3, 1, 0], [2, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]]))
    assert neighbour_overlap(features, cooc, k=3) == 0.75
    assert np.isnan(neighbour_overlap(features, sp.csr_matrix((4, 4)), k=3))
