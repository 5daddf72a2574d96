"""Leak-scanner benchmark: vaultside vs kingfisher, betterleaks and detect-secrets, one run.

Builds a ``docker save`` image archive (>= --size-mb of ordinary files from this machine:
C headers, the Python stdlib, node_modules, docs, site-packages) with planted credentials
generated now, then runs, side by side:

- vaultside:      ``vaultside scan archive IMAGE.tar``
- kingfisher:     ``kingfisher scan docker --archive IMAGE.tar`` (its image/archive mode)
- betterleaks:    ``betterleaks fs`` on the extracted layers
- detect-secrets: ``detect-secrets scan --all-files`` on the extracted layers

and prints MB/s of layer bytes, recall on the planted set, false positives (reported values
that are not planted ones) and peak RSS. Extraction time is not charged to the peers.
``--rss-only-mb 1024`` builds a 1 GB image and reports vaultside's peak RSS only.

Run: ``.venv/bin/python bench/bench_scan.py --size-mb 200 [--skip detect-secrets]``
(peers: ``pip install -e '.[bench]'``).
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import os
import random
import shutil
import statistics
import string
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
import zlib
from dataclasses import dataclass, field, replace
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

VENV_BIN = Path(sys.executable).parent
AN = string.ascii_letters + string.digits
HEX = "0123456789abcdef"
B62 = string.digits + string.ascii_uppercase + string.ascii_lowercase
SOURCES = [  # (directory on this machine, path prefix inside the image)
    ("/usr/include", "usr/include"),
    ("/usr/lib/python3.11", "usr/lib/python3.11"),
    ("/usr/lib/node_modules", "usr/lib/node_modules"),
    ("/usr/share/doc", "usr/share/doc"),
    ("/usr/share/perl", "usr/share/perl"),
    (f"{sys.prefix}/lib/python3.11/site-packages", "opt/venv/lib/python3.11/site-packages"),
]


def rnd(rng: random.Random, alphabet: str, n: int) -> str:
    """Random chars (with a digit and a letter when the alphabet has both)."""
    want_digit = any(c.isdigit() for c in alphabet)
    want_alpha = any(c.isalpha() for c in alphabet)
    while True:
        s = "".join(rng.choice(alphabet) for _ in range(n))
        if (not want_digit or any(c.isdigit() for c in s)) and (
            not want_alpha or any(c.isalpha() for c in s)
        ):
            return s


def github_token(rng: random.Random) -> str:
    """ghp_ + 30 base62 + base62(CRC32) checksum."""
    body = rnd(rng, AN, 30)
    n, out = zlib.crc32(body.encode()), ""
    while n:
        n, r = divmod(n, 62)
        out = B62[r] + out
    return "ghp_" + body + out.rjust(6, "0")


@dataclass
class Plant:
    """One planted credential and where it is."""

    kind: str
    value: str
    layer: int
    path: str
    line: int | None  # None inside nested archives
    nested: bool = False


@dataclass
class Corpus:
    """The image archive and what was planted in it."""

    archive: Path
    layers: list[bytes] = field(default_factory=list)  # each layer tar, in order
    plants: list[Plant] = field(default_factory=list)
    layer_bytes: int = 0


def credential_lines(rng: random.Random) -> list[tuple[str, str, str]]:
    """(kind, value, line) for one config file's worth of credentials."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    ).decode()
    aws_id = "AKIA" + rnd(rng, "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", 16)
    aws_secret = rnd(rng, AN + "/+", 40)
    pw = rnd(rng, AN, 22)
    vals = [
        ("aws-key-id", aws_id, f"aws_access_key_id = {aws_id}"),
        ("aws-secret", aws_secret, f"aws_secret_access_key = {aws_secret}"),
        ("github", (t := github_token(rng)), f"GITHUB_TOKEN={t}"),
        ("gitlab", (t := "glpat-" + rnd(rng, AN, 20)), f"GITLAB_TOKEN={t}"),
        ("slack", (t := f"xoxb-{rnd(rng, string.digits, 11)}-{rnd(rng, string.digits, 12)}-"
                   f"{rnd(rng, AN, 24)}"), f"SLACK_BOT_TOKEN={t}"),
        ("stripe", (t := "sk_live_" + rnd(rng, AN, 32)), f"STRIPE_KEY={t}"),
        ("sendgrid", (t := f"SG.{rnd(rng, AN, 22)}.{rnd(rng, AN, 43)}"), f"SENDGRID_API_KEY={t}"),
        ("npm", (t := "npm_" + rnd(rng, AN, 36)), f"//registry.npmjs.org/:_authToken={t}"),
        ("openai", (t := "sk-proj-" + rnd(rng, AN, 40) + "T3BlbkFJ" + rnd(rng, AN, 40)),
         f"OPENAI_API_KEY={t}"),
        ("password", pw, f'DB_PASSWORD="{pw}"'),
        ("url-password", (u := rnd(rng, AN, 18)), f"DATABASE_URL=postgres://app:{u}@db:5432/app"),
        ("private-key", pem.strip(), pem.strip()),
    ]  # fmt: skip
    return vals


