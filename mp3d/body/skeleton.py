"""The SMPL skeleton: 24 joint names and the parent of each joint (-1 for the root)."""

from __future__ import annotations

import numpy as np

SMPL_JOINT_NAMES: tuple[str, ...] = (
    "pelvis",
    "left_hip",
    "right_hip",
    "spine1",
    "left_knee",
    "right_knee",
    "spine2",
    "left_ankle",
    "right_ankle",
    "spine3",
    "left_foot",
    "right_foot",
    "neck",
    "left_collar",
    "right_collar",
    "head",
    "left_shoulder",
    "right_shoulder",
    "left_elbow",
    "right_elbow",
    "left_wrist",
    "right_wrist",
    "left_hand",
    "right_hand",
)

SMPL_PARENTS: tuple[int, ...] = (
    -1,
    0,
    0,
    0,
    1,
    2,
    3,
    4,
    5,
    6,
    7,
    8,
    9,
    9,
    9,
    12,
    13,
    14,
    16,
    17,
    18,
    19,
    20,
    21,
)

# The parent id that official SMPL files store for the root (uint32 -1).
ROOT_PARENT_ID = 4294967295


def kintree_table(parents: tuple[int, ...] = SMPL_PARENTS) -> np.ndarray:
    """The [2,J] int64 kinematic tree of official files: parent ids (root: 2^32-1) over ids."""
    table = np.empty((2, len(parents)), dtype=np.int64)
    table[0] = [ROOT_PARENT_ID if p < 0 else p for p in parents]
    table[1] = np.arange(len(parents))
    return table


def parents_from_kintree(table: np.ndarray) -> np.ndarray:
    """Parent index [J] (int64, -1 for the root) from a [2,J] kinematic tree table.

    Joints are the table's columns in order; row 1 holds their ids and row 0 their parents'
    ids. Exactly one joint, the first, may have a parent id that names no joint (the root),
    and every other joint's parent must come before it, so that one pass in order poses them.
    """
    table = np.asarray(table)
    if table.ndim != 2 or table.shape[0] != 2 or table.shape[1] == 0:
        raise ValueError(f"kintree_table must have shape [2, J>0], got {list(table.shape)}")
    ids = [int(i) for i in table[1]]
    if len(set(ids)) != len(ids):
        raise ValueError("kintree_table: joint ids (row 1) must be distinct")
    column = {joint_id: j for j, joint_id in enumerate(ids)}
    parents = np.array([column.get(int(p), -1) for p in table[0]], dtype=np.int64)
    if parents[0] != -1:
        raise ValueError(
            "kintree_table: the first joint must be the root (its parent id "
            f"must name no joint), got parent {int(table[0, 0])}"
        )
    for j in range(1, len(parents)):
        if not 0 <= parents[j] < j:
            raise ValueError(
                f"kintree_table: joint {j} (id {ids[j]}) must have a parent among the joints "
                f"before it, got parent id {int(table[0, j])}"
            )
    return parents
