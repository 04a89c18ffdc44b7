"""Every `--config config/...` a README command gives names a file a newcomer has.

README's command list ran `urbanpulse run --config config/urbanpulse.yaml`, a file the repository does
not hold (only config/urbanpulse.example.yaml): the first command a newcomer copied stopped with
"cannot read config file". Each such path must exist, or be made by a `cp` earlier in the same block.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


def sh_blocks(text: str) -> list[str]:
    """The bodies of the ```sh fenced blocks of a Markdown text."""
    return re.findall(r"```sh\n(.*?)```", text, flags=re.S)


def config_paths_missing(block: str, repo: Path) -> list[str]:
    """`--config` paths under config/ in `block` that neither exist in `repo` nor are copied there before use."""
    made: set[str] = set()
    missing = []
    for line in block.splitlines():
        copied = re.match(r"\s*cp\s+\S+\s+(config/\S+)", line)
        if copied:
            made.add(copied.group(1))
        for path in re.findall(r"--config\s+(?:/app/)?(config/[\w./-]+)", line):
            if path not in made and not (repo / path).is_file():
                missing.append(path)
    return missing


@pytest.mark.parametrize("doc", DOCS, ids=[d.name for d in DOCS])
def test_every_config_path_in_a_command_exists_or_is_copied_first(doc: Path) -> None:
    missing = [p for block in sh_blocks(doc.read_text()) for p in config_paths_missing(block, REPO)]
    assert missing == [], f"{doc.name}: --config names files the repository does not hold: {missing}"


def test_the_checker_finds_a_missing_path_and_accepts_a_copied_one(tmp_path: Path) -> None:
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "there.yaml").write_text("")
    assert config_paths_missing("urbanpulse run --config config/nothere.yaml\n", tmp_path) == ["config/nothere.yaml"]
    assert config_paths_missing("urbanpulse run --config config/there.yaml\n", tmp_path) == []
    block = "cp config/there.yaml config/mine.yaml\nurbanpulse run --config config/mine.yaml\n"
    assert config_paths_missing(block, tmp_path) == []
    assert config_paths_missing("urbanpulse run --config config/mine.yaml\ncp a config/mine.yaml\n", tmp_path) != []
