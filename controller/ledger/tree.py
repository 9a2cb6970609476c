"""RFC 9162 Merkle tree hashing, proofs and their verification.

Leaf hash SHA-256(0x00 ‖ entry), node hash SHA-256(0x01 ‖ left ‖ right); a tree of n > 1
leaves splits at k, the largest power of two below n; the empty tree's root is SHA-256("").

Hashes come from a `Subtrees` source: the hash of the *complete* subtree of 2**level leaves
starting at leaf ``index << level``. Those never change once complete, so a store can keep
them (controller.ledger.store does, in SQLite) and any root or proof needs O(log² n) look-ups
instead of rehashing the whole log. Every node of the RFC tree is either such a complete,
aligned subtree or the right edge ``[start, n)``, which `range_hash` folds from the complete
subtrees it is made of.

Hand-written rather than pymerkle: the proofs that leave the controller must be RFC 9162's
PATH and PROOF lists (pymerkle's consistency path differs), the leaves must live in the
controller's own SQLite in the caller's transaction, and the RFC algorithms are a few lines.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Protocol

EMPTY_ROOT = hashlib.sha256(b"").digest()
HASH_SIZE = 32


class Subtrees(Protocol):
    """Where complete-subtree hashes come from (level 0: leaf hashes)."""

    def subtree(self, level: int, index: int) -> bytes:
        """Hash of leaves [index << level, (index + 1) << level), all of them present."""
        ...


def leaf_hash(entry: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + entry).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def split_point(n: int) -> int:
    """k, the largest power of two smaller than n (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


def range_hash(src: Subtrees, start: int, end: int) -> bytes:
    """MTH(D[start:end]) for a node of the RFC tree (start aligned to the range's top block)."""
    blocks: list[bytes] = []
    while start < end:  # greedy: the binary digits of (end - start), largest block first
        level = (end - start).bit_length() - 1
        blocks.append(src.subtree(level, start >> level))
        start += 1 << level
    if not blocks:
        return EMPTY_ROOT
    acc = blocks[-1]
    for block in reversed(blocks[:-1]):
        acc = node_hash(block, acc)
    return acc


def root(src: Subtrees, size: int) -> bytes:
    """Root of the tree of the first `size` leaves."""
    return range_hash(src, 0, size)


def inclusion_proof(src: Subtrees, index: int, size: int) -> list[bytes]:
    """RFC 9162 §2.1.3.1 PATH(index, D[size]): sibling hashes, leaf level first."""
    if not 0 <= index < size:
        raise ValueError(f"leaf {index} is not in a tree of {size} leaves")
    path: list[bytes] = []
    start, end = 0, size
    while end - start > 1:
        k = split_point(end - start)
        if index < start + k:  # PATH(m, D[0:k]) : MTH(D[k:n])
            path.append(range_hash(src, start + k, end))
            end = start + k
        else:  # PATH(m - k, D[k:n]) : MTH(D[0:k])
            path.append(range_hash(src, start, start + k))
            start += k
    path.reverse()
    return path


def consistency_proof(src: Subtrees, old: int, new: int) -> list[bytes]:
    """RFC 9162 §2.1.4.1 PROOF(old, D[new]); empty when old is 0 or equals new."""
    if not 0 <= old <= new:
        raise ValueError(f"no consistency proof from size {old} to size {new}")
    if old in (0, new):
        return []
    proof: list[bytes] = []
    start, end, m, complete = 0, new, old, True
    while m != end - start:
        k = split_point(end - start)
        if m <= k:  # SUBPROOF(m, D[0:k], b) : MTH(D[k:n])
            proof.append(range_hash(src, start + k, end))
            end = start + k
        else:  # SUBPROOF(m - k, D[k:n], false) : MTH(D[0:k])
            proof.append(range_hash(src, start, start + k))
            start, m, complete = start + k, m - k, False
    if not complete:  # SUBPROOF(m, D[m], false) = {MTH(D[m])}
        proof.append(range_hash(src, start, end))
    proof.reverse()
    return proof


def verify_inclusion(index: int, size: int, leaf: bytes, path: Sequence[bytes],
                     root_hash: bytes) -> bool:
    """RFC 9162 §2.1.3.2: does `path` prove leaf hash `leaf` at `index` under `root_hash`?"""
    if not 0 <= index < size:
        return False
    fn, sn, r = index, size - 1, leaf
    for p in path:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while fn and not fn & 1:
                fn, sn = fn >> 1, sn >> 1
        else:
            r = node_hash(r, p)
        fn, sn = fn >> 1, sn >> 1
    return sn == 0 and r == root_hash


def verify_consistency(old: int, new: int, old_root: bytes, new_root: bytes,
                       proof: Sequence[bytes]) -> bool:
    """RFC 9162 §2.1.4.2, plus its trivial cases: equal sizes need equal roots and no proof;
    the empty tree is a prefix of every tree."""
    if not 0 <= old <= new:
        return False
    if old == new:
        return not proof and old_root == new_root
    if old == 0:
        return not proof
    if not proof:
        return False
    path = list(proof)
    if old & (old - 1) == 0:  # old is a power of two: its root is the first node
        path.insert(0, old_root)
    fn, sn = old - 1, new - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr, sr = node_hash(c, fr), node_hash(c, sr)
            while fn and not fn & 1:
                fn, sn = fn >> 1, sn >> 1
        else:
            sr = node_hash(sr, c)
        fn, sn = fn >> 1, sn >> 1
    return fr == old_root and sr == new_root and sn == 0


def new_nodes(src: Subtrees, size: int,
              leaves: Sequence[bytes]) -> list[tuple[int, int, bytes]]:
    """The complete subtrees (level >= 1) that appending `leaves` to a tree of `size` closes.

    Each leaf closes one subtree per trailing 1 bit of its index; older left siblings
    come from `src` (the right edge of the existing tree: O(log n) look-ups per batch).
    """
    made: dict[tuple[int, int], bytes] = {}
    out: list[tuple[int, int, bytes]] = []
    for i, h in enumerate(leaves):
        level, index, node = 0, size + i, h
        made[(0, index)] = h
        while index & 1:
            left = made.get((level, index - 1))
            if left is None:
                left = src.subtree(level, index - 1)
            node = node_hash(left, node)
            level, index = level + 1, index >> 1
            made[(level, index)] = node
            out.append((level, index, node))
    return out


class MemoryTree:
    """Every complete subtree of a list of leaf hashes, in memory (O(n) hashes to build)."""

    def __init__(self, leaves: Sequence[bytes]) -> None:
        self.levels: list[list[bytes]] = [list(leaves)]
        while len(self.levels[-1]) > 1:
            below = self.levels[-1]
            self.levels.append([node_hash(below[i], below[i + 1])
                                for i in range(0, len(below) - 1, 2)])

    @property
    def size(self) -> int:
        return len(self.levels[0])

    def subtree(self, level: int, index: int) -> bytes:
        return self.levels[level][index]


def frontier_blocks(size: int) -> list[tuple[int, int]]:
    """The complete subtrees (level, index) that make up the first `size` leaves, largest
    first: all a verifier needs of them to extend the tree (a partial export carries these)."""
    out: list[tuple[int, int]] = []
    start = 0
    while start < size:
        level = (size - start).bit_length() - 1
        out.append((level, start >> level))
        start += 1 << level
    return out


def frontier(src: Subtrees, size: int) -> list[bytes]:
    """The hashes of `frontier_blocks(size)`."""
    return [src.subtree(level, index) for level, index in frontier_blocks(size)]


class PrefixTree:
    """The leaves from `start` on, after the first `start` leaves known only by their
    frontier hashes: roots of every size >= start, and the proofs between them."""

    def __init__(self, start: int, prefix: Sequence[bytes], leaves: Sequence[bytes]) -> None:
        blocks = frontier_blocks(start)
        if len(prefix) != len(blocks):
            raise ValueError(f"a prefix of {start} leaves is {len(blocks)} subtree hashes, "
                             f"not {len(prefix)}")
        self.start, self.leaves = start, list(leaves)
        self.known: dict[tuple[int, int], bytes] = dict(zip(blocks, prefix, strict=True))

    @property
    def size(self) -> int:
        return self.start + len(self.leaves)

    def subtree(self, level: int, index: int) -> bytes:
        got = self.known.get((level, index))
        if got is not None:
            return got
        first = index << level
        if first + (1 << level) > self.size:
            raise ValueError(f"subtree ({level}, {index}) is not complete in {self.size} leaves")
        if level == 0:
            if first < self.start:
                raise ValueError(f"leaf {first} precedes this tree's first leaf {self.start}")
            return self.leaves[first - self.start]
        # computed once: roots of successive checkpoints share most of their subtrees
        h = node_hash(self.subtree(level - 1, 2 * index), self.subtree(level - 1, 2 * index + 1))
        self.known[(level, index)] = h
        return h
