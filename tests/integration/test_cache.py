"""Snakemake's between-workflow cache hands every (model, optimisation) its own artifact.

The cache key hashes a rule's code, params and inputs but not its wildcards. The two models here have the
very same entry (`{source: zoo, input_size: 32, seed: 0}`) and differ only by their names, which pick the
architecture: if the model name did not reach the export rule's params, both would share one cache entry
and one of them would silently get the other's network. The two optimisations differ in their graph
passes (none vs ToNonDataflow), which leaves a visible mark on the compiled graph: dataflow blocks or
none.

Directory A fills an empty cache; directory B must then get every file from it, and each of B's files must
be what A built for the same (model, optimisation) and fit that model and that optimisation.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
ENTRY = {"source": "zoo", "input_size": 32, "seed": 0}
MODELS = ("mobilenet_v2", "shufflenet_v2")
OPTS = {"plain": {"passes": []}, "flat": {"passes": ["ToNonDataflow"]}}


def _config(path: Path, models=MODELS, **extra) -> Path:
    config = {
        "models": {m: dict(ENTRY) for m in models},
        "dataset": {"images": "default", "labels": "default", "limit": 1},
        "optimisations": OPTS,
        "targets": {"x86_64": {"kind": "llvm"}},
        "devices": {"cpu": {"target": "x86_64"}},
        **extra,
    }
    path.write_text(yaml.safe_dump(config))
    return path


def _artifacts(root: Path) -> dict[tuple[str, str], Path]:
    out = {(m, "onnx"): root / f"results/{m}/export/model.onnx" for m in MODELS}
    out.update({(m, "imported"): root / f"results/{m}/tvm/imported.json" for m in MODELS})
    out.update({(m, o): root / f"results/{m}/tvm/{o}/graph.json" for m in MODELS for o in OPTS})
    return out


def _run(workdir: Path, config: Path, cache: Path, artifacts: dict | None = None,
         version: tuple[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`snakemake` on the artifacts; with `version` = (package, version), every Python process of the run
    (Snakemake's job processes included, which plan their job again) reads that version from the package's
    metadata: what an upgrade of that package looks like to the cache key."""
    targets = [str(p.relative_to(workdir)) for p in (artifacts or _artifacts(workdir)).values()]
    env = {**os.environ, "SNAKEMAKE_OUTPUT_CACHE": str(cache)}
    if version is not None:
        shim = workdir.parent / f"fake-{version[0]}-{version[1]}"
        shim.mkdir(exist_ok=True)
        (shim / "sitecustomize.py").write_text(
            "import importlib.metadata as m\n"
            "real = m.version\n"
            f"m.version = lambda dist: {version[1]!r} if dist == {version[0]!r} else real(dist)\n")
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(shim), env.get("PYTHONPATH")]))
    # The targets go before --cache, whose rule list would swallow them.
    cmd = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-d", str(workdir),
           "--profile", str(REPO / "profiles" / "local"), "--configfile", str(config), "--cores", "2",
           *targets, "--cache", "export", "import_graph", "compile"]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=1800, env=env, cwd=workdir)


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _onnx_convs(path: Path) -> int:
    import onnx

    return sum(node.op_type == "Conv" for node in onnx.load(str(path)).graph.node)


def _torch_convs(name: str) -> int:
    """Independent of the export: the architecture itself, as the zoo builds it."""
    from torch import nn

    from deltamut.models import load_model

    return sum(isinstance(m, nn.Conv2d) for m in load_model(name, dict(ENTRY)).module.modules())


