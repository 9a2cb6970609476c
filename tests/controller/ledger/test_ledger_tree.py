"""RFC 9162 tree: known roots and proofs, and every proof up to 40 leaves checked by an
implementation written here from the RFC text (nothing of it imported from the library)."""

from __future__ import annotations

import hashlib
import random

import pytest

from controller.ledger import tree

# RFC 6962 test data (certificate-transparency, transparency-dev/merkle): leaf inputs and the
# roots of the first n of them.
LEAVES = [b"", b"\x00", b"\x10", b"\x20\x21", b"\x30\x31", b"\x40\x41\x42\x43",
          bytes(range(0x50, 0x58)), bytes(range(0x60, 0x70))]
ROOTS = [
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]
H96, H5F, H6B = ("96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                 "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                 "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4")
HBC, HCA, H0E = ("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
                 "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                 "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a")
INCLUSION = [(0, 8, [H96, H5F, H6B]), (5, 8, [HBC, HCA, ROOTS[4]]), (2, 3, [ROOTS[2]]),
             (1, 5, [ROOTS[1], H5F, HBC])]
CONSISTENCY = [(1, 1, []), (1, 8, [H96, H5F, H6B]), (6, 8, [H0E, HCA, ROOTS[4]]),
               (2, 5, [H5F, HBC])]


# ---- written from RFC 9162 §2.1.1, §2.1.3.1, §2.1.4.1 (definitions, by recursion) ----

def sha(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def mth(d: list[bytes]) -> bytes:
    n = len(d)
    if n == 0:
        return sha(b"")
    if n == 1:
        return sha(b"\x00" + d[0])
    k = 1
    while k * 2 < n:
        k *= 2
    return sha(b"\x01" + mth(d[:k]) + mth(d[k:]))


def path(m: int, d: list[bytes]) -> list[bytes]:
    n = len(d)
    if n == 1:
        return []
    k = 1
    while k * 2 < n:
        k *= 2
    if m < k:
        return [*path(m, d[:k]), mth(d[k:])]
    return [*path(m - k, d[k:]), mth(d[:k])]


def subproof(m: int, d: list[bytes], b: bool) -> list[bytes]:
    n = len(d)
    if m == n:
        return [] if b else [mth(d)]
    k = 1
    while k * 2 < n:
        k *= 2
    if m <= k:
        return [*subproof(m, d[:k], b), mth(d[k:])]
    return [*subproof(m - k, d[k:], False), mth(d[:k])]


# ---- written from RFC 9162 §2.1.3.2 and §2.1.4.2 (verification), step by step ----

def rfc_verify_inclusion(leaf_index: int, tree_size: int, inclusion_path: list[bytes],
                         hash_: bytes, root_hash: bytes) -> bool:
    # 1. Compare leaf_index against tree_size. If leaf_index >= tree_size, fail.
    if leaf_index >= tree_size:
        return False
    # 2. Set fn to leaf_index and sn to tree_size - 1.
    fn, sn = leaf_index, tree_size - 1
    # 3. Set r to hash.
    r = hash_
    # 4. For each value p in the inclusion_path array:
    for p in inclusion_path:
        # a. If sn is 0, then stop the iteration and fail the proof verification.
        if sn == 0:
            return False
        # b. If LSB(fn) is set, or if fn is equal to sn, then:
        if fn % 2 == 1 or fn == sn:
            # 1. Set r to HASH(0x01 || p || r).
            r = sha(b"\x01" + p + r)
            # 2. If LSB(fn) is not set, then right-shift both fn and sn equally until
            #    either LSB(fn) is set or fn is 0.
            if fn % 2 == 0:
                while not (fn % 2 == 1 or fn == 0):
                    fn //= 2
                    sn //= 2
        # Otherwise: Set r to HASH(0x01 || r || p).
        else:
            r = sha(b"\x01" + r + p)
        # c. Finally, right-shift both fn and sn one time.
        fn //= 2
        sn //= 2
    # 5. Compare sn to 0. Compare r against the root_hash. If sn is equal to 0 and r and
    #    the root_hash are equal, then the log has proven the inclusion of hash.
    return sn == 0 and r == root_hash


def rfc_verify_consistency(first: int, second: int, consistency_path: list[bytes],
                           first_hash: bytes, second_hash: bytes) -> bool:
    # 1. If consistency_path is an empty array, stop and fail the proof verification.
    if not consistency_path:
        return False
    # 2. If first is an exact power of 2, then prepend first_hash to the consistency_path.
    if first & (first - 1) == 0:
        consistency_path = [first_hash, *consistency_path]
    # 3. Set fn to first - 1 and sn to second - 1.
    fn, sn = first - 1, second - 1
    # 4. If LSB(fn) is set, then right-shift both fn and sn equally until LSB(fn) is not set.
    while fn % 2 == 1:
        fn //= 2
        sn //= 2
    # 5. Set both fr and sr to the first value in the consistency_path array.
    fr = sr = consistency_path[0]
    # 6. For each subsequent value c in the consistency_path array:
    for c in consistency_path[1:]:
        # a. If sn is 0, then stop the iteration and fail the proof verification.
        if sn == 0:
            return False
        # b. If LSB(fn) is set, or if fn is equal to sn, then:
        if fn % 2 == 1 or fn == sn:
            # 1. Set fr to HASH(0x01 || c || fr). 2. Set sr to HASH(0x01 || c || sr).
            fr = sha(b"\x01" + c + fr)
            sr = sha(b"\x01" + c + sr)
            # 3. If LSB(fn) is not set, then right-shift both fn and sn equally until
            #    either LSB(fn) is set or fn is 0.
            if fn % 2 == 0:
                while not (fn % 2 == 1 or fn == 0):
                    fn //= 2
                    sn //= 2
        # Otherwise: Set sr to HASH(0x01 || sr || c).
        else:
            sr = sha(b"\x01" + sr + c)
        # c. Finally, right-shift both fn and sn one time.
        fn //= 2
        sn //= 2
    # 7. Verify that fr equals first_hash, sr equals second_hash, and sn is 0.
    return fr == first_hash and sr == second_hash and sn == 0


DATA = [f"entry {i}".encode() for i in range(40)]
MEM = tree.MemoryTree([tree.leaf_hash(d) for d in DATA])


def test_tree_roots_match_rfc6962_test_data() -> None:
    t = tree.MemoryTree([tree.leaf_hash(x) for x in LEAVES])
    assert [tree.root(t, n).hex() for n in range(9)] == ROOTS
    assert [mth(LEAVES[:n]).hex() for n in range(9)] == ROOTS  # the reference agrees too


@pytest.mark.parametrize(("index", "size", "expected"), INCLUSION)
def test_tree_inclusion_proofs_match_known_paths(index: int, size: int,
                                                 expected: list[str]) -> None:
    t = tree.MemoryTree([tree.leaf_hash(x) for x in LEAVES])
    assert [h.hex() for h in tree.inclusion_proof(t, index, size)] == expected


@pytest.mark.parametrize(("old", "new", "expected"), CONSISTENCY)
def test_tree_consistency_proofs_match_known_proofs(old: int, new: int,
                                                    expected: list[str]) -> None:
    t = tree.MemoryTree([tree.leaf_hash(x) for x in LEAVES])
    assert [h.hex() for h in tree.consistency_proof(t, old, new)] == expected


def test_tree_roots_equal_the_rfc_definition_up_to_40_leaves() -> None:
    for n in range(41):
        assert tree.root(MEM, n) == mth(DATA[:n]), n


def test_tree_inclusion_proofs_are_rfc_path_and_verify_independently() -> None:
    for n in range(1, 41):
        root = mth(DATA[:n])
        for m in range(n):
            proof = tree.inclusion_proof(MEM, m, n)
            assert proof == path(m, DATA[:n]), (m, n)
            leaf = sha(b"\x00" + DATA[m])
            assert rfc_verify_inclusion(m, n, proof, leaf, root), (m, n)
            assert tree.verify_inclusion(m, n, leaf, proof, root), (m, n)


def test_tree_consistency_proofs_are_rfc_proof_and_verify_independently() -> None:
    for n in range(1, 41):
        new_root = mth(DATA[:n])
        for m in range(1, n + 1):
            proof = tree.consistency_proof(MEM, m, n)
            assert proof == subproof(m, DATA[:n], True), (m, n)
            old_root = mth(DATA[:m])
            if m < n:  # the RFC algorithm fails an empty path: equal sizes need no proof
                assert rfc_verify_consistency(m, n, proof, old_root, new_root), (m, n)
            assert tree.verify_consistency(m, n, old_root, new_root, proof), (m, n)


def _mutations(proof: list[bytes]) -> list[list[bytes]]:
    out = [proof[:-1], [*proof, proof[0]]] if proof else [[b"\x00" * 32]]
    for i in range(len(proof)):
        flipped = bytearray(proof[i])
        flipped[0] ^= 1
        out.append([*proof[:i], bytes(flipped), *proof[i + 1:]])
    return out


def test_tree_verifiers_reject_altered_inclusion_proofs() -> None:
    for n in range(1, 41):
        root = mth(DATA[:n])
        for m in range(n):
            proof, leaf = tree.inclusion_proof(MEM, m, n), sha(b"\x00" + DATA[m])
            for bad in _mutations(proof):
                assert not tree.verify_inclusion(m, n, leaf, bad, root), (m, n)
                assert not rfc_verify_inclusion(m, n, bad, leaf, root), (m, n)
            other = sha(b"\x00" + b"not the entry")
            assert not tree.verify_inclusion(m, n, other, proof, root)
            assert not tree.verify_inclusion(m, n, leaf, proof, sha(b"other root"))
            if n > 1:
                assert not tree.verify_inclusion((m + 1) % n, n, leaf, proof, root)
            assert not tree.verify_inclusion(n, n, leaf, proof, root)


def test_tree_verifiers_reject_altered_consistency_proofs() -> None:
    for n in range(2, 41):
        new_root = mth(DATA[:n])
        for m in range(1, n):
            proof, old_root = tree.consistency_proof(MEM, m, n), mth(DATA[:m])
            for bad in _mutations(proof):
                assert not tree.verify_consistency(m, n, old_root, new_root, bad), (m, n)
                assert not rfc_verify_consistency(m, n, bad, old_root, new_root), (m, n)
            forked = mth([*DATA[:m - 1], b"forked", *DATA[m:n]])
            assert not tree.verify_consistency(m, n, old_root, forked, proof)
            assert not tree.verify_consistency(m, n, sha(b"x"), new_root, proof)


def test_tree_consistency_trivial_cases() -> None:
    r = mth(DATA[:5])
    assert tree.consistency_proof(MEM, 0, 5) == [] and tree.consistency_proof(MEM, 5, 5) == []
    assert tree.verify_consistency(0, 5, tree.EMPTY_ROOT, r, [])
    assert tree.verify_consistency(5, 5, r, r, [])
    assert not tree.verify_consistency(5, 5, r, mth(DATA[:4]), [])
    assert not tree.verify_consistency(5, 4, r, r, [])
    with pytest.raises(ValueError):
        tree.consistency_proof(MEM, 6, 5)
    with pytest.raises(ValueError):
        tree.inclusion_proof(MEM, 5, 5)


class _Dict:
    def __init__(self) -> None:
        self.nodes: dict[tuple[int, int], bytes] = {}

    def subtree(self, level: int, index: int) -> bytes:
        return self.nodes[(level, index)]


def test_tree_new_nodes_built_in_random_batches_equal_the_full_tree() -> None:
    rng = random.Random(7)
    store, size = _Dict(), 0
    leaves = [tree.leaf_hash(f"x{i}".encode()) for i in range(1000)]
    while size < len(leaves):
        batch = leaves[size:size + rng.randint(1, 70)]
        for level, index, h in tree.new_nodes(store, size, batch):
            store.nodes[(level, index)] = h
        for i, h in enumerate(batch):
            store.nodes[(0, size + i)] = h
        size += len(batch)
        full = tree.MemoryTree(leaves[:size])
        assert tree.root(store, size) == tree.root(full, size)
    assert len([k for k in store.nodes if k[0] > 0]) == 1000 - bin(1000).count("1")
