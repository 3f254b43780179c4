"""Every Python block in the README runs, in order, in one fresh interpreter (later blocks use
names the earlier ones define, as a reader following the page would)."""
from __future__ import annotations

import re
import subprocess
import sys

from conftest import ROOT

BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def test_readme_has_python_blocks():
    blocks = BLOCK.findall((ROOT / "README.md").read_text())
    assert len(blocks) >= 6 and all(b.strip() for b in blocks)


def test_every_python_block_runs(tmp_path):
    blocks = BLOCK.findall((ROOT / "README.md").read_text())
    (tmp_path / "specs").symlink_to(ROOT / "specs")
    script = "import matplotlib\nmatplotlib.use('Agg')\n" + "\n".join(
        f"print('--- block {i}', flush=True)\n{b}" for i, b in enumerate(blocks, 1))
    (tmp_path / "readme.py").write_text(script)
    done = subprocess.run([sys.executable, "-W", "ignore", "readme.py"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=600)
    last = re.findall(r"--- block (\d+)", done.stdout)
    assert done.returncode == 0, f"README block {last[-1] if last else '?'} failed:\n{done.stderr[-3000:]}"
    assert last == [str(i) for i in range(1, len(blocks) + 1)]
    assert (tmp_path / "z.png").stat().st_size > 0 and (tmp_path / "f.png").stat().st_size > 0