def text_file(rng: random.Random, n: int, header: str) -> tuple[str, list[tuple[str, str, int]]]:
    """A config file with ``n`` credentials among filler; returns text and (kind, value, line)."""
    lines = [header]
    out = []
    for kind, value, line in rng.sample(credential_lines(rng), n):
        lines += [f"# setting {rnd(rng, AN, 6)}", f"timeout = {rng.randint(1, 99)}"]
        out.append((kind, value, len(lines) + 1))
        lines += line.split("\n")
    return "\n".join(lines) + "\n", out


def _add(tf: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = 1_700_000_000
    tf.addfile(info, io.BytesIO(data))


def build_corpus(root: Path, size_mb: int, seed: int = 7) -> Corpus:
    """Write the image archive under ``root``."""
    rng = random.Random(seed)
    corpus = Corpus(root / "image.tar")
    layer_tars: list[bytes] = []
    budget = size_mb * 1024 * 1024
    # ordinary content, one layer per source directory, repeated until the budget is met
    rounds = 0
    while budget > 0:
        for src, prefix in SOURCES:
            if budget <= 0 or not Path(src).is_dir():
                continue
            buf = io.BytesIO()
            with tarfile.open(fileobj=buf, mode="w") as tf:
                for dirpath, _dirs, files in os.walk(src):
                    for name in sorted(files):
                        p = Path(dirpath, name)
                        if budget <= 0 or p.is_symlink() or not p.is_file():
                            continue
                        rel = p.relative_to(src).as_posix()
                        pre = prefix if rounds == 0 else f"{prefix}-copy{rounds}"
                        data = p.read_bytes()
                        _add(tf, f"{pre}/{rel}", data)
                        budget -= len(data)
            layer_tars.append(buf.getvalue())
        rounds += 1
    # planted layers
    plants_layer = io.BytesIO()
    idx = len(layer_tars)
    with tarfile.open(fileobj=plants_layer, mode="w") as tf:
        for path, n in (
            ("etc/app/prod.env", 6),
            ("srv/app/config.yml", 4),
            ("usr/lib/python3.11/site-packages/acme_client/settings.py", 4),
            ("usr/lib/node_modules/acme-sdk/lib/config.js", 4),
            ("home/app/.config/deploy.ini", 4),
        ):
            text, found = text_file(rng, n, f"# {path}")
            _add(tf, path, text.encode())
            corpus.plants += [Plant(k, v, idx, path, line) for k, v, line in found]
        jar_text, jar_found = text_file(rng, 3, "# application.properties")
        jbuf = io.BytesIO()
        with zipfile.ZipFile(jbuf, "w", zipfile.ZIP_DEFLATED) as zf:
            zf.writestr("META-INF/MANIFEST.MF", "Manifest-Version: 1.0\n")
            zf.writestr("BOOT-INF/classes/application.properties", jar_text)
        _add(tf, "opt/app/app.jar", jbuf.getvalue())
        corpus.plants += [Plant(k, v, idx, "opt/app/app.jar", None, True) for k, v, _ in jar_found]
        tgz_text, tgz_found = text_file(rng, 3, "# bundled .env")
        tbuf = io.BytesIO()
        with tarfile.open(fileobj=tbuf, mode="w") as inner:
            _add(inner, "bundle/.env", tgz_text.encode())
        _add(tf, "opt/app/bundle.tar.gz", gzip.compress(tbuf.getvalue()))
        corpus.plants += [
            Plant(k, v, idx, "opt/app/bundle.tar.gz", None, True) for k, v, _ in tgz_found
        ]
        del_text, del_found = text_file(rng, 3, "# build-time secrets")
        _add(tf, "tmp/build/secrets.env", del_text.encode())
        corpus.plants += [Plant(k, v, idx, "tmp/build/secrets.env", ln) for k, v, ln in del_found]
    layer_tars.append(plants_layer.getvalue())
    rm = io.BytesIO()
    with tarfile.open(fileobj=rm, mode="w") as tf:
        _add(tf, "tmp/build/.wh.secrets.env", b"")
    layer_tars.append(rm.getvalue())
    write_image_archive(corpus, layer_tars, "bench/app:1", {"Env": ["PATH=/usr/bin"]})
    return corpus


def write_image_archive(
    corpus: Corpus, layers: list[bytes], tag: str, config: dict[str, object] | None = None
) -> None:
    """``corpus.archive`` as ``docker save`` writes it (layer tars, image config with
    ``config`` if given, manifest.json); records the layers on ``corpus``."""
    corpus.layers = layers
    corpus.layer_bytes = sum(len(t) for t in layers)
    diff_ids = ["sha256:" + hashlib.sha256(t).hexdigest() for t in layers]
    image = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            **({"config": config} if config is not None else {}),
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
            "history": [{"created_by": f"COPY layer{i} /"} for i in range(len(layers))],
        }
    ).encode()
    cfg = hashlib.sha256(image).hexdigest() + ".json"
    names = [f"{d[7:]}/layer.tar" for d in diff_ids]
    manifest = [{"Config": cfg, "RepoTags": [tag], "Layers": names}]
    with tarfile.open(corpus.archive, "w") as out:
        for name, data in zip(names, layers, strict=True):
            _add(out, name, data)
        _add(out, cfg, image)
        _add(out, "manifest.json", json.dumps(manifest).encode())


