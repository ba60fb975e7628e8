"""Portable Gaussian codebook: counter-based, never stored, bit-identical on numpy-CPU, torch-CPU and CUDA.

Per (seed, SDE step, latent frame) there is a codebook of K atoms; atom k is an i.i.d. ~N(0, 1) vector of
dimension D.  Any atom is generated directly from its coordinates (no sequential state), so encoder tiling,
batching and device have no influence on its values.

Generator (version "GVC-CB1"; everything is arithmetic modulo 2**64 on unsigned 64-bit words)::

    mix(z):  z ^= z >> 30;  z *= 0xBF58476D1CE4E5B9
             z ^= z >> 27;  z *= 0x94D049BB133111EB
             z ^= z >> 31                              # SplitMix64 finaliser (a bijection)

    key(seed, step, frame) = h3, where                 # computed once, in Python integers
        h1 = mix(seed ^ TAG_SEED)
        h2 = mix(h1 + mix(step ^ TAG_STEP))
        h3 = mix(h2 + mix(frame ^ TAG_FRAME))

    atom_key(k)    = mix(key + mix(k ^ TAG_ATOM))      # one per atom
    block_key(j)   = mix(j ^ TAG_BLOCK)                # one per 4-sample block, shared by all atoms/keys
    word(k, j)     = mix(atom_key(k) + block_key(j))   # the 64-bit output for block j of atom k

    atom_k[4*j + w] = TABLE[(word(k, j) >> (16*w)) & 0xFFFF]   for w = 0..3 (low 16 bits first)
    TABLE[i] = float32(NormalDist().inv_cdf((i + 0.5) / 65536))  (computed in float64, cast once)

An atom of dimension D uses blocks j = 0 .. ceil(D/4)-1 and keeps its first D samples (so atoms of
different D with the same coordinates are prefixes of each other; a codec never mixes D within one key).
Step, frame and k enter through their own nonlinear hashes, so no linear seed arithmetic can alias two
codebooks; two distinct (atom, block) pairs of one key can only share a 64-bit word by a birthday-bound
accident, and then only that single word, never a run.

Inputs: ``seed``, ``step``, ``frame`` in [0, 2**64); atom indices in [0, 2**63) (torch's int64).

``combine`` sums the signed atoms sequentially in ascending index order (float32, IEEE adds: identical
everywhere) and divides by the *population* standard deviation (ddof = 0, mean subtracted) of the
fixed-point copy round(z * 2**10) (exact integer sums, one correctly rounded sqrt in Python; relative
difference to torch's float std ~1e-7), applied as one float32 multiply: the noise z is bit-identical on
every device.  The inverse-CDF table is checked against NORMAL_TABLE_SHA256 when first built; a platform
whose libm would give another table raises instead of silently decoding with other atoms.
"""

from __future__ import annotations

import hashlib
import math
import os
import statistics
import sys
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor
import numpy as np
import torch

from gvc.errors import ParameterError

__all__ = [
    "NORMAL_TABLE_SHA256",
    "GENERATOR_VERSION",
    "normal_table",
    "codebook_key",
    "atoms",
    "atoms_reference",
    "CodebookSearch",
    "combine",
]

GENERATOR_VERSION = "GVC-CB1"
NORMAL_TABLE_SHA256 = "1cfbba1e07e34386a57626f82aeb43e6ed54ba70a3ea6b7d964dc66a841074a8"

_MASK64 = (1 << 64) - 1
_M1 = 0xBF58476D1CE4E5B9
_M2 = 0x94D049BB133111EB
TAG_SEED = 0x4756432D43423153  # "GVC-CB1S"
TAG_STEP = 0x9E3779B97F4A7C15
TAG_FRAME = 0xD1B54A32D192ED03
TAG_ATOM = 0x8CB92BA72F3D8DD7
TAG_BLOCK = 0xA0761D6478BD642F

_INDEX_LIMIT = 1 << 63
_TABLE_SIZE = 65536
_FIXED_POINT_BITS = 10  # combine(): std computed exactly from round(z * 2**10)


# ----------------------------------------------------------------------------------------------------------
# scalar reference (pure Python integers)
# ----------------------------------------------------------------------------------------------------------
def _mix_py(z: int) -> int:
    z &= _MASK64
    z ^= z >> 30
    z = (z * _M1) & _MASK64
    z ^= z >> 27
    z = (z * _M2) & _MASK64
    z ^= z >> 31
    return z


def _check_u64(name: str, v) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
        raise ParameterError(f"{name} must be an integer, got {type(v).__name__}")
    v = int(v)
    if not 0 <= v <= _MASK64:
        raise ParameterError(f"{name} must be in [0, 2**64), got {v}")
    return v


