"""Build libgvc.so: cffi's embedding mode compiles gvc.h's functions into a shared library whose first
call starts CPython and runs gvc.capi.embedded, which implements them.

The library is built against the Python that runs the build and the gvc package it imports: their
paths (the package root, the virtual environment's site-packages) are written into the library's
start-up code, so a C program needs neither PYTHONPATH nor an activated environment. Rebuild after
moving either. Needs a C compiler and the Python headers (python3-config --includes).
"""

from __future__ import annotations

import os
import re
import shutil
import site
import sysconfig
import tempfile
from pathlib import Path

import cffi

import gvc
from gvc.errors import GVCError

HEADER = Path(__file__).with_name("gvc.h")
MODULE = "_gvc_cffi"  # the cffi module inside the library (`from _gvc_cffi import ffi` in embedded code)


def api_declarations(header: Path = HEADER) -> str:
    """The part of gvc.h between the cffi markers: what libgvc exports."""
    text = header.read_text()
    m = re.search(r"/\* --- cffi: from here.*?\*/\n(.*)/\* --- cffi: end --- \*/", text, re.S)
    if not m:
        raise GVCError(f"{header} lacks the cffi markers")
    return m.group(1)


def search_path() -> list[str]:
    """Where the embedded interpreter must look for gvc and its dependencies (this interpreter's view)."""
    roots = [str(Path(gvc.__file__).resolve().parents[1])]
    roots += [p for p in site.getsitepackages() + [site.getusersitepackages()] if os.path.isdir(p)]
    return list(dict.fromkeys(roots))


def init_code(paths: list[str]) -> str:
    return f"""
import site, sys
for p in {paths!r}:
    if p not in sys.path:
        site.addsitedir(p)  # also runs the .pth files there (editable installs)
for p in reversed({paths[:1]!r}):
    sys.path.insert(0, p)  # the package the library was built against comes first
from {MODULE} import ffi
from gvc.capi.embedded import install
install(ffi)
"""


def build(out_dir: str | os.PathLike = ".", *, verbose: bool = False) -> Path:
    """Compile libgvc.so (and copy gvc.h) into out_dir; returns the library's path."""
    out = Path(out_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    if not shutil.which(sysconfig.get_config_var("CC").split()[0] if sysconfig.get_config_var("CC") else "cc"):
        raise GVCError("no C compiler found (cc): install gcc or clang")
    if not Path(sysconfig.get_paths()["include"], "Python.h").is_file():
        raise GVCError(f"Python headers missing ({sysconfig.get_paths()['include']}/Python.h): install python3-dev")
    ffi = cffi.FFI()
    ffi.embedding_api(api_declarations())
    ffi.set_source(MODULE, '#include "gvc.h"', include_dirs=[str(HEADER.parent)])
    ffi.embedding_init_code(init_code(search_path()))
    with tempfile.TemporaryDirectory(prefix="libgvc-") as tmp:
        built = Path(ffi.compile(tmpdir=tmp, target="libgvc.*", verbose=verbose))
        lib = out / built.name
        shutil.copyfile(built, lib)
    shutil.copyfile(HEADER, out / HEADER.name)
    return lib
