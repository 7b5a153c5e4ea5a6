"""Print the README's set-up commands, one per line: the first fenced bash block.

Used by ``.ci/run`` and by the tests, so the README is what CI runs.
"""

import sys
from pathlib import Path


def readme_commands(readme: Path) -> list[str]:
    """Non-empty, non-comment lines of the first ```bash block of ``readme``."""
    lines = readme.read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip() == "```bash")
    stop = next(i for i in range(start + 1, len(lines)) if lines[i].strip() == "```")
    return [
        line.strip() for line in lines[start + 1 : stop] if line.strip() and not line.startswith("#")
    ]


if __name__ == "__main__":
    readme = Path(sys.argv[1] if len(sys.argv) > 1 else "README.md")
    print("\n".join(readme_commands(readme)))