def codebook_key(seed: int, step: int, frame: int) -> int:
    """The 64-bit key of the codebook for (seed, SDE step, latent frame)."""
    seed = _check_u64("seed", seed)
    step = _check_u64("step", step)
    frame = _check_u64("frame", frame)
    h = _mix_py(seed ^ TAG_SEED)
    h = _mix_py(h + _mix_py(step ^ TAG_STEP))
    h = _mix_py(h + _mix_py(frame ^ TAG_FRAME))
    return h


# ----------------------------------------------------------------------------------------------------------
# inverse-CDF table
# ----------------------------------------------------------------------------------------------------------
_table_lock = threading.Lock()
_table_np: np.ndarray | None = None
_table_torch: dict[str, torch.Tensor] = {}


def _compute_table() -> np.ndarray:
    nd = statistics.NormalDist()
    vals = [nd.inv_cdf((i + 0.5) / _TABLE_SIZE) for i in range(_TABLE_SIZE)]
    return np.asarray(vals, dtype=np.float64).astype(np.float32)


def _table_sha256(t: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(t, dtype="<f4").tobytes()).hexdigest()


def _normal_table_np() -> np.ndarray:
    global _table_np
    if _table_np is None:
        with _table_lock:
            if _table_np is None:
                t = _compute_table()
                got = _table_sha256(t)
                if got != NORMAL_TABLE_SHA256:
                    raise RuntimeError(
                        "the inverse-CDF table computed on this platform differs from the pinned one "
                        f"(sha256 {got}, expected {NORMAL_TABLE_SHA256}); codebooks would not match "
                        "other decoders, refusing to continue"
                    )
                t.setflags(write=False)
                _table_np = t
    return _table_np


def normal_table(device=None) -> torch.Tensor:
    """float32 [65536]: TABLE[i] = Phi^-1((i + 0.5) / 65536), identical everywhere (pinned SHA-256)."""
    dev = torch.device("cpu" if device is None else device)
    k = str(dev)
    t = _table_torch.get(k)
    if t is None:
        t = torch.from_numpy(_normal_table_np().copy()).to(dev)
        _table_torch[k] = t
    return t


# ----------------------------------------------------------------------------------------------------------
# numpy path (uint64)
# ----------------------------------------------------------------------------------------------------------
_U = np.uint64
_LITTLE = sys.byteorder == "little"


def _mix_np_inplace(z: np.ndarray, t: np.ndarray) -> None:
    """SplitMix64 finaliser on a uint64 array, in place; ``t`` is scratch of the same shape."""
    np.right_shift(z, _U(30), out=t)
    np.bitwise_xor(z, t, out=z)
    np.multiply(z, _U(_M1), out=z)
    np.right_shift(z, _U(27), out=t)
    np.bitwise_xor(z, t, out=z)
    np.multiply(z, _U(_M2), out=z)
    np.right_shift(z, _U(31), out=t)
    np.bitwise_xor(z, t, out=z)


def _mix_np(z: np.ndarray) -> np.ndarray:
    z = np.array(z, dtype=np.uint64, copy=True)
    _mix_np_inplace(z, np.empty_like(z))
    return z


_block_cache: dict[int, np.ndarray] = {}
_block_cache_torch: dict[tuple[int, str], torch.Tensor] = {}


def _block_keys_np(nblocks: int) -> np.ndarray:
    b = _block_cache.get(nblocks)
    if b is None:
        b = _mix_np(np.arange(nblocks, dtype=np.uint64) ^ _U(TAG_BLOCK))
        b.setflags(write=False)
        if len(_block_cache) > 16:
            _block_cache.clear()
        _block_cache[nblocks] = b
    return b


def _atom_keys_np(key: int, idx: np.ndarray) -> np.ndarray:
    a = _mix_np(idx.astype(np.uint64) ^ _U(TAG_ATOM))
    np.add(a, _U(key), out=a)
    _mix_np_inplace(a, np.empty_like(a))
    return a


def _as_index_array(indices) -> np.ndarray:
    if isinstance(indices, torch.Tensor):
        if indices.dtype.is_floating_point or indices.dtype == torch.bool:
            raise ParameterError("atom indices must be integers")
        arr = indices.detach().to("cpu", torch.int64).reshape(-1).numpy()
    elif isinstance(indices, range):
        if len(indices) and (min(indices[0], indices[-1]) < 0 or max(indices[0], indices[-1]) >= _INDEX_LIMIT):
            raise ParameterError("atom indices must be in [0, 2**63)")
        arr = np.arange(indices.start, indices.stop, indices.step, dtype=np.int64)
    else:
        try:
            lst = [int(i) for i in (indices.tolist() if isinstance(indices, np.ndarray) else indices)]
        except (TypeError, ValueError) as e:
            raise ParameterError(f"atom indices must be integers: {e}") from None
        if lst and (min(lst) < 0 or max(lst) >= _INDEX_LIMIT):
            raise ParameterError("atom indices must be in [0, 2**63)")
        arr = np.asarray(lst, dtype=np.int64).reshape(-1)
    if arr.size and (arr.min() < 0):
        raise ParameterError("atom indices must be in [0, 2**63)")
    return arr