def extract_layers(corpus: Corpus, dest: Path) -> None:
    """Each layer into ``dest/<i>/`` (as the peers see an image)."""
    for i, data in enumerate(corpus.layers):
        d = dest / str(i)
        d.mkdir(parents=True)
        with tarfile.open(fileobj=io.BytesIO(data)) as tf:
            tf.extractall(d, filter="data")


@dataclass
class Run:
    """One tool's result."""

    tool: str
    seconds: float
    peak_rss_mb: float
    values: set[str]  # reported secret values (or sha1 hashes for detect-secrets)
    locations: set[tuple[str, int]]  # (path relative to the image, line)
    hashed: bool = False


def timed(
    argv: list[str], stdout: Path | None = None, cwd: Path | None = None
) -> tuple[float, float, int]:
    """Run ``argv``; wall seconds, peak RSS (MB) of the tool, exit code."""
    wrapper = (
        "import resource,subprocess,sys,time\n"
        "t=time.perf_counter()\n"
        "out=open(sys.argv[1],'wb') if sys.argv[1] != '-' else subprocess.DEVNULL\n"
        "p=subprocess.run(sys.argv[2:],stdout=out,stderr=subprocess.DEVNULL)\n"
        "dt=time.perf_counter()-t\n"
        "print(dt, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, p.returncode)\n"
    )
    res = subprocess.run(
        [sys.executable, "-c", wrapper, str(stdout) if stdout else "-", *argv],
        capture_output=True, text=True, check=True, cwd=cwd,
    )  # fmt: skip
    dt, rss_kb, code = res.stdout.split()
    return float(dt), int(rss_kb) / 1024, int(code)


def _image_path(path: str, extract: Path | None) -> str:
    p = path
    if extract is not None and p.startswith(str(extract)):
        p = p[len(str(extract)) :].lstrip("/")
        p = p.split("/", 1)[1] if "/" in p else p  # drop the layer index
    return p


