"""Leak-scanner quality benchmark: recall and precision per source kind and per type, side
by side with kingfisher, betterleaks and detect-secrets, on a corpus generated now.

The corpus (``tests/unit/scan/corpus.py``, scored by ``corpus_score.py``) plants
credentials of ~75 types in every source kind: image ENV and LABEL, build args and RUN
lines (history), layer files, files deleted in a later layer, nested archives (tgz, jar),
and a container's env, labels and args. Decoys
(placeholders, documented examples, hashes, lockfile integrity, public keys, certificates,
documentation) and real OS noise (``/usr/share/doc``, the Python stdlib, ``node_modules``,
up to ``--noise-mb``) surround them. The image is built on a real, dedicated dockerd
(``FROM scratch`` + static busybox) and the container is created from it.

- vaultside:       ``scan image`` and ``scan containers --all`` through the engine (and,
                   with ``--baseline DIR``, the same with another checkout's package)
- kingfisher:      ``scan docker`` on the saved image, plus the image config and container
                   inspect JSON as files
- betterleaks:     ``fs`` on the extracted layers plus the same JSON files
- detect-secrets:  ``scan --all-files`` on the same directory (it reports SHA-1 hashes)

Run (as root, needs dockerd and busybox-static):
``.venv/bin/python bench/bench_scan_corpus.py [--per-type 3] [--noise-mb 60] [--skip PEER]``
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_scan import VENV_BIN, timed  # noqa: E402

from tests.integration.services.docker_engine import (  # noqa: E402
    DockerEngine,
    build_busybox_image,
)
from tests.unit.scan.corpus import KINDS, CorpusSpec, build_corpus  # noqa: E402
from tests.unit.scan.corpus_score import Reported, Score, kind_of_path, score  # noqa: E402

NOISE = [
    ("/usr/share/doc", "usr/share/doc"),
    ("/usr/lib/python3.11", "usr/lib/python3.11"),
    ("/usr/lib/node_modules", "usr/lib/node_modules"),
]
TAG = "vaultside-bench/corpus:1"


def copy_noise(dest: Path, budget_mb: int) -> int:
    """Real OS files into ``dest`` (no symlinks, no bytecode), round robin, to the budget."""
    budget = budget_mb << 20
    per = budget // len(NOISE)
    used = 0
    for src, prefix in NOISE:
        left = per
        for dirpath, dirs, files in os.walk(src):
            dirs[:] = sorted(d for d in dirs if d != "__pycache__")
            for name in sorted(files):
                p = Path(dirpath, name)
                if p.is_symlink() or not p.is_file() or name.endswith(".pyc"):
                    continue
                size = p.stat().st_size
                if size > left:
                    continue
                out = dest / prefix / p.relative_to(src)
                out.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(p, out)
                left -= size
                used += size
    return used


def write_tree(root: Path, files: dict[str, bytes]) -> None:
    for rel, data in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)


def dockerfile(spec: CorpusSpec, base: str) -> str:
    """ENV, LABEL, ARG + RUN (history), COPY files, COPY + RUN rm (deleted files)."""
    q = json.dumps  # a JSON string is a valid double-quoted Dockerfile value here
    lines = [f"FROM {base}"]
    lines += [f"ENV {k}={q(v)}" for k, v in spec.env.items()]
    lines += [f"LABEL {k}={q(v)}" for k, v in spec.labels.items()]
    lines += [f"ARG {k}" for k in spec.build_args]
    lines += [f"RUN {line}" for line in spec.run_lines]
    lines += ["COPY noise/ /", "COPY files/ /", "COPY deleted/ /", "RUN rm -rf /tmp/build"]
    return "\n".join(lines) + "\n"


def build(engine: DockerEngine, spec: CorpusSpec, work: Path, noise_mb: int) -> int:
    """Build the image and create the container; returns the noise bytes."""
    base = build_busybox_image(engine)
    ctx = work / "context"
    (ctx / "noise").mkdir(parents=True)
    noise = copy_noise(ctx / "noise", noise_mb)
    write_tree(ctx / "files", {**spec.files, **spec.decoys})
    write_tree(ctx / "deleted", spec.deleted)
    (ctx / "Dockerfile").write_text(dockerfile(spec, base))
    engine.client.images.build(
        path=str(ctx), tag=TAG, buildargs=dict(spec.build_args), rm=True, forcerm=True
    )
    for c in spec.containers:
        engine.client.containers.create(
            TAG,
            command=c["cmd"],
            environment=c["env"],
            labels=c["labels"],
            name=str(c["name"]),
            network_mode="none",
        )
    shutil.rmtree(ctx)
    return noise


def vaultside_reports(
    engine: DockerEngine, work: Path, source: Path | None = None
) -> tuple[list[Reported], float]:
    """``scan image`` + ``scan containers --all``; findings and seconds. ``source``: run the
    vaultside package of another checkout (e.g. ``main``) instead of this one."""
    reps: list[Reported] = []
    total = 0.0
    env_argv = ["env", f"DOCKER_HOST={engine.base_url}"]
    exe = [str(VENV_BIN / "vaultside")]
    if source is not None:
        env_argv.append(f"PYTHONPATH={source}")
        exe = [sys.executable, "-m", "vaultside"]
    tag = "vaultside" if source is None else "baseline"
    for name, args in (("image", ["image", TAG]), ("containers", ["containers", "--all"])):
        out = work / f"{tag}-{name}.json"
        argv = [*env_argv, *exe, "scan", *args, "--format", "json",
                "--reveal", "--fail-on", "none", "--no-progress"]  # fmt: skip
        # from the other checkout's directory: ``python -m`` puts the cwd first on sys.path
        dt, _rss, _code = timed(argv, out, cwd=source)
        total += dt
        for f in json.loads(out.read_text())["findings"]:
            if "value" not in f:
                continue  # posture findings
            loc = f["location"]
            path = "!".join([loc["path"], *loc.get("nested", [])])
            reps.append(Reported(path, loc.get("line"), f["value"]))
    return reps, total


def export(engine: DockerEngine, work: Path) -> tuple[Path, Path]:
    """The saved image, and a directory with its layers extracted plus the image config and
    the container inspect data as JSON files (what the file-based peers can scan)."""
    archive = work / "image.tar"
    with archive.open("wb") as f:
        for piece in engine.client.images.get(TAG).save(named=True):
            f.write(piece)
    tree = work / "tree"
    meta = tree / "meta"
    meta.mkdir(parents=True)
    with tarfile.open(archive) as tf:
        manifest = json.load(tf.extractfile("manifest.json"))  # type: ignore[arg-type]
        cfg = json.load(tf.extractfile(manifest[0]["Config"]))  # type: ignore[arg-type]
        (meta / "image-config.json").write_text(json.dumps(cfg, indent=2))
        for i, layer in enumerate(manifest[0]["Layers"]):
            d = tree / f"layer{i}"
            d.mkdir()
            with tarfile.open(fileobj=tf.extractfile(layer)) as lt:
                files = [m for m in lt.getmembers() if m.isfile() or m.isdir()]
                lt.extractall(d, members=files, filter="data")  # busybox links left out
    inspect = [c.attrs for c in engine.client.containers.list(all=True)]
    (meta / "containers.json").write_text(json.dumps(inspect, indent=2))
    return archive, tree


def rel(path: str, tree: Path) -> str:
    """A peer's path as a path inside the image (layer directory dropped)."""
    p = path
    for pre in (str(tree) + "/", "./"):
        if p.startswith(pre):
            p = p[len(pre) :]
    if p.startswith("layer"):
        p = p.split("/", 1)[1] if "/" in p else p
    return p