def _check_dim(dim) -> int:
    if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)) or int(dim) < 1:
        raise ParameterError(f"dim must be a positive integer, got {dim!r}")
    return int(dim)


class _Scratch:
    """Per-thread scratch for ``rows`` x ``blocks`` words: the uint64 words, and the float32 samples whose
    buffer doubles as the uint64 temporary of the mixing passes (it is only written once mixing is done)."""

    def __init__(self, rows: int, blocks: int):
        self.z = np.empty(rows * blocks, np.uint64)
        self.f = np.empty(rows * blocks * 4, np.float32)

    def views(self, r: int, w: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return (self.z[:r * w].reshape(r, w), self.f.view(np.uint64)[:r * w].reshape(r, w),
                self.f[:r * w * 4].reshape(r, 4 * w))


def _gen_rows_np(akeys: np.ndarray, bkeys: np.ndarray, table: np.ndarray, s: _Scratch) -> np.ndarray:
    """Samples of the blocks ``bkeys`` (block keys, uint64 [w]) of the atoms ``akeys`` (atom keys, uint64 [r])
    into scratch (float32 [r, 4*w]); returns that view."""
    r, w = akeys.shape[0], bkeys.shape[0]
    z, t, f = s.views(r, w)
    np.add(akeys[:, None], bkeys[None, :], out=z)
    _mix_np_inplace(z, t)
    if _LITTLE:
        idx = z.view(np.uint16)  # [r, 4*w], word i of block j at 4*j + i
    else:  # pragma: no cover - big-endian hosts
        idx = np.empty((r, w, 4), np.uint16)
        for i in range(4):
            idx[:, :, i] = (z >> _U(16 * i)) & _U(0xFFFF)
        idx = idx.reshape(r, -1)
    np.take(table, idx, out=f, mode="wrap")  # indices are < 65536: 'wrap' only skips the bounds check
    return f


# Work unit of the numpy path: about this many 64-bit words (24 bytes of scratch each).  One thread: small
# chunks that stay in L2.  Several threads: the GIL taken by each numpy call is the bottleneck, so large
# chunks (measured on a 16-core Xeon VM: 262144 words 1.5e9 normals/s with 16 threads, 65536 words 4e8).
_CHUNK_WORDS_1 = 16384
_CHUNK_WORDS_N = 262144
# Inner products are summed over fixed segments of this many samples (then the segment sums, in float64),
# so their last bits depend on the dimension only, never on the chunking or the thread count.
_SUM_SAMPLES = 4096


def _chunk_plan(nblocks: int, words: int) -> tuple[int, list[tuple[int, int]]]:
    """(rows per chunk, block segments [(j0, j1)]); segments start at multiples of _SUM_SAMPLES / 4."""
    if nblocks <= words:
        return max(1, min(256, words // nblocks)), [(0, nblocks)]
    step = max(1, words // (_SUM_SAMPLES // 4)) * (_SUM_SAMPLES // 4)
    return 1, [(j, min(nblocks, j + step)) for j in range(0, nblocks, step)]


def _default_threads() -> int:
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover
        n = os.cpu_count() or 1
    return max(1, min(n, 16))


_pool_lock = threading.Lock()
_pools: dict[int, ThreadPoolExecutor] = {}


def _pool(n: int) -> ThreadPoolExecutor:
    with _pool_lock:
        p = _pools.get(n)
        if p is None:
            p = ThreadPoolExecutor(max_workers=n, thread_name_prefix="gvc-codebook")
            _pools[n] = p
        return p


def _atoms_np(key: int, idx: np.ndarray, dim: int, threads: int | None = None) -> np.ndarray:
    nb = (dim + 3) // 4
    bkeys = _block_keys_np(nb)
    table = _normal_table_np()
    akeys = _atom_keys_np(key, idx)
    n = idx.shape[0]
    out = np.empty((n, dim), np.float32)
    nt = threads or _default_threads()
    if n * dim < (1 << 20):
        nt = 1
    words = _CHUNK_WORDS_1 if nt == 1 else _CHUNK_WORDS_N
    rc, segs = _chunk_plan(nb, words)
    chunks = [(a, min(n, a + rc), j0, j1) for a in range(0, n, rc) for j0, j1 in segs]

    def run(part):
        s = _Scratch(rc, segs[0][1] - segs[0][0])
        for a, b, j0, j1 in part:
            f = _gen_rows_np(akeys[a:b], bkeys[j0:j1], table, s)
            e = min(dim, 4 * j1)
            out[a:b, 4 * j0:e] = f[:, :e - 4 * j0]

    nt = min(nt, len(chunks))
    if nt <= 1:
        run(chunks)
    else:
        list(_pool(nt).map(run, [chunks[i::nt] for i in range(nt)]))
    return out


# ----------------------------------------------------------------------------------------------------------
# torch path (int64 with masked logical shifts; wrapping multiplication) - runs on CUDA
# ----------------------------------------------------------------------------------------------------------
def _s64(v: int) -> int:
    return v - (1 << 64) if v >= (1 << 63) else v


_M1S = _s64(_M1)
_M2S = _s64(_M2)


def _mix_torch_(z: torch.Tensor) -> torch.Tensor:
    """SplitMix64 finaliser on an int64 tensor (two's complement == uint64 bits), in place."""
    z.bitwise_xor_(z.bitwise_right_shift(30).bitwise_and_((1 << 34) - 1))
    z.mul_(_M1S)
    z.bitwise_xor_(z.bitwise_right_shift(27).bitwise_and_((1 << 37) - 1))
    z.mul_(_M2S)
    z.bitwise_xor_(z.bitwise_right_shift(31).bitwise_and_((1 << 33) - 1))
    return z


def _block_keys_torch(nblocks: int, device: torch.device) -> torch.Tensor:
    k = (nblocks, str(device))
    b = _block_cache_torch.get(k)
    if b is None:
        j = torch.arange(nblocks, dtype=torch.int64, device=device).bitwise_xor_(_s64(TAG_BLOCK))
        b = _mix_torch_(j)
        if len(_block_cache_torch) > 16:
            _block_cache_torch.clear()
        _block_cache_torch[k] = b
    return b


def _atom_keys_torch(key: int, idx: torch.Tensor) -> torch.Tensor:
    a = _mix_torch_(idx.to(torch.int64).bitwise_xor(_s64(TAG_ATOM)))
    a.add_(_s64(key))
    return _mix_torch_(a)


def _gen_rows_torch(akeys: torch.Tensor, bkeys: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    """float32 [r, 4*nblocks] for atom keys ``akeys`` (int64 [r])."""
    z = akeys[:, None] + bkeys[None, :]
    _mix_torch_(z)
    if _LITTLE or z.device.type != "cpu":
        w = z.view(torch.int16).to(torch.int32).bitwise_and_(0xFFFF)
    else:  # pragma: no cover - big-endian CPU
        w = torch.stack([(z >> (16 * i)) & 0xFFFF for i in range(4)], dim=-1).reshape(z.shape[0], -1).int()
    return table[w]


def _atoms_torch(key: int, idx: torch.Tensor, dim: int, device, tile_rows: int | None = None) -> torch.Tensor:
    device = torch.device(device)
    nb = (dim + 3) // 4
    table = normal_table(device)
    bkeys = _block_keys_torch(nb, device)
    akeys = _atom_keys_torch(key, idx.to(device))
    n = idx.shape[0]
    rows = tile_rows or max(1, (64 << 20) // (16 * nb))
    out = torch.empty((n, dim), dtype=torch.float32, device=device)
    for a in range(0, n, rows):
        b = min(n, a + rows)
        out[a:b] = _gen_rows_torch(akeys[a:b], bkeys, table)[:, :dim]
    return out


class _CompiledMismatch(RuntimeError):
    pass


_compiled_fns: dict[tuple, object] = {}
_compiled_ok: set[tuple] = set()


def _compiled_gen(nb: int, dim: int, device: torch.device):
    """torch.compile'd generator of float32 [T, dim] atoms from atom keys, one per (dim, device)."""
    k = (nb, dim, str(device))
    fn = _compiled_fns.get(k)
    if fn is None:
        bkeys = _block_keys_torch(nb, device)
        table = normal_table(device)

        def gen(akeys: torch.Tensor) -> torch.Tensor:
            return _gen_rows_torch(akeys, bkeys, table)[:, :dim]

        fn = torch.compile(gen, dynamic=False)
        _compiled_fns[k] = fn
    return fn


def _verify_compiled(nb: int, dim: int, device: torch.device, T: int, akeys: torch.Tensor, f: torch.Tensor):
    """Check once per compiled shape that the fused kernel reproduces the eager generator bit for bit."""
    k = (nb, dim, str(device), T)
    if k in _compiled_ok:
        return
    ref = _gen_rows_torch(akeys, _block_keys_torch(nb, device), normal_table(device))[:, :dim]
    if not torch.equal(ref, f):
        raise _CompiledMismatch("torch.compile'd codebook generator differs from the eager one; "
                                "pass compile=False (or GVC_CODEBOOK_COMPILE=0)")
    _compiled_ok.add(k)


_fused_ok: set[tuple] = set()


def _fused_default(device: torch.device) -> bool:
    env = os.environ.get("GVC_CODEBOOK_FUSED")
    if env is not None and env.strip().lower() in ("0", "", "false", "no", "off"):
        return False
    if device.type != "cuda" and os.environ.get("TRITON_INTERPRET") != "1":
        return False
    try:
        from gvc.kernels import codebook_triton as kernel
    except ImportError:
        return False
    return kernel.available(device)


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def _compile_default(device: torch.device) -> bool:
    env = os.environ.get("GVC_CODEBOOK_COMPILE")
    if env is not None:
        return env.strip().lower() not in ("0", "", "false", "no", "off")
    return device.type == "cuda"


# ----------------------------------------------------------------------------------------------------------
# public API
# ----------------------------------------------------------------------------------------------------------
CODEBOOK_FAMILIES = ("gaussian", "hadamard")  # position = the sequence header's codebook_family id


def _check_family(family: str) -> str:
    if family not in CODEBOOK_FAMILIES:
        raise ParameterError(f"codebook family must be one of {', '.join(CODEBOOK_FAMILIES)}, got {family!r}")
    return family


def _use_numpy(device, backend: str | None) -> bool:
    if backend is None:
        return torch.device(device).type == "cpu"
    if backend not in ("numpy", "torch"):
        raise ParameterError(f"backend must be 'numpy' or 'torch', got {backend!r}")
    if backend == "numpy" and torch.device(device).type != "cpu":
        raise ParameterError("the numpy backend only runs on the CPU")
    return backend == "numpy"


def atoms(seed: int, step: int, frame: int, indices, dim: int, device="cpu", *, backend: str | None = None,
          threads: int | None = None) -> torch.Tensor:
    """float32 [len(indices), dim]: the atoms ``indices`` of codebook (seed, step, frame).

    ``backend``: None picks numpy on the CPU and torch elsewhere; "torch" forces the torch path on the CPU
    (used to check the two against each other). ``threads``: CPU worker threads (numpy path).
    """
    key = codebook_key(seed, step, frame)
    dim = _check_dim(dim)
    idx = _as_index_array(indices)
    if _use_numpy(device, backend):
        return torch.from_numpy(_atoms_np(key, idx, dim, threads))
    return _atoms_torch(key, torch.from_numpy(idx), dim, device)


def atoms_reference(seed: int, step: int, frame: int, k: int, dim: int) -> list[float]:
    """One atom, computed with Python integers only (the specification; slow, for tests)."""
    key = codebook_key(seed, step, frame)
    k = _check_u64("k", k)
    table = _normal_table_np()
    ak = _mix_py(key + _mix_py(k ^ TAG_ATOM))
    out = []
    for j in range((dim + 3) // 4):
        w = _mix_py(ak + _mix_py(j ^ TAG_BLOCK))
        for i in range(4):
            out.append(float(table[(w >> (16 * i)) & 0xFFFF]))
    return out[:dim]


def _check_residual(residual: torch.Tensor, dim: int) -> torch.Tensor:
    if not isinstance(residual, torch.Tensor):
        residual = torch.as_tensor(residual)
    if residual.numel() != dim:
        raise ParameterError(f"residual has {residual.numel()} elements, the codebook dimension is {dim}")
    residual = residual.reshape(-1).to(torch.float32)
    if not bool(torch.isfinite(residual).all()):
        raise ParameterError("residual contains NaN or infinity")
    return residual


def _select_topm(ip: torch.Tensor, M: int) -> tuple[torch.Tensor, torch.Tensor]:
    """M largest |ip| (ties: lower index first); indices ascending, signs True where ip >= 0."""
    order = torch.sort(ip.abs(), descending=True, stable=True).indices[:M]
    sel = torch.sort(order).values
    return sel.to(torch.int64), ip[sel] >= 0


class CodebookSearch:
    """Encoder-side search over a codebook of K atoms of dimension ``dim``, streaming over K in tiles.

    Memory is bounded by the tile plus K inner products: the torch path (CUDA) generates ``tile_bytes``
    worth of float32 atoms at a time (default 256 MiB off the CPU, 16 MiB on it; peak working memory about
    6x that: int64 words, int32 table indices, float32 atoms); the numpy path (CPU) generates cache-sized
    chunks (0.4-1.5 MiB of scratch) in each of ``threads`` worker threads and never holds a tile of atoms.
    On the CPU each inner product is summed over fixed segments of the dimension, so it depends on its row
    alone: results do not depend on ``tile_bytes`` or the thread count.

    ``compile`` (torch path only; default True on CUDA, or GVC_CODEBOOK_COMPILE=0/1): fuse the generator into
    one kernel with torch.compile (about 4x faster on an H100; compiles once per dim, a few seconds).  The
    first tile of each shape is checked bit for bit against the eager generator; a compiler failure falls
    back to the eager path with a warning.  (Encoder side only: the decoder never needs inner products, so
    CPU and GPU encoders may differ in the last bit of an inner product, and so in a near-tie.)

    ``fused`` (CUDA only; default True where Triton imports, or GVC_CODEBOOK_FUSED=0/1): the Triton kernel of
    gvc.kernels.codebook_triton generates the atoms in registers and never writes them to memory (no tiles,
    no K x D traffic).  Its atoms are checked against the portable generator once per dimension; a compiler
    failure or a mismatch falls back to the tiled torch path with a warning.
    """

    def __init__(self, K: int, dim: int, device="cpu", tile_bytes: int | None = None, *,
                 backend: str | None = None, threads: int | None = None, compile: bool | None = None,
                 fused: bool | None = None, family: str = "gaussian"):
        if isinstance(K, bool) or not isinstance(K, (int, np.integer)) or not 1 <= int(K) <= _INDEX_LIMIT:
            raise ParameterError(f"K must be an integer in [1, 2**63], got {K!r}")
        self.K = int(K)
        self.dim = _check_dim(dim)
        self.family = _check_family(family)
        self.device = torch.device(device)
        self.numpy = _use_numpy(self.device, backend)
        if tile_bytes is None:  # GPUs want big tiles (256 MiB: ~1.5 GiB working memory); CPUs small ones
            tile_bytes = (16 << 20) if self.device.type == "cpu" else (256 << 20)
        if int(tile_bytes) < 1:
            raise ParameterError("tile_bytes must be positive")
        self.tile_bytes = int(tile_bytes)
        self.threads = threads or _default_threads()
        # torch path only: fuse the generator with torch.compile (default on CUDA; GVC_CODEBOOK_COMPILE=0/1)
        self.compile = (not self.numpy) and (_compile_default(self.device) if compile is None else bool(compile))
        self.fused = (not self.numpy) and (_fused_default(self.device) if fused is None else bool(fused))
        self.nblocks = (self.dim + 3) // 4
        # atoms per tile: tile_bytes of float32 atoms (the torch path also holds ~3x that in int64/int32)
        self.tile_atoms = max(1, self.tile_bytes // (4 * 4 * self.nblocks))

    # -- inner products -----------------------------------------------------------------------------------
    def inner_products(self, residual: torch.Tensor, seed, step, frame) -> torch.Tensor:
        """float32 [K]: <atom_k, residual> for all k."""
        r = _check_residual(residual, self.dim)
        key = codebook_key(seed, step, frame)
        if self.family == "hadamard":
            from gvc import codebook_hadamard

            return codebook_hadamard.inner_products(key, self.K, self.dim, r, self.device)
        if self.numpy:
            return torch.from_numpy(self._ip_numpy(key, r.cpu().numpy()))
        return self._ip_torch(key, r.to(self.device))

    def _ip_numpy(self, key: int, r: np.ndarray) -> np.ndarray:
        K, nb, dim = self.K, self.nblocks, self.dim
        table = _normal_table_np()
        bkeys = _block_keys_np(nb)
        nt = self.threads
        rc, segs = _chunk_plan(nb, _CHUNK_WORDS_1 if nt == 1 else _CHUNK_WORDS_N)
        S = _SUM_SAMPLES
        nsum = (dim + S - 1) // S
        nchunks = (K + rc - 1) // rc
        ip = np.empty(K, np.float32)
        # each inner product: elementwise products, numpy's pairwise sum over fixed segments of S samples
        # (float32), then the segment sums added in float64.  No BLAS call (so no library threading under
        # our worker threads), and every row's result depends on that row and the dimension alone.
        tile_chunks = max(1, self.tile_atoms // rc)
        if nt > 1:  # finer tiles so the threads stay busy
            tile_chunks = max(1, min(tile_chunks, (nchunks + 4 * nt - 1) // (4 * nt)))
        tiles = [(c, min(nchunks, c + tile_chunks)) for c in range(0, nchunks, tile_chunks)]
        local = threading.local()

        def run(tile):
            st = getattr(local, "st", None)
            if st is None:
                st = local.st = (_Scratch(rc, segs[0][1] - segs[0][0]), np.empty((rc, nsum), np.float64))
            s, psum = st
            a0, a1 = tile[0] * rc, min(K, tile[1] * rc)
            akeys = _atom_keys_np(key, np.arange(a0, a1, dtype=np.uint64))
            for a in range(a0, a1, rc):
                m = min(a1, a + rc) - a
                for j0, j1 in segs:
                    f = _gen_rows_np(akeys[a - a0:a - a0 + m], bkeys[j0:j1], table, s)
                    x0, x1 = 4 * j0, min(dim, 4 * j1)
                    g = f[:, :x1 - x0]
                    np.multiply(g, r[None, x0:x1], out=g)
                    full = (x1 - x0) // S
                    s0 = x0 // S
                    if full:
                        psum[:m, s0:s0 + full] = g[:, :full * S].reshape(m, full, S).sum(axis=2)
                    if full * S < x1 - x0:
                        psum[:m, s0 + full] = g[:, full * S:].sum(axis=1)
                ip[a:a + m] = psum[:m].sum(axis=1)

        nt = min(nt, len(tiles))
        if nt <= 1:
            for t in tiles:
                run(t)
        else:
            list(_pool(nt).map(run, tiles))
        return ip

    def _ip_torch(self, key: int, r: torch.Tensor) -> torch.Tensor:
        if self.fused:
            try:
                return self._ip_fused(key, r)
            except Exception as e:  # no Triton, a compiler failure, a generator mismatch: the torch path
                warnings.warn(f"fused codebook kernel unavailable ({type(e).__name__}: {_first_line(e)}); "
                              "using the tiled torch path", RuntimeWarning, stacklevel=3)
                self.fused = False
        if self.compile:
            try:
                return self._ip_torch_compiled(key, r)
            except _CompiledMismatch:
                raise
            except Exception as e:  # no Triton, no compiler, ...: the eager path gives the same atoms
                warnings.warn(f"torch.compile of the codebook generator failed ({type(e).__name__}: {e}); "
                              "using the eager torch path", RuntimeWarning, stacklevel=3)
                self.compile = False
        K, nb, dim = self.K, self.nblocks, self.dim
        dev = self.device
        table = normal_table(dev)
        bkeys = _block_keys_torch(nb, dev)
        ip = torch.empty(K, dtype=torch.float32, device=dev)
        T = self.tile_atoms
        for a in range(0, K, T):
            b = min(K, a + T)
            akeys = _atom_keys_torch(key, torch.arange(a, b, dtype=torch.int64, device=dev))
            f = _gen_rows_torch(akeys, bkeys, table)[:, :dim]
            ip[a:b] = f @ r
        return ip

    def _ip_fused(self, key: int, r: torch.Tensor) -> torch.Tensor:
        from gvc.kernels import codebook_triton as kernel

        check = (self.dim, str(self.device))
        if check not in _fused_ok:  # the kernel's own generator path against the portable one, bit for bit
            idx = torch.tensor(sorted({0, 1, self.K - 1}), dtype=torch.int64)
            if not torch.equal(kernel.atoms(key, idx, self.dim, self.device).cpu(),
                               _atoms_torch(key, idx, self.dim, self.device).cpu()):
                raise _CompiledMismatch("the fused kernel's atoms differ from the portable generator's")
            _fused_ok.add(check)
        return kernel.inner_products(key, self.K, self.dim, r, self.device)

    def _ip_torch_compiled(self, key: int, r: torch.Tensor) -> torch.Tensor:
        """Same tiles, generator fused into one kernel by torch.compile (integer ops and a gather: exact).
        The last tile is padded with atoms k >= K (discarded) so every call has one shape."""
        K, nb, dim = self.K, self.nblocks, self.dim
        dev = self.device
        T = min(self.tile_atoms, K)
        fn = _compiled_gen(nb, dim, dev)
        n = (K + T - 1) // T * T
        ip = torch.empty(n, dtype=torch.float32, device=dev)
        for a in range(0, n, T):
            akeys = _atom_keys_torch(key, torch.arange(a, a + T, dtype=torch.int64, device=dev))
            f = fn(akeys)
            _verify_compiled(nb, dim, dev, T, akeys, f)
            ip[a:a + T] = f @ r
        return ip[:K]

    # -- selection ----------------------------------------------------------------------------------------
    def topm(self, residual: torch.Tensor, seed, step, frame, M: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(indices int64 [M] ascending, signs bool [M], True = +1) of the M largest |<atom_k, residual>|."""
        if isinstance(M, bool) or not isinstance(M, (int, np.integer)) or not 1 <= int(M) <= self.K:
            raise ParameterError(f"M must be an integer in [1, K={self.K}], got {M!r}")
        ip = self.inner_products(residual, seed, step, frame)
        idx, signs = _select_topm(ip, int(M))
        return idx.cpu(), signs.cpu()


def _fixed_point_scale(s1: int, s2: int, D: int) -> float | None:
    """D * 2**b / sqrt(D*s2 - s1^2): the exact 1/std(z) (population) from q = round(z * 2**b), s1 = sum(q),
    s2 = sum(q^2) (exact integers); one correctly rounded int->float conversion and sqrt."""
    var_num = D * s2 - s1 * s1  # = D^2 * 2^(2b) * population variance of the fixed-point copy
    if var_num <= 0:
        return None
    return D * float(1 << _FIXED_POINT_BITS) / math.sqrt(var_num)


def _chunk_for(maxq: int, D: int) -> int:
    # exact int64 partial sums: each chunk's sum of squares must stay below 2**62
    return max(1, min(D, (1 << 62) // max(1, maxq * maxq)))


def _combine_np(A: np.ndarray, sg: list[bool]) -> np.ndarray:
    z = A[0].copy() if sg[0] else np.negative(A[0])
    for i in range(1, A.shape[0]):
        (np.add if sg[i] else np.subtract)(z, A[i], out=z)
    q = np.rint(z * np.float32(1 << _FIXED_POINT_BITS)).astype(np.int64)
    D = q.shape[0]
    chunk = _chunk_for(int(np.abs(q).max()), D)
    s1 = sum(int(q[a:a + chunk].sum()) for a in range(0, D, chunk))
    s2 = sum(int(np.dot(q[a:a + chunk], q[a:a + chunk])) for a in range(0, D, chunk))
    scale = _fixed_point_scale(s1, s2, D)
    if scale is not None:
        np.multiply(z, np.float32(scale), out=z)
    return z


def _combine_torch(A: torch.Tensor, sg: list[bool]) -> torch.Tensor:
    z = A[0].clone() if sg[0] else -A[0]
    for i in range(1, A.shape[0]):
        if sg[i]:
            z.add_(A[i])
        else:
            z.sub_(A[i])
    q = torch.round(z * float(1 << _FIXED_POINT_BITS)).to(torch.int64)
    D = q.numel()
    chunk = _chunk_for(int(q.abs().max().item()), D)
    pad = (-D) % chunk
    qp = torch.cat([q, q.new_zeros(pad)]) if pad else q
    qp = qp.reshape(-1, chunk)
    s1 = sum(int(v) for v in qp.sum(dim=1).tolist())
    s2 = sum(int(v) for v in (qp * qp).sum(dim=1).tolist())
    scale = _fixed_point_scale(s1, s2, D)
    if scale is None:
        return z
    return z * torch.tensor(np.float32(scale), dtype=torch.float32, device=z.device)


def combine(seed, step, frame, indices, signs, dim, device="cpu", *, backend: str | None = None,
            family: str = "gaussian") -> torch.Tensor:
    """float32 [dim]: z = sum_k sign_k * atom_k (ascending k), then z / std(z) with the population std.

    ``family``: "gaussian" (GVC-CB1, above) or "hadamard" (gvc.codebook_hadamard; same rule, +-1 atoms).

    Only the selected atoms are generated (cost independent of K).  Bit-identical on every device:
    the signed sum runs sequentially in ascending index order, the std is exact (see module docstring).
    """
    idx = _as_index_array(indices)
    if isinstance(signs, torch.Tensor):
        sg = [bool(s) for s in signs.reshape(-1).tolist()]
    else:
        sg = [bool(s) for s in signs]
    if len(sg) != idx.shape[0]:
        raise ParameterError(f"{idx.shape[0]} indices but {len(sg)} signs")
    if idx.shape[0] == 0:
        raise ParameterError("combine needs at least one atom")
    if len(set(idx.tolist())) != idx.shape[0]:
        raise ParameterError("atom indices must be distinct")
    order = np.argsort(idx, kind="stable")
    idx = idx[order]
    sg = [sg[i] for i in order.tolist()]
    dim = _check_dim(dim)
    key = codebook_key(seed, step, frame)
    if _check_family(family) == "hadamard":
        from gvc import codebook_hadamard

        return codebook_hadamard.combine(key, idx, sg, dim, device)
    if _use_numpy(device, backend):
        return torch.from_numpy(_combine_np(_atoms_np(key, idx, dim), sg))
    return _combine_torch(_atoms_torch(key, torch.from_numpy(idx), dim, device), sg)