def run_vaultside(corpus: Corpus, work: Path) -> Run:
    """vaultside on the archive."""
    out = work / "vaultside.json"
    argv = [str(VENV_BIN / "vaultside"), "scan", "archive", str(corpus.archive), "--format",
            "json", "--reveal", "--fail-on", "none", "--no-progress"]  # fmt: skip
    dt, rss, _ = timed(argv, out)
    findings = json.loads(out.read_text())["findings"]
    return Run(
        "vaultside", dt, rss,
        {f["value"] for f in findings if "value" in f},
        {(f["location"]["path"], f["location"]["line"] or 0) for f in findings},
    )  # fmt: skip


def run_kingfisher(corpus: Corpus, work: Path) -> Run:
    """kingfisher's docker archive mode."""
    out = work / "kingfisher.json"
    argv = [str(VENV_BIN / "kingfisher"), "scan", "docker", "--archive", str(corpus.archive),
            "--format", "json", "--no-validate", "--no-update-check"]  # fmt: skip
    dt, rss, _ = timed(argv, out)
    try:  # a findings document, then a summary document
        doc, _end = json.JSONDecoder().raw_decode(out.read_text())
        findings = doc.get("findings", [])
    except ValueError:
        findings = []
    vals = {f["finding"]["snippet"] for f in findings}
    locs = {(str(f["finding"].get("path", "")).split(" | ")[-1], int(f["finding"].get("line") or 0))
            for f in findings}  # fmt: skip
    return Run("kingfisher", dt, rss, vals, locs)


def run_betterleaks(extract: Path, work: Path) -> Run:
    """betterleaks on the extracted layers."""
    out = work / "betterleaks.json"
    argv = [str(VENV_BIN / "betterleaks"), "fs", str(extract), "-o", str(out), "--no-banner",
            "--exit-code", "0"]  # fmt: skip
    dt, rss, _ = timed(argv)
    findings = json.loads(out.read_text()).get("findings", []) if out.exists() else []
    return Run(
        "betterleaks", dt, rss,
        {f["match"]["value"] for f in findings},
        {(_image_path(f["location"]["path"], extract), int(f["location"]["start_line"] or 0))
         for f in findings},
    )  # fmt: skip


def run_detect_secrets(extract: Path, work: Path) -> Run:
    """detect-secrets on the extracted layers (it reports SHA-1 hashes of values)."""
    out = work / "detect-secrets.json"
    argv = [str(VENV_BIN / "detect-secrets"), "scan", "--all-files", "."]
    dt, rss, _ = timed(argv, out, cwd=extract)  # it reports paths relative to the cwd
    results = json.loads(out.read_text()).get("results", {})
    vals, locs = set(), set()
    for path, items in results.items():
        for item in items:
            vals.add(item["hashed_secret"])
            locs.add((path.split("/", 1)[1], int(item["line_number"])))
    return Run("detect-secrets", dt, rss, vals, locs, hashed=True)


