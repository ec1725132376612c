"""The published shape: `python -m build` makes an sdist and a wheel whose only top-level
package is `journeyman`, `twine check` passes, and the wheels of Journeyman and of the
example plugin, installed into a fresh virtual environment, work without the source tree:
`journeyman plugins --json` finds both, and the example's contract suite passes against the
installed code.

The fresh environment gets its third-party packages from this one's site-packages through a
path entry (no network, no second install of every dependency); that entry does not run
this environment's editable-install hooks, so `journeyman` can only come from the wheels."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PIGEON = ROOT / "examples" / "journeyman-pigeon"

pytestmark = pytest.mark.slow


def _run(*args: str | Path, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    done = subprocess.run(
        [str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )
    assert done.returncode == 0, f"{args}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


def _build(project: Path, out: Path, work: Path) -> None:
    # A copy, so the build's own `build/` and `*.egg-info` never land in the source tree.
    src = work / f"src-{project.name}"
    ignore = shutil.ignore_patterns(
        ".venv",
        ".git",
        "__pycache__",
        "*.egg-info",
        "build",
        "dist",
        ".journeyman",
        "node_modules",
        "test-artifacts",
    )
    shutil.copytree(project, src, ignore=ignore)
    _run(sys.executable, "-m", "build", "--no-isolation", "--outdir", out, src, cwd=work)


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    work = tmp_path_factory.mktemp("wheels")
    dist = work / "dist"
    _build(ROOT, dist, work)
    _build(PIGEON, dist, work)
    venv = work / "venv"
    _run(sys.executable, "-m", "venv", "--without-pip", venv, cwd=work)
    python = venv / "bin" / "python"
    site = Path(
        _run(
            python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))", cwd=work
        ).stdout.strip()
    )
    (site / "zz_shared_dependencies.pth").write_text(sysconfig.get_path("purelib") + "\n")
    wheels = sorted(dist.glob("*.whl"))
    _run(
        sys.executable,
        "-m",
        "pip",
        "--python",
        python,
        "install",
        "-q",
        "--no-deps",
        "--no-index",
        *wheels,
        cwd=work,
    )
    return {"work": work, "dist": dist, "venv": venv, "python": python, "site": site}


def test_the_wheel_holds_journeyman_alone_and_twine_accepts_it(installed: dict[str, Path]) -> None:
    dist = installed["dist"]
    (wheel,) = dist.glob("journeyman-*.whl")
    assert list(dist.glob("journeyman-*.tar.gz")), "no sdist was built"
    tops = {name.split("/")[0] for name in zipfile.ZipFile(wheel).namelist()}
    version = wheel.name.split("-")[1]
    assert tops == {"journeyman", f"journeyman-{version}.dist-info"}
    names = zipfile.ZipFile(wheel).namelist()
    assert "journeyman/migrations/script.py.mako" in names
    assert any(n.startswith("journeyman/migrations/versions/0001") for n in names)
    assert any(n.startswith("journeyman/engine/templates/") for n in names)
    assert not any(n.startswith(("journeyman/bench", "journeyman/tests")) for n in names)
    _run(sys.executable, "-m", "twine", "check", "--strict", *dist.iterdir(), cwd=dist)


def test_installed_wheels_load_as_plugins_from_the_environment(installed: dict[str, Path]) -> None:
    venv, site = installed["venv"], installed["site"]
    done = _run(venv / "bin" / "journeyman", "plugins", "--json", cwd=installed["work"])
    report = json.loads(done.stdout)
    plugins = {p["name"]: p for p in report["plugins"]}
    assert {"builtin_channels", "builtin_journeys", "pigeon"} <= set(plugins)
    for name in ("builtin_channels", "builtin_journeys", "pigeon"):
        assert Path(plugins[name]["location"]).is_relative_to(site), plugins[name]
    assert "pigeon" in {c["name"] for c in report["channels"]}


def test_the_example_contract_suite_passes_against_the_installed_code(
    installed: dict[str, Path],
) -> None:
    work = installed["work"]
    suite = work / "pigeon-tests"
    shutil.copytree(PIGEON / "tests", suite, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(PIGEON / "pyproject.toml", suite / "pyproject.toml")  # its pytest settings
    python = installed["python"]
    where = _run(
        python,
        "-c",
        "import journeyman.channels, journeyman_pigeon; "
        "print(journeyman.channels.__file__); print(journeyman_pigeon.__file__)",
        cwd=suite,
    ).stdout.split()
    assert all(Path(p).is_relative_to(installed["site"]) for p in where), where
    done = _run(python, "-m", "pytest", "-q", "-p", "no:cacheprovider", ".", cwd=suite)
    assert " passed" in done.stdout and " failed" not in done.stdout, done.stdout[-2000:]
