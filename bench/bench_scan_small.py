"""Leak-scanner benchmark on MANY SMALL FILES: vaultside vs kingfisher and betterleaks, paired.

Builds a ``docker save`` archive of >= --files ordinary small files from this machine (the
Python stdlib, C headers, node_modules, perl, site-packages sources; each < 64 KB) plus the
planted layer of ``bench_scan.py``, then runs the three tools in interleaved rounds
(vaultside, kingfisher, betterleaks, vaultside, ...) and prints, per peer, the median of the
per-round ratios ``peer seconds / vaultside seconds`` (a load spike on this shared host hits
both tools of a round alike). Also the prefilter-only rate (hyperscan over the same bytes, one
core): the ceiling a 2-core machine cannot beat.

Run: ``.venv/bin/python bench/bench_scan_small.py --files 12000 --rounds 5``
(peers: ``pip install -e '.[dev]'``). ``--profile`` records a py-spy flame graph of one
vaultside run (``--jobs 1``) into the work directory and prints its top frames.
"""

from __future__ import annotations

import argparse
import io
import os
import random
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from bench_scan import (
    VENV_BIN,
    Corpus,
    Plant,
    _add,
    extract_layers,
    run_betterleaks,
    run_kingfisher,
    run_vaultside,
    score,
    text_file,
    write_image_archive,
)

SOURCES = [
    ("/usr/lib/python3.11", "usr/lib/python3.11"),
    ("/usr/include", "usr/include"),
    ("/usr/lib/node_modules", "usr/lib/node_modules"),
    ("/usr/share/perl", "usr/share/perl"),
    (f"{sys.prefix}/lib/python3.11/site-packages", "opt/venv/lib/python3.11/site-packages"),
]
MAX_FILE = 64 * 1024


def build_small(root: Path, n_files: int, seed: int = 11, pyc: bool = False) -> tuple[Corpus, int]:
    """An image of ``n_files`` small files in one layer per source, plus a planted layer.

    ``pyc``: a Python tree (the stdlib and site-packages only) with its ``__pycache__``
    (``.pyc`` files) and every file's real mtime, as an install has them (a ``.pyc`` records
    its source's mtime and size).
    """
    rng = random.Random(seed)
    corpus = Corpus(root / "image.tar")
    layers: list[bytes] = []
    count = 0
    for src, prefix in [s for s in SOURCES if not pyc or "python3" in s[0]]:
        if count >= n_files or not Path(src).is_dir():
            continue
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tf:
            for dirpath, dirs, files in os.walk(src):
                dirs[:] = sorted(d for d in dirs if pyc or d != "__pycache__")
                for name in sorted(files):
                    p = Path(dirpath, name)
                    if count >= n_files or p.is_symlink() or not p.is_file():
                        continue
                    st = p.stat()
                    skip = (".so",) if pyc else (".so", ".pyc")
                    if st.st_size > MAX_FILE or name.endswith(skip):
                        continue
                    arcname = f"{prefix}/{p.relative_to(src).as_posix()}"
                    if pyc:
                        info = tarfile.TarInfo(arcname)
                        info.size, info.mtime = st.st_size, int(st.st_mtime)
                        tf.addfile(info, io.BytesIO(p.read_bytes()))
                    else:
                        _add(tf, arcname, p.read_bytes())
                    count += 1
        layers.append(buf.getvalue())
    idx = len(layers)
    planted = io.BytesIO()
    with tarfile.open(fileobj=planted, mode="w") as tf:
        for path, n in (("etc/app/prod.env", 6), ("srv/app/config.yml", 4)):
            text, found = text_file(rng, n, f"# {path}")
            _add(tf, path, text.encode())
            corpus.plants += [Plant(k, v, idx, path, line) for k, v, line in found]
    layers.append(planted.getvalue())
    write_image_archive(corpus, layers, "bench/small:1")
    return corpus, count + sum(1 for _ in corpus.plants)


def prefilter_rate(extract: Path) -> tuple[float, int, float]:
    """(MB/s, files, seconds) of the keyword prefilter alone over every extracted file."""
    from vaultside.scan.detectors.rules import RuleDetector, default_rules

    det = RuleDetector(default_rules())
    db = det._db  # the one hyperscan database the scanner runs on every chunk
    assert db is not None
    datas = [p.read_bytes() for p in extract.rglob("*") if p.is_file() and not p.is_symlink()]
    total = sum(len(d) for d in datas)
    hits = 0

    def on_match(*_a: object) -> None:
        nonlocal hits
        hits += 1

    best = float("inf")
    for _ in range(3):
        t = time.perf_counter()
        for d in datas:
            db.scan(d, match_event_handler=on_match)
        best = min(best, time.perf_counter() - t)
    return total / 1e6 / best, len(datas), best


