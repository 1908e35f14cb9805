"""What the identify path imports: never the training code or the synthetic renderer.

The service and `reid identify` ship in the runtime image; reid.training (the trainer, a
1,500-line renderer, torch optimisers) is imported only by the commands that train or render.
Checked in a fresh interpreter, since this test process has imported everything already.
"""

from __future__ import annotations

import json
import subprocess
import sys


def _modules_after(code: str) -> list[str]:
    out = subprocess.run([sys.executable, "-c", code + "\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_identify_path_never_imports_training() -> None:
    loaded = _modules_after("import service.app, reid.identify, reid.cli, reid.batch, reid.keypoints.store\n"
                            "service.app.create_app")
    assert "reid.identify" in loaded and "service.app" in loaded  # the check looks at the right process
    assert [m for m in loaded if m == "reid.training" or m.startswith("reid.training.")] == []


def test_synth_command_imports_the_renderer() -> None:
    loaded = _modules_after("from reid.training import synth")
    assert {"reid.training.synth.coat", "reid.training.synth.render", "reid.training.synth.dataset"} <= set(loaded)