def median_run(runs: list[Run]) -> Run:
    """The run with the median time (the upper one of an even count), peak RSS the max."""
    ordered = sorted(runs, key=lambda r: r.seconds)
    mid = ordered[len(ordered) // 2]
    return replace(mid, peak_rss_mb=max(r.peak_rss_mb for r in runs))


def score(run: Run, plants: list[Plant]) -> tuple[int, int]:
    """(planted values found, reported values that match no plant)."""

    def sha1(v: str) -> str:
        return hashlib.sha1(v.encode()).hexdigest()  # detect-secrets' hashed_secret format

    found = 0
    matched: set[str] = set()
    for p in plants:
        hit = False
        if run.hashed:
            if sha1(p.value) in run.values:
                hit, _ = True, matched.add(sha1(p.value))
        else:
            for v in run.values:
                if len(v) >= 8 and (v in p.value or p.value in v):
                    hit = True
                    matched.add(v)
        if not hit and p.line is not None:
            span = p.value.count("\n")
            hit = any((p.path, p.line + k) in run.locations for k in range(span + 1))
        found += hit
    unmatched = run.values - matched
    if run.hashed:  # a private key's other lines, a URL's whole match, etc.
        plant_lines = {(p.path, p.line + k) for p in plants if p.line for k in range(40)}
        unmatched_locs = {loc for loc in run.locations if loc not in plant_lines}
        return found, min(len(unmatched), len(unmatched_locs))
    return found, len(unmatched)


def main() -> None:
    """Build, run, print."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--size-mb", type=int, default=200)
    ap.add_argument("--skip", action="append", default=[], help="a peer to leave out")
    ap.add_argument("--rss-only-mb", type=int, help="only vaultside's peak RSS, on this size")
    ap.add_argument("--keep", type=Path, help="build in this directory and keep it")
    ap.add_argument(
        "--repeat", type=int, default=5,
        help="runs of vaultside and betterleaks (the sub-second tools), interleaved; medians",
    )  # fmt: skip
    args = ap.parse_args()
    for peer in ("kingfisher", "betterleaks", "detect-secrets"):
        if not (VENV_BIN / peer).exists() and peer not in args.skip:
            print(f"{peer} is not installed (pip install -e '.[bench]'): left out")
            args.skip.append(peer)
    work = args.keep or Path(tempfile.mkdtemp(prefix="bench-scan-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        size = args.rss_only_mb or args.size_mb
        t = time.perf_counter()
        corpus = build_corpus(work, size)
        mb = corpus.layer_bytes / 1e6
        built = time.perf_counter() - t
        print(
            f"image: {mb:.0f} MB of layer bytes, {len(corpus.layers)} layers, "
            f"{len(corpus.plants)} planted credentials (built in {built:.0f} s)"
        )
        extract = work / "layers"
        if args.rss_only_mb is None and {"betterleaks", "detect-secrets"} - set(args.skip):
            extract_layers(corpus, extract)
        # The two fast tools finish in about a second, where a load spike on this shared
        # host moves a single run by 50%: run them as interleaved pairs and take medians.
        with_bl = args.rss_only_mb is None and "betterleaks" not in args.skip
        vs_runs: list[Run] = []
        bl_runs: list[Run] = []
        for _ in range(max(1, args.repeat) if args.rss_only_mb is None else 1):
            vs_runs.append(run_vaultside(corpus, work))
            if with_bl:
                bl_runs.append(run_betterleaks(extract, work))
        runs = [median_run(vs_runs)]
        paired = [b.seconds / v.seconds for v, b in zip(vs_runs, bl_runs, strict=False)]
        if args.rss_only_mb is None:
            if "kingfisher" not in args.skip:
                runs.append(run_kingfisher(corpus, work))
            if with_bl:
                runs.append(median_run(bl_runs))
            if "detect-secrets" not in args.skip:
                runs.append(run_detect_secrets(extract, work))
        print(
            f"{'tool':<15} {'seconds':>8} {'MB/s':>8} {'recall':>9} {'false pos':>10} "
            f"{'peak RSS MB':>12}"
        )
        rows = {}
        for run in runs:
            found, fps = score(run, corpus.plants)
            rows[run.tool] = (mb / run.seconds, found, fps, run.peak_rss_mb)
            print(
                f"{run.tool:<15} {run.seconds:>8.1f} {mb / run.seconds:>8.1f} "
                f"{found:>4}/{len(corpus.plants):<4} {fps:>10} {run.peak_rss_mb:>12.0f}"
            )
        peers = {k: v for k, v in rows.items() if k != "vaultside"}
        if peers:
            fastest = max(peers, key=lambda k: peers[k][0])
            print(
                f"throughput ratio vs fastest peer ({fastest}): "
                f"{rows['vaultside'][0] / peers[fastest][0]:.2f}x"
            )
        if paired:
            print(
                f"vaultside vs betterleaks, {len(paired)} interleaved pairs: median "
                f"{statistics.median(paired):.2f}x (min {min(paired):.2f}x, max {max(paired):.2f}x)"
            )
        missed = [p for p in corpus.plants if not score(Run("x", 1, 0, runs[0].values,
                  runs[0].locations), [p])[0]]  # fmt: skip
        for p in missed:
            print(f"vaultside missed: {p.kind} in {p.path}")
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