def kingfisher_reports(archive: Path, tree: Path, work: Path) -> tuple[list[Reported], float]:
    """kingfisher's docker mode on the archive, and its path mode on the JSON files."""
    reps: list[Reported] = []
    total = 0.0
    for name, args in (
        ("image", ["docker", "--archive", str(archive)]),
        ("meta", [str(tree / "meta")]),
    ):
        out = work / f"kingfisher-{name}.json"
        argv = [str(VENV_BIN / "kingfisher"), "scan", *args, "--format", "json", "--no-validate",
                "--no-update-check"]  # fmt: skip
        dt, _rss, _code = timed(argv, out)
        total += dt
        try:
            doc, _end = json.JSONDecoder().raw_decode(out.read_text())
        except ValueError:
            continue
        for f in doc.get("findings", []):
            fd = f["finding"]
            path = rel(str(fd.get("path", "")).split(" | ")[-1], tree)
            reps.append(Reported(path, int(fd.get("line") or 0) or None, fd.get("snippet")))
    return reps, total


def betterleaks_reports(tree: Path, work: Path) -> tuple[list[Reported], float]:
    out = work / "betterleaks.json"
    argv = [str(VENV_BIN / "betterleaks"), "fs", str(tree), "-o", str(out), "--no-banner",
            "--exit-code", "0"]  # fmt: skip
    dt, _rss, _code = timed(argv)
    findings = json.loads(out.read_text()).get("findings", []) if out.exists() else []
    reps = [
        Reported(
            rel(f["location"]["path"], tree), f["location"].get("start_line"), f["match"]["value"]
        )
        for f in findings
    ]
    return reps, dt


