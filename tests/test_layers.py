"""Imports point down: every module of the project is read (AST, imports inside functions included) and each
project import is checked against the layer order below. A module may import its own layer and the layers
listed for it, nothing above.

    tools            anything (benchmarks, evaluation, training: they drive the library API)
    cli              gvc.cli, gvc.pipe_cli, gvc.dist_cli, gvc.capi (libgvc's C interface): argument parsing, exit
                     codes; may use ffmpeg_bridge for files
    pipeline         gvc.pipeline, gvc.progress, gvc.distributed, gvc.probe: sequence encode/decode (and
                     inspection) over the codec and container
    core             the codec (config, gop, sampler, codebook, entropy, anchors, priors, zoo, metrics,
                     ratecontrol, codec); reads and writes no files and never imports ffmpeg_bridge, with
                     its own order: config/metrics/zoo < the rest < sampler/ratecontrol < codec
    ffmpeg_bridge    ffmpeg and video files (ffmpeg_bridge/); may hand other tracks to container/'s Matroska
    container        the bitstream and its containers (container/)
    ground           gvc.errors, gvc._version (and the gvc package, which only re-exports the version)

So container/ imports nothing from gvc above errors and version (issue 13), ffmpeg_bridge/ is only I/O,
and the codec core never reaches up into the pipeline, the command line or the tools.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("gvc", "container", "ffmpeg_bridge", "tools")

GROUND = {"gvc", "gvc._version", "gvc.errors"}
CLI = {"gvc.cli", "gvc.pipe_cli", "gvc.dist_cli",
       "gvc.capi", "gvc.capi.__main__", "gvc.capi.build", "gvc.capi.embedded"}  # libgvc: the C interface
PIPELINE = {"gvc.pipeline", "gvc.progress", "gvc.distributed", "gvc.probe"}
ALLOWED = {  # layer -> the layers below it that it may import
    "ground": set(),
    "container": {"ground"},
    "ffmpeg_bridge": {"ground", "container"},
    "core": {"ground", "container"},
    "pipeline": {"ground", "container", "core"},
    "cli": {"ground", "container", "ffmpeg_bridge", "core", "pipeline"},
    "tools": {"ground", "container", "ffmpeg_bridge", "core", "pipeline", "cli"},
}
CORE_ORDER = {  # inside the core: a module imports only ranks up to its own
    # gvc.zoo: the registry of shipped models and their cards (stdlib only), which the config's ladder reads
    "gvc.config": 0, "gvc.metrics": 0, "gvc.dtypes": 0, "gvc.ladder": 0, "gvc.zoo": 0,
    "gvc.gop": 1, "gvc.segments": 1, "gvc.seek": 1, "gvc.codebook": 1, "gvc.codebook_hadamard": 1, "gvc.kernels": 1, "gvc.entropy": 1, "gvc.anchors": 1, "gvc.priors": 1,
    "gvc.sampler": 2, "gvc.ratecontrol": 2,
    "gvc.codec": 3,
}


def layer(module: str) -> str:
    top = module.split(".")[0]
    if module in GROUND:
        return "ground"
    if top in ("container", "ffmpeg_bridge", "tools"):
        return top
    if module in CLI:
        return "cli"
    if module in PIPELINE:
        return "pipeline"
    return "core"


def core_rank(module: str) -> int:
    parts = module.split(".")
    for n in range(len(parts), 0, -1):
        if ".".join(parts[:n]) in CORE_ORDER:
            return CORE_ORDER[".".join(parts[:n])]
    raise AssertionError(f"{module}: a gvc core module missing from CORE_ORDER")


def modules() -> dict[str, Path]:
    out = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            out[name] = path
    return out


def project_imports(name: str, path: Path) -> set[str]:
    """The project modules `name` imports (absolute and relative, at any depth of the code)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[:len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module
            for a in node.names:  # `from pkg import submodule` imports the submodule
                found.add(f"{target}.{a.name}" if f"{target}.{a.name}" in ALL else target)
    return {m for m in found if m.split(".")[0] in PACKAGES}


ALL = modules()


def violations(name: str, imports: set[str]) -> list[str]:
    mine, bad = layer(name), []
    for target in sorted(imports):
        theirs = layer(target)
        if theirs != mine and theirs not in ALLOWED[mine]:
            bad.append(f"{name} ({mine}) imports {target} ({theirs})")
        elif mine == theirs == "core" and core_rank(target) > core_rank(name):
            bad.append(f"{name} imports {target}, which sits above it in the core")
    return bad


@pytest.mark.parametrize("name", sorted(ALL))
def test_imports_point_down(name):
    assert violations(name, project_imports(name, ALL[name])) == []


def test_the_checker_flags_upward_imports(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("import gvc.codec\nfrom gvc import pipeline\n\ndef f():\n    from ffmpeg_bridge import video_io\n")
    found = project_imports("container.bad", bad)
    assert found == {"gvc.codec", "gvc.pipeline", "ffmpeg_bridge.video_io"}
    assert len(violations("container.bad", found)) == 3
    assert violations("gvc.config", {"gvc.codec"}) == ["gvc.config imports gvc.codec, which sits above it in the core"]
    assert violations("gvc.codec", {"gvc.pipeline"}) and violations("gvc.pipeline", {"ffmpeg_bridge.video_io"})
    assert violations("container.io", {"ffmpeg_bridge.tracks"}) and not violations("ffmpeg_bridge.tracks", {"container.matroska"})
    assert violations("tools.x", {"gvc.cli", "ffmpeg_bridge.ffmpeg"}) == []
