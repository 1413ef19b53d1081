"""pyproject.toml and environment.yml describe the same dependencies; torch is pinned exactly."""
import re
import tomllib
from pathlib import Path

import yaml
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]


def _norm(reqs):
    out = {}
    for r in reqs:
        req = Requirement(r)
        out[req.name.lower().replace("_", "-")] = str(req.specifier)
    return out


def pyproject_reqs():
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = list(meta["dependencies"])
    for extra in meta.get("optional-dependencies", {}).values():
        reqs += extra
    return _norm(reqs)


def conda_reqs():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    return _norm(r for r in pip if not r.startswith("-e"))


def test_pyproject_and_environment_yml_agree():
    a, b = pyproject_reqs(), conda_reqs()
    assert a == b, (f"only in pyproject: {set(a.items()) - set(b.items())}; "
                    f"only in environment.yml: {set(b.items()) - set(a.items())}")


def test_torch_is_pinned_exactly_everywhere():
    for reqs in (pyproject_reqs(), conda_reqs()):
        assert reqs["torch"] == "==2.13.0"
    # no dependency may be unbounded above: a newer release could pull in a CUDA torch
    for name, spec in pyproject_reqs().items():
        assert "<" in spec or "==" in spec, f"{name} has no upper bound ({spec!r})"


def test_no_torchvision_dependency():
    text = (ROOT / "pyproject.toml").read_text() + (ROOT / "environment.yml").read_text()
    assert not re.search(r"torchvision|torchaudio", text)