def detect_secrets_reports(tree: Path, work: Path) -> tuple[list[Reported], float]:
    out = work / "detect-secrets.json"
    dt, _rss, _code = timed(
        [str(VENV_BIN / "detect-secrets"), "scan", "--all-files", "."], out, cwd=tree
    )
    results = json.loads(out.read_text()).get("results", {})
    reps = [
        Reported(rel(path, tree), int(item["line_number"]), None, sha1=item["hashed_secret"])
        for path, items in results.items()
        for item in items
    ]
    return reps, dt


def classify(path: str) -> str:
    """Source kind of a false positive (the peers' JSON files count as config/container)."""
    if path.startswith("meta/image-config"):
        return "image-config"
    if path.startswith("meta/containers"):
        return "container"
    return kind_of_path(path)


def pct(a: int, b: int) -> str:
    return f"{100 * a / b:5.1f}%" if b else "   - "


def report(scores: dict[str, Score], seconds: dict[str, float]) -> None:
    tools = list(scores)
    print("\n| measure | " + " | ".join(tools) + " |")
    print("|---|" + "---|" * len(tools))
    print(
        "| recall | "
        + " | ".join(f"{100 * s.recall:.1f}% ({s.found}/{s.plants})" for s in scores.values())
        + " |"
    )
    print(
        "| precision | "
        + " | ".join(f"{100 * s.precision:.1f}% ({s.tp}/{s.tp + s.fp})" for s in scores.values())
        + " |"
    )
    print("| seconds | " + " | ".join(f"{seconds[t]:.1f}" for t in tools) + " |")
    print("\nrecall / precision per source kind")
    print("| kind | " + " | ".join(tools) + " |")
    print("|---|" + "---|" * len(tools))
    for kind in KINDS:
        cells = []
        for s in scores.values():
            f, n = s.by_kind.get(kind, (0, 0))
            cells.append(f"{pct(f, n)} / {100 * s.kind_precision(kind):.0f}%")
        print(f"| {kind} | " + " | ".join(cells) + " |")
    extra = sorted({k for s in scores.values() for k in s.fp_by_kind} - set(KINDS))
    for kind in extra:
        print(
            f"| false positives in {kind} | "
            + " | ".join(str(s.fp_by_kind.get(kind, 0)) for s in scores.values())
            + " |"
        )
    print("\nrecall per type")
    print("| type | " + " | ".join(tools) + " |")
    print("|---|" + "---|" * len(tools))
    for typ in sorted(next(iter(scores.values())).by_type):
        cells = [f"{s.by_type[typ][0]}/{s.by_type[typ][1]}" for s in scores.values()]
        print(f"| {typ} | " + " | ".join(cells) + " |")
    for tool, s in scores.items():
        if s.fp_examples:
            print(f"\n{tool} false positives (first 15): " + ", ".join(s.fp_examples[:15]))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--per-type", type=int, default=3)
    ap.add_argument("--noise-mb", type=int, default=60)
    ap.add_argument("--seed", type=int, default=13)
    ap.add_argument("--skip", action="append", default=[], help="a peer to leave out")
    ap.add_argument("--keep", type=Path, help="work in this directory and keep it")
    ap.add_argument(
        "--baseline", type=Path, help="also run the vaultside package of this checkout (a column)"
    )
    args = ap.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="bench-corpus-"))
    work.mkdir(parents=True, exist_ok=True)
    spec = build_corpus(args.seed, args.per_type)
    kinds = {p.kind for p in spec.plants}
    print(f"corpus: {len(spec.plants)} plants, {len({p.type for p in spec.plants})} types, "
          f"{len(kinds)} source kinds, {len(spec.decoys)} decoy files")  # fmt: skip
    print("load average:", " ".join(map(str, os.getloadavg())))
    engine = DockerEngine.start()
    try:
        noise = build(engine, spec, work, args.noise_mb)
        print(f"image built: {noise / 1e6:.0f} MB of OS noise")
        scores: dict[str, Score] = {}
        seconds: dict[str, float] = {}
        reps, seconds["vaultside"] = vaultside_reports(engine, work)
        scores["vaultside"] = score(reps, spec.plants, classify)
        if args.baseline is not None:
            reps, seconds["vaultside@baseline"] = vaultside_reports(engine, work, args.baseline)
            scores["vaultside@baseline"] = score(reps, spec.plants, classify)
        archive, tree = export(engine, work)
        peers = {
            "kingfisher": lambda: kingfisher_reports(archive, tree, work),
            "betterleaks": lambda: betterleaks_reports(tree, work),
            "detect-secrets": lambda: detect_secrets_reports(tree, work),
        }
        for name, run in peers.items():
            if name in args.skip or not (VENV_BIN / name).exists():
                print(f"{name}: left out")
                continue
            reps, seconds[name] = run()
            scores[name] = score(reps, spec.plants, classify)
        report(scores, seconds)
        print("\nload average:", " ".join(map(str, os.getloadavg())))
    finally:
        engine.close()
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
