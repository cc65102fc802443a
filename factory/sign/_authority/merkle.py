"""RFC 6962 Merkle tree: root hashes, inclusion and consistency proofs.

The proofs have the shape Rekor v1 serves and sigstore-python verifies
(hashes ordered from the leaf upwards). Hashes of complete, aligned subtrees
never change once their leaves exist, so they are cached: a proof costs
O(log² n) hash look-ups instead of rehashing the whole log.
"""

from __future__ import annotations

import hashlib

LEAF_PREFIX = b"\x00"
NODE_PREFIX = b"\x01"


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(LEAF_PREFIX + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(NODE_PREFIX + left + right).digest()


def _split(size: int) -> int:
    """The largest power of two strictly smaller than ``size`` (size >= 2)."""
    return 1 << ((size - 1).bit_length() - 1)


class MerkleTree:
    """An append-only list of leaf hashes with RFC 6962 proofs over any prefix."""

    def __init__(self) -> None:
        self._leaves: list[bytes] = []
        self._perfect: dict[tuple[int, int], bytes] = {}

    def __len__(self) -> int:
        return len(self._leaves)

    def append(self, leaf: bytes) -> int:
        self._leaves.append(leaf)
        return len(self._leaves) - 1

    def _hash(self, start: int, size: int) -> bytes:
        """MTH of leaves[start:start+size]."""
        if size == 1:
            return self._leaves[start]
        perfect = size & (size - 1) == 0
        if perfect and (start, size) in self._perfect:
            return self._perfect[(start, size)]
        k = _split(size)
        digest = node_hash(self._hash(start, k), self._hash(start + k, size - k))
        if perfect:
            self._perfect[(start, size)] = digest
        return digest

    def node(self, height: int, index: int) -> bytes:
        """The hash of the complete subtree of 2**height leaves numbered ``index`` at that
        height (height 0: the leaf hash itself), as a tlog tile holds it."""
        start, size = index << height, 1 << height
        if start + size > len(self):
            raise ValueError(f"no complete subtree {index} at height {height} in a tree "
                             f"of size {len(self)}")
        return self._hash(start, size)

    def root(self, size: int | None = None) -> bytes:
        size = len(self) if size is None else size
        self._check_size(size)
        if size == 0:
            return hashlib.sha256(b"").digest()
        return self._hash(0, size)

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        size = len(self) if size is None else size
        self._check_size(size)
        if not 0 <= index < size:
            raise ValueError(f"leaf {index} is not in a tree of size {size}")
        return self._path(index, 0, size)

    def _path(self, index: int, start: int, size: int) -> list[bytes]:
        if size == 1:
            return []
        k = _split(size)
        if index < k:
            return [*self._path(index, start, k), self._hash(start + k, size - k)]
        return [*self._path(index - k, start + k, size - k), self._hash(start, k)]

    def consistency_proof(self, first: int, second: int | None = None) -> list[bytes]:
        second = len(self) if second is None else second
        self._check_size(second)
        if not 0 < first <= second:
            raise ValueError(f"no consistency proof from size {first} to size {second}")
        return self._subproof(first, 0, second, True)

    def _subproof(self, m: int, start: int, size: int, complete: bool) -> list[bytes]:
        if m == size:
            return [] if complete else [self._hash(start, size)]
        k = _split(size)
        if m <= k:
            return [*self._subproof(m, start, k, complete), self._hash(start + k, size - k)]
        return [*self._subproof(m - k, start + k, size - k, False), self._hash(start, k)]

    def _check_size(self, size: int) -> None:
        if not 0 <= size <= len(self):
            raise ValueError(f"tree size {size} is outside the log (size {len(self)})")


def root_from_inclusion(leaf: bytes, index: int, size: int, proof: list[bytes]) -> bytes:
    """Recompute the root from an inclusion proof (RFC 9162 2.1.3.2)."""
    if not 0 <= index < size:
        raise ValueError("leaf index outside the tree")
    fn, sn, node = index, size - 1, leaf
    for sibling in proof:
        if sn == 0:
            raise ValueError("inclusion proof is too long")
        if fn & 1 or fn == sn:
            node = node_hash(sibling, node)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            node = node_hash(node, sibling)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:
        raise ValueError("inclusion proof is too short")
    return node


def verify_consistency(
    first: int, first_root: bytes, second: int, second_root: bytes, proof: list[bytes]
) -> None:
    """Raise ValueError unless ``proof`` shows tree ``first`` is a prefix of ``second``.

    RFC 9162 2.1.4.2; an equal size needs an empty proof and equal roots.
    """
    if not 0 < first <= second:
        raise ValueError(f"cannot prove size {first} consistent with size {second}")
    if first == second:
        if proof or first_root != second_root:
            raise ValueError("checkpoints of the same size have different roots")
        return
    path = list(proof)
    if first & (first - 1) == 0:  # a power of two: the old root is a node of the new tree
        path.insert(0, first_root)
    if not path:
        raise ValueError("empty consistency proof")
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise ValueError("consistency proof is too long")
        if fn & 1 or fn == sn:
            fr, sr = node_hash(c, fr), node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            sr = node_hash(sr, c)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:
        raise ValueError("consistency proof is too short")
    if fr != first_root:
        raise ValueError("consistency proof does not lead to the older checkpoint's root")
    if sr != second_root:
        raise ValueError("consistency proof does not lead to the newer checkpoint's root")
