"""The gallery: every spec in ``specs/`` drawn into ``docs/gallery/``, plus a legend.

For each spec ``NAME`` the gallery holds ``NAME.dot`` (the DOT source, which our code alone
decides) and ``NAME.svg`` (laid out by ``dot``; it records the SHA-256 of the DOT it was drawn
from in a comment). A picture is stale when the DOT it would get today differs from the
committed one, or its SVG was drawn from other DOT. Both compare :func:`canonical` DOT, so the
check depends neither on the ``dot`` version (SVG bytes are never compared) nor on how the
``graphviz`` package quotes and orders attributes. Regenerate with::

    python -m jepa_graph.diagrams.gallery            # or: jepa-graph render --gallery docs/gallery
    python -m jepa_graph.diagrams.gallery --check    # exit 1 when a committed picture is stale
"""
from __future__ import annotations

import argparse
import hashlib
import re
import sys
from pathlib import Path

from . import dot_source, pipe
from . import notation as N
from .layout import Options, to_dot
from .legend import legend_scene

ROOT = Path(__file__).resolve().parents[2]
SPEC_SUFFIXES = (".yaml", ".yml", ".jepa")
_HASH_RE = re.compile(r"<!-- jepa-graph dot sha256: ([0-9a-f]{64}) -->")


def spec_files(specs: Path) -> list[Path]:
    return sorted(p for p in specs.iterdir() if p.suffix in SPEC_SUFFIXES)


def picture_names(specs: Path) -> dict[str, Path]:
    """Gallery name (no extension) -> spec file; `x.yaml` and `x.jepa` side by side keep their suffix."""
    files = spec_files(specs)
    stems = [p.stem for p in files]
    return {(p.stem if stems.count(p.stem) == 1 else f"{p.stem}_{p.suffix[1:]}"): p for p in files}


def expected(specs: Path) -> dict[str, str]:
    """File name in the gallery -> DOT source it should hold (specs, then the legend)."""
    out = {f"{name}.dot": dot_source(_rel(p)) for name, p in picture_names(specs).items()}
    out["legend.dot"] = to_dot(legend_scene(), Options(shapes=True)).source
    return out


def write_gallery(specs: Path, gallery: Path) -> list[Path]:
    """(Re)write every picture; removes pictures (.dot and .svg) that no spec draws."""
    gallery.mkdir(parents=True, exist_ok=True)
    want = expected(specs)
    written = []
    for old in sorted(gallery.glob("*.dot")) + sorted(gallery.glob("*.svg")):
        if old.with_suffix(".dot").name not in want:
            old.unlink()
    for name, src in want.items():
        dot_path = gallery / name
        svg_path = dot_path.with_suffix(".svg")
        dot_path.write_text(src)
        svg = pipe(src, "svg").decode("utf-8")
        svg_path.write_text(_stamp(svg, src))
        written += [dot_path, svg_path]
    index = gallery / "README.md"
    index.write_text(_index(specs))
    written.append(index)
    return written


def check_gallery(specs: Path, gallery: Path) -> list[str]:
    """Names of gallery files that are missing, stale or left over (empty list: up to date)."""
    want = expected(specs)
    stale = []
    for name, src in want.items():
        dot_path, svg_path = gallery / name, (gallery / name).with_suffix(".svg")
        if not dot_path.is_file() or canonical(dot_path.read_text()) != canonical(src):
            stale.append(name)
        m = _HASH_RE.search(svg_path.read_text()) if svg_path.is_file() else None
        if m is None or m.group(1) != _sha(src):
            stale.append(svg_path.name)
    for p in sorted(gallery.glob("*.dot")) + sorted(gallery.glob("*.svg")):  # left over: no spec draws it
        if p.with_suffix(".dot").name not in want:
            stale.append(p.name)
    index = gallery / "README.md"
    if not index.is_file() or index.read_text() != _index(specs):
        stale.append("README.md")
    return stale


def _rel(p: Path) -> Path:
    """Paths relative to the repo, so error captions do not depend on where the clone lives."""
    try:
        return p.resolve().relative_to(Path.cwd())
    except ValueError:
        return p


def canonical(dot: str) -> str:
    """DOT with serializer choices removed: quotes around IDs, attribute order, ``;``, layout.

    The gallery compares this, so a newer ``graphviz`` package that quotes or orders
    differently does not make every picture look stale; any change in what is drawn still does.
    """
    toks, i, n = [], 0, len(dot)
    while i < n:
        c = dot[i]
        if c.isspace() or c == ";":
            i += 1
        elif c == '"':
            j = i + 1
            while dot[j] != '"':
                j += 2 if dot[j] == "\\" else 1
            toks.append(dot[i + 1:j].replace('\\"', '"'))
            i = j + 1
        elif c == "<":  # an HTML string: balanced angle brackets
            depth, j = 0, i
            while True:
                depth += {"<": 1, ">": -1}.get(dot[j], 0)
                j += 1
                if depth == 0:
                    break
            toks.append(dot[i:j])
            i = j
        elif dot.startswith("->", i):
            toks.append("->")
            i += 2
        elif c.isalnum() or c in "_.#-":
            j = i
            while j < n and (dot[j].isalnum() or dot[j] in "_.#-") and not dot.startswith("->", j):
                j += 1
            toks.append(dot[i:j])
            i = j
        else:
            toks.append(c)
            i += 1
    out, k = [], 0
    while k < len(toks):
        if toks[k] == "[":  # attribute list: sort its key=value pairs
            end = toks.index("]", k)
            body = [t for t in toks[k + 1:end] if t != ","]
            pairs = sorted(f"{body[m]}={body[m + 2]}" for m in range(0, len(body) - 2, 3))
            out.append("[" + " ".join(pairs) + "]")
            k = end + 1
        else:
            out.append(toks[k])
            k += 1
    return " ".join(out)


def _sha(text: str) -> str:
    return hashlib.sha256(canonical(text).encode()).hexdigest()


def _stamp(svg: str, src: str) -> str:
    head, _, rest = svg.partition("\n")
    return f"{head}\n<!-- jepa-graph dot sha256: {_sha(src)} -->\n{rest}"


def _index(specs: Path) -> str:
    lines = ["# Gallery", "", "Every spec in `specs/`, drawn by `jepa-graph render` (regenerate: "
             "`python -m jepa_graph.diagrams.gallery`). The legend shows the notation.", "",
             "![notation](legend.svg)", "", "| kind | drawn as | meaning |", "|---|---|---|"]
    lines += [f"| {k} | {how} | {what} |" for k, how, what in N.table()]
    lines.append("")
    for name, p in picture_names(specs).items():
        lines += [f"## {name}", "", f"`specs/{p.name}`", "", f"![{name}]({name}.svg)", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m jepa_graph.diagrams.gallery", description=__doc__.splitlines()[0])
    p.add_argument("--specs", default=str(ROOT / "specs"), help="folder of specs (default: the repo's specs/)")
    p.add_argument("--out", default=str(ROOT / "docs" / "gallery"), help="gallery folder (default docs/gallery)")
    p.add_argument("--check", action="store_true", help="only report stale pictures; exit 1 if any")
    args = p.parse_args(argv)
    if args.check:
        stale = check_gallery(Path(args.specs), Path(args.out))
        for s in stale:
            sys.stderr.write(f"stale: {s}\n")
        return 1 if stale else 0
    for w in write_gallery(Path(args.specs), Path(args.out)):
        sys.stdout.write(f"wrote {w}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
