"""A log built with an independent C2SP implementation (PyPI aics-tlog / aics-witness 0.1.0),
run under its own interpreter (.venv-interop, Python >= 3.12) by test_witness_interop.py.

  interop_aics.py vkey SEED_FILE ORIGIN
      create an Ed25519 log key (seed file) and print the log's vkey
  interop_aics.py feed SEED_FILE ORIGIN WITNESS_URL WITNESS_VKEY SIZES [--fork-at N]
      build a log of max(SIZES) leaves with aics_tlog, and submit a checkpoint of each size
      in turn with aics_witness.feeder.WitnessClient (it verifies every cosignature under
      WITNESS_VKEY itself, and follows 409s); print one JSON object per size:
      {"size", "note", "cosignature"} or {"size", "error", "status"}

Nothing of portwatch is imported here: this is the other side of the wire.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from aics_tlog import (
    Checkpoint,
    MerkleTree,
    format_vkey,
    sign_checkpoint,
    verify_cosignature,
    vkey_from_ed25519,
)
from aics_tlog.note import parse_note, parse_vkey
from aics_witness.feeder import FeederError, WitnessClient, WitnessRejected
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey


def _key(seed_file: str) -> Ed25519PrivateKey:
    path = Path(seed_file)
    if not path.exists():
        path.write_bytes(Ed25519PrivateKey.generate().private_bytes_raw())
    return Ed25519PrivateKey.from_private_bytes(path.read_bytes())


def main(argv: list[str]) -> int:
    cmd, seed_file, origin = argv[0], argv[1], argv[2]
    key = _key(seed_file)
    if cmd == "vkey":
        print(format_vkey(vkey_from_ed25519(origin, key.public_key())))
        return 0
    url, wvkey, sizes = argv[3], argv[4], [int(s) for s in argv[5].split(",")]
    fork_at = int(argv[argv.index("--fork-at") + 1]) if "--fork-at" in argv else None
    leaves = [f"entry {i}".encode() for i in range(max(sizes))]
    if fork_at is not None:
        leaves[fork_at] = b"forged entry"
    tree = MerkleTree(leaves)
    client = WitnessClient(url, wvkey, max_attempts=1)
    wkey = parse_vkey(wvkey)
    for size in sizes:
        note = sign_checkpoint(Checkpoint(origin, size, tree.root(size)), key, origin)
        try:
            lines = client.submit(note.to_bytes(), lambda old, new: tree.consistency_proof(old,
                                                                                          new))
        except WitnessRejected as exc:
            print(json.dumps({"size": size, "status": exc.status, "error": str(exc)}))
            continue
        except FeederError as exc:
            print(json.dumps({"size": size, "status": None, "error": repr(exc)}))
            continue
        sig = parse_note(note.text + "\n" + lines).signatures[0]
        if sig.key_id != wkey.key_id or not verify_cosignature(
                sig.signature, wkey.name, wkey.public_key, origin, size, tree.root(size)):
            print(json.dumps({"size": size, "status": 200, "error": "bad cosignature"}))
            continue
        print(json.dumps({"size": size, "note": note.serialise(), "cosignature": lines}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
