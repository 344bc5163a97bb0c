"""The pinned tested set (.ci/constraints.txt) that `.ci/bootstrap` installs: every requirement of
pyproject.toml (dependencies and every extra) is pinned to a version its range allows, and the pins
are complete and consistent for the packages installed at their pinned version."""

import tomllib
from importlib import metadata
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

REPO = Path(__file__).resolve().parents[1]
CONSTRAINTS = REPO / ".ci" / "constraints.txt"


def read_pins(text: str) -> dict[str, Version]:
    """Canonical name -> pinned version; every line is exactly `name==version`."""
    pins: dict[str, Version] = {}
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        req = Requirement(line)
        (spec,) = req.specifier
        assert spec.operator == "==" and not req.marker and not req.extras, f"not an exact pin: {line}"
        name = canonicalize_name(req.name)
        assert name not in pins, f"pinned twice: {name}"
        pins[name] = Version(spec.version)
    return pins


def project_requirements(pyproject: dict) -> list[tuple[str, Requirement]]:
    """(where, requirement) for the dependencies and every optional extra."""
    project = pyproject["project"]
    out = [("dependencies", Requirement(r)) for r in project["dependencies"]]
    for extra, reqs in project.get("optional-dependencies", {}).items():
        out += [(f"[{extra}]", Requirement(r)) for r in reqs]
    return out


def unmet(requirements: list[tuple[str, Requirement]], pins: dict[str, Version],
          env: dict | None = None) -> list[str]:
    """What the pins fail: a requirement (whose marker holds in ``env``) unpinned or out of range."""
    env = env or default_environment()
    problems = []
    for where, req in requirements:
        if req.marker and not req.marker.evaluate({**env, "extra": ""}):
            continue
        pinned = pins.get(canonicalize_name(req.name))
        if pinned is None:
            problems.append(f"{where} {req}: not pinned")
        elif not req.specifier.contains(pinned, prereleases=True):
            problems.append(f"{where} {req}: pinned {pinned} is outside the range")
    return problems


def test_constraints_pin_every_pyproject_requirement_within_its_range():
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    pins = read_pins(CONSTRAINTS.read_text())
    requirements = project_requirements(pyproject)
    assert len(requirements) >= 20 and {"smpl", "dev", "eval"} <= set(pyproject["project"]["optional-dependencies"])
    assert unmet(requirements, pins) == []
    # torch is pinned without the local label, so the pin matches the CPU build as well as the CUDA one
    assert Requirement(f"torch=={pins['torch']}").specifier.contains("2.13.0+cpu")


def test_check_catches_a_pin_outside_the_range_and_a_missing_pin():
    """Control: the same check on tampered pins reports exactly what was changed."""
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    pins = read_pins(CONSTRAINTS.read_text())
    pins["numpy"] = Version("2.0.0")                         # pyproject: numpy>=1.24,<2
    del pins["pytest"]                                       # pyproject [dev]: pytest>=8
    problems = unmet(project_requirements(pyproject), pins)
    assert len(problems) == 2
    assert problems[0].startswith("dependencies numpy") and "outside the range" in problems[0]
    assert problems[1].startswith("[dev] pytest") and problems[1].endswith("not pinned")


def test_pins_are_complete_for_their_own_requirements():
    """Every pinned package installed here at its pinned version has its own requirements pinned and
    within range (what `pip check` would say of the pinned set), so the pins are the whole tested set."""
    pins = read_pins(CONSTRAINTS.read_text())
    checked, problems = 0, []
    for name, version in pins.items():
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        if Version(dist.version).public != version.public:
            continue
        checked += 1
        problems += unmet([(name, Requirement(r)) for r in dist.requires or []], pins)
    assert checked >= 10, "too few pinned packages are installed at their pinned version to check"
    assert problems == []