def profile(corpus: Corpus, work: Path) -> None:
    """py-spy: where one single-process vaultside run spends its time."""
    spy = VENV_BIN / "py-spy"
    out = work / "profile.txt"
    argv = [str(spy), "record", "--format", "raw", "--rate", "250", "-o", str(out), "--",
            str(VENV_BIN / "vaultside"), "scan", "archive", str(corpus.archive), "--jobs", "1",
            "--format", "json", "--fail-on", "none", "--no-progress"]  # fmt: skip
    subprocess.run(argv, check=True, capture_output=True)
    own: dict[str, int] = {}
    total = 0
    for line in out.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        frames = stack.split(";")
        total += int(n)
        for frame in {f.split(" (")[0] + " (" + f.split(" (")[1].split(":")[0] + ")"
                      for f in frames if " (" in f}:  # fmt: skip
            own[frame] = own.get(frame, 0) + int(n)
    print(f"py-spy: {total} samples; inclusive share of the top frames:")
    for frame, n in sorted(own.items(), key=lambda kv: -kv[1])[:25]:
        print(f"  {100 * n / total:5.1f}%  {frame}")


def main() -> None:
    """Build, run interleaved rounds, print paired ratios."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--files", type=int, default=12000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--keep", type=Path, help="build in this directory and keep it")
    ap.add_argument("--profile", action="store_true", help="py-spy one vaultside run")
    ap.add_argument("--skip", action="append", default=[], help="a peer to leave out")
    ap.add_argument("--pyc", action="store_true", help="a Python tree: __pycache__ kept")
    ap.add_argument(
        "--slow-rounds", type=int, default=1,
        help="rounds that include kingfisher (about a minute per run here on small files)",
    )  # fmt: skip
    args = ap.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="bench-small-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        corpus, n = build_small(work, args.files, pyc=args.pyc)
        mb = corpus.layer_bytes / 1e6
        print(f"image: {n} files, {mb:.0f} MB of layer bytes, {len(corpus.plants)} plants")
        print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        extract = work / "layers"
        extract_layers(corpus, extract)
        # As installed by pip, which compiles bytecode: with PYTHONDONTWRITEBYTECODE set (as
        # on this host) an editable checkout would otherwise compile every module each run.
        package = Path(__file__).resolve().parent.parent / "vaultside"
        subprocess.run([sys.executable, "-m", "compileall", "-q", str(package)], check=True)
        rate, files, secs = prefilter_rate(extract)
        print(f"prefilter alone (hyperscan, 1 core): {rate:.0f} MB/s over {files} files "
              f"({secs:.2f} s)")  # fmt: skip
        peers = [p for p in ("kingfisher", "betterleaks") if p not in args.skip]
        peers = [p for p in peers if (VENV_BIN / p).exists()]
        times: dict[str, list[float]] = {"vaultside": [], **{p: [] for p in peers}}
        last = {}
        pairs: dict[str, list[float]] = {p: [] for p in peers}
        for i in range(args.rounds):
            last["vaultside"] = run_vaultside(corpus, work)
            times["vaultside"].append(last["vaultside"].seconds)
            for p in peers:
                if p == "kingfisher" and i >= args.slow_rounds:
                    continue
                r = (
                    run_kingfisher(corpus, work)
                    if p == "kingfisher"
                    else run_betterleaks(extract, work)
                )
                last[p] = r
                times[p].append(r.seconds)
                pairs[p].append(r.seconds / last["vaultside"].seconds)
        print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        print(f"{'tool':<12} {'median s':>9} {'MB/s':>7} {'recall':>8} {'peak RSS MB':>12}")
        for tool, ts in times.items():
            found, _fps = score(last[tool], corpus.plants)
            med = statistics.median(ts)
            print(f"{tool:<12} {med:>9.2f} {mb / med:>7.0f} {found:>3}/{len(corpus.plants):<4}"
                  f" {last[tool].peak_rss_mb:>12.0f}")  # fmt: skip
        for p in peers:
            ratios = pairs[p]
            print(f"vaultside vs {p}, {len(ratios)} paired rounds: median "
                  f"{statistics.median(ratios):.2f}x (min {min(ratios):.2f}x, "
                  f"max {max(ratios):.2f}x)")  # fmt: skip
        if args.profile:
            profile(corpus, work)
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