def test_two_workflows_share_one_cache_without_mixing_artifacts(tmp_path: Path) -> None:
    cache, a, b = tmp_path / "cache", tmp_path / "a", tmp_path / "b"
    for d in (cache, a, b):
        d.mkdir()
    config = _config(tmp_path / "study.yaml")

    t0 = time.monotonic()
    first = _run(a, config, cache)
    assert first.returncode == 0, first.stderr[-6000:]
    print(f"workflow A (builds, fills the cache): {time.monotonic() - t0:.0f} s")
    built = _artifacts(a)
    for key, path in built.items():
        assert path.is_symlink() and path.resolve().parent == cache.resolve(), (key, path)
    digests = {key: _digest(path) for key, path in built.items()}
    # `plain` runs no graph pass: its graph is the imported one, byte for byte (two rules, two cache entries)
    assert all(digests[(m, "plain")] == digests[(m, "imported")] for m in MODELS)
    distinct = {k: d for k, d in digests.items() if k[1] != "plain"}
    assert len(set(distinct.values())) == len(distinct), "two (model, optimisation) pairs share one artifact"
    assert len(list(cache.iterdir())) == len(built)

    t1 = time.monotonic()
    second = _run(b, config, cache)
    assert second.returncode == 0, second.stderr[-6000:]
    print(f"workflow B (from the cache): {time.monotonic() - t1:.0f} s")
    # Snakemake touches a cached job's log file but runs nothing: the logs stay empty.
    logs = [p for d in ("export", "import_graph", "compile") for p in (b / "results/logs" / d).rglob("*")
            if p.is_file()]
    assert not [p for p in logs if p.stat().st_size], f"workflow B ran export/compile: {logs}"
    for path in _artifacts(b).values():
        assert f"Symlinking output file {path.relative_to(b)} from cache." in second.stderr, path
    fetched = _artifacts(b)
    for key, path in fetched.items():
        assert path.is_symlink() and path.resolve() == built[key].resolve(), (key, path.resolve())
        assert _digest(path) == digests[key], key

    # Each of B's files fits its own model and optimisation.
    counts = {m: _torch_convs(m) for m in MODELS}
    assert len(set(counts.values())) == len(counts), counts  # the check below tells the models apart
    for m in MODELS:
        assert _onnx_convs(fetched[(m, "onnx")]) == counts[m], m
        plain = fetched[(m, "plain")].read_text()
        flat = fetched[(m, "flat")].read_text()
        assert '"relax.expr.DataflowBlock"' in plain and '"relax.expr.BindingBlock"' not in plain, m
        assert '"relax.expr.DataflowBlock"' not in flat and '"relax.expr.BindingBlock"' in flat, m
        assert '"relax.nn.conv2d"' in plain and '"relax.nn.conv2d"' in flat, m


def _built(run: subprocess.CompletedProcess, workdir: Path, path: Path) -> bool:
    """Whether the workflow made `path` itself (and stored it in the cache) rather than taking it from there."""
    out = run.stdout + run.stderr
    name = path.relative_to(workdir)
    # a stored output is symlinked back from the cache too; one that was only fetched is never moved there
    fetched, stored = f"Symlinking output file {name} from cache", f"Moving output file {name} to cache"
    assert fetched in out, f"{name}: not in the cache after the workflow"
    return stored in out


def _records(cache: Path) -> list[Path]:
    from deltamut.failure import read_failure

    return [p for p in cache.iterdir() if p.is_file() and read_failure(p) is not None]


def test_cache_keys_hold_the_software_versions_and_never_a_failure(tmp_path: Path) -> None:
    """A workflow that reports another TVM version rebuilds what TVM makes (import, compile) and still takes
    the export, which TVM does not touch, from the cache. A compile that fails (here: TVM cannot even be
    imported within a 0.5 s limit) leaves its failure record in its own results, never in the cache, so the
    next workflow tries again instead of inheriting the failure."""
    cache = tmp_path / "cache"
    cache.mkdir()
    model = MODELS[:1]
    config = _config(tmp_path / "one.yaml", model)
    only = {k: v for k, v in _artifacts(tmp_path / "x").items() if k[0] == model[0]}

    def artifacts(work: Path) -> dict:
        work.mkdir(exist_ok=True)
        return {k: work / p.relative_to(tmp_path / "x") for k, p in only.items()}

    first = tmp_path / "first"
    done = _run(first, config, cache, artifacts(first))
    assert done.returncode == 0, done.stderr[-4000:]
    assert len(list(cache.iterdir())) == len(only)

    upgraded = tmp_path / "upgraded"
    done = _run(upgraded, config, cache, artifacts(upgraded), version=("apache-tvm", "0.27.99"))
    assert done.returncode == 0, done.stderr[-4000:]
    built = {key[1]: _built(done, upgraded, path) for key, path in artifacts(upgraded).items()}
    # the export does not depend on TVM: it comes from the cache; what TVM makes is made again
    assert built == {"onnx": False, "imported": True, **{opt: True for opt in OPTS}}, built
    assert len(list(cache.iterdir())) == 2 * len(only) - 1  # new import and compile entries beside the old

    slow = _config(tmp_path / "slow.yaml", model, timeouts={"compile_s": 0.5})
    for attempt in ("failing", "again"):
        work = tmp_path / attempt
        done = _run(work, slow, cache, artifacts(work))
        assert done.returncode == 0, done.stderr[-4000:]
        # the import timed out: tried in this workflow, whatever the earlier one did
        imported = work / f"results/{model[0]}/tvm/imported.json"
        assert _built(done, work, imported), attempt
        assert not imported.is_symlink() and '"status": "timeout"' in imported.read_text()
        assert not _records(cache), f"failure records in the cache after {attempt}: {_records(cache)}"
