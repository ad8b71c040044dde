"""The venv holds exactly the pinned packages: what is installed is what the requirements files say."""

import importlib.metadata
import re
import sysconfig
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NOT_PINNED = {"pip", "ocrhub"}  # the venv's own installer, and this project (pip install -e .)


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pins(pattern: str = "requirements*.txt") -> dict[str, str]:
    found = {}
    for path in ROOT.glob(pattern):
        for line in path.read_text().splitlines():
            line = line.split("#", 1)[0].strip()
            if line:
                name, sep, version = line.partition("==")
                assert sep and version, f"{path.name}: {line!r} is not an exact pin"
                found[canonical(name)] = version
    return found


def test_installed_packages_are_pinned_and_match():
    pinned = pins()
    site_packages = [sysconfig.get_paths()["purelib"]]  # not the copies vendored inside packages
    installed = {canonical(d.metadata["Name"]): d.version for d in importlib.metadata.distributions(path=site_packages)}
    runtime = {
        canonical(l.split("==")[0])
        for l in (ROOT / "requirements.txt").read_text().splitlines()
        if "==" in l and not l.startswith("#")
    }
    assert runtime <= installed.keys(), f"not installed: {sorted(runtime - installed.keys())}"
    unpinned = sorted(set(installed) - set(pinned) - NOT_PINNED)
    assert not unpinned, f"installed but not pinned in requirements*.txt: {unpinned}"
    wrong = {
        name: (installed[name], pinned[name]) for name in installed.keys() & pinned.keys() if installed[name] != pinned[name]
    }
    assert not wrong, f"installed != pinned: {wrong}"


def test_lean_pins_are_the_full_pins():
    """requirements-lean.txt (the lean image, Dockerfile target "lean") is a subset of requirements.txt,
    pin for pin: both images run the same versions, and the lean set needs no separate upgrades."""
    full, lean = pins("requirements.txt"), pins("requirements-lean.txt")
    assert lean, "requirements-lean.txt is empty"
    assert {name: version for name, version in lean.items() if full.get(name) != version} == {}
    assert not {"paddlepaddle", "paddlehub", "paddleocr", "paddlenlp"} & lean.keys()
