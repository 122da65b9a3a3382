"""The README's quick start and CI stay in step."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _quick_start_commands():
    text = (ROOT / "README.md").read_text()
    section = text.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```bash\n(.*?)\n```", section, flags=re.S)


def test_quick_start_has_exactly_two_commands_demo_and_tests():
    commands = _quick_start_commands()
    assert len(commands) == 2
    assert all("\n" not in c for c in commands)
    assert commands[0].endswith("napari-resolve demo")
    assert commands[1].endswith("pytest")


def test_ci_runs_the_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert _quick_start_commands()[1] in ci


def test_ci_runs_the_tests_in_a_fresh_virtual_environment():
    """Nothing installed on the CI machine itself may satisfy a dependency."""
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    test_line = ci.index(_quick_start_commands()[1])
    made = [i for i, line in enumerate(ci) if re.match(r"\s*python3? -m venv ", line)]
    activated = [i for i, line in enumerate(ci) if re.match(r"\s*(source|\.) .*/bin/activate", line)]
    assert made and activated and made[0] < activated[0] < test_line
    assert "--system-site-packages" not in "\n".join(ci)
