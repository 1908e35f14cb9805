"""Fail (exit 1) if a CUDA build of torch or any nvidia-* package got installed.

The project targets CPU machines; a CUDA wheel means a dependency pulled an unpinned
torch (several GB) and the environment no longer matches what was tested.
"""

import sys
from importlib import metadata


def main() -> int:
    problems = []
    nvidia = sorted(d.metadata["Name"] for d in metadata.distributions() if d.metadata["Name"].lower().startswith("nvidia"))
    if nvidia:
        problems.append(f"nvidia packages installed: {', '.join(nvidia)}")
    import torch

    if torch.version.cuda is not None or "+cpu" not in torch.__version__:
        problems.append(f"torch {torch.__version__} is not the CPU build (cuda={torch.version.cuda})")
    for p in problems:
        print(f"check_cpu_only: {p}", file=sys.stderr)
    if not problems:
        print(f"check_cpu_only: ok (torch {torch.__version__}, no nvidia packages)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
