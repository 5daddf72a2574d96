"""Many small files bundled into one chunk: same findings, lines and paths as one by one."""

from __future__ import annotations

import gzip
import random
from pathlib import Path

from tests.unit.scan.credgen import AN, github_token, rnd
from tests.unit.scan.imagegen import ImageSpec, docker_save
from vaultside.scan.base import Finding, ScanStats
from vaultside.scan.scanner import Scanner
from vaultside.scan.sources.archive import ImageArchiveSource
from vaultside.scan.sources.bundle import BUNDLE


def _key(f: Finding) -> tuple[object, ...]:
    s = f.secret.reveal() if f.secret else None
    return (f.rule_id, f.location.path, f.location.line, f.location.nested, f.location.status, s)


def test_bundled_small_files_match_one_by_one(tmp_path: Path) -> None:
    rng = random.Random(17)
    files: dict[str, bytes | None] = {}
    planted: dict[str, tuple[str, int]] = {}
    for i in range(1500):  # more than one bundle's worth of small files
        body = "".join(f"line {j} of file {i}\n" for j in range(rng.randrange(1, 90)))
        files[f"srv/f{i:04d}.txt"] = body.encode()
        if i % 100 == 7:  # a credential on the first, a middle or the last line (no newline)
            tok = github_token(rng)
            where = i % 3
            lines = body.splitlines()
            if where == 0:
                text, line = f"GITHUB_TOKEN={tok}\n{body}", 1
            elif where == 1:
                text, line = f"{body}GITHUB_TOKEN={tok}\n{body}", len(lines) + 1
            else:
                text, line = f"{body}GITHUB_TOKEN={tok}", len(lines) + 1
            files[f"srv/f{i:04d}.txt"] = text.encode()
            planted[tok] = (f"srv/f{i:04d}.txt", line)
    # a file ending in an assignment, followed by one starting with a value: never joined
    files["srv/zz-a.env"] = b"DB_PASSWORD="
    files["srv/zz-b.txt"] = (rnd(rng, AN, 24) + "\n").encode()
    files["srv/binary.bin"] = b"\0\1\2" + f"GITHUB_TOKEN={github_token(rng)}".encode()
    nested_tok = "glpat-" + rnd(rng, AN, 20)
    files["srv/app.log.gz"] = gzip.compress(f"token used: {nested_tok}\n".encode())
    root_tok = github_token(rng)
    files[".env"] = f"GITHUB_TOKEN={root_tok}\n".encode()
    files["secret.txt"] = f"GITHUB_TOKEN={github_token(rng)}\n".encode()
    later: dict[str, bytes | None] = {"secret.txt": None}
    archive = tmp_path / "img.tar"
    docker_save(ImageSpec([("COPY . /", files), ("RUN rm /secret.txt", later)]), archive)
    assert sum(len(v or b"") for v in files.values()) > BUNDLE

    stats = ScanStats()
    chunks = list(ImageArchiveSource(archive).chunks(stats))
    assert any(c.parts for c in chunks), "small files were bundled"
    assert stats.files == len(files) + 1 and stats.binary_skipped == 1

    results = {jobs: Scanner().scan([ImageArchiveSource(archive)], jobs=jobs) for jobs in (1, 3)}
    found = {f.secret.reveal(): f for f in results[1].findings if f.secret}
    for tok, (path, line) in planted.items():
        assert (found[tok].location.path, found[tok].location.line) == (path, line)
    assert found[nested_tok].location.path == "srv/app.log.gz"
    assert found[root_tok].location.path == ".env"  # a root dotfile keeps its name
    deleted = [f for f in results[1].findings if f.location.path == "secret.txt"]
    assert deleted and all(f.location.status == "deleted" for f in deleted)
    assert not [f for f in results[1].findings if f.location.path.startswith("srv/zz-")]
    assert not [f for f in results[1].findings if f.location.path == "srv/binary.bin"]
    assert sorted(map(_key, results[1].findings)) == sorted(map(_key, results[3].findings))


def test_a_match_across_files_does_not_hide_the_next_file(tmp_path: Path) -> None:
    """A pattern that crosses file ends (DOTALL) must not swallow a real match in file B."""
    import re

    from vaultside.scan.base import Severity
    from vaultside.scan.detectors.rules import Rule, default_rules

    rng = random.Random(23)
    body = rnd(rng, AN, 40)
    rule = Rule(
        id="acme-block",
        description="ACME block",
        severity=Severity.HIGH,
        regex=re.compile(rb"(?s)BEGIN ACME(.{10,200}?)END ACME"),
        keywords=(b"begin acme",),
        multiline=True,
    )
    files: dict[str, bytes | None] = {
        "a/doc.txt": b"mentions BEGIN ACME in prose\n",
        "a/key.txt": f"BEGIN ACME{body}END ACME\n".encode(),
    }
    files.update({f"a/pad{i}.txt": b"x\n" for i in range(3)})
    archive = tmp_path / "img.tar"
    docker_save(ImageSpec([("COPY . /", files)]), archive)
    found = Scanner(rules=[*default_rules(), rule]).scan([ImageArchiveSource(archive)]).findings
    assert [f.location.path for f in found if f.rule_id == "acme-block"] == ["a/key.txt"]


def test_a_multiline_window_from_one_file_does_not_cut_off_the_next(tmp_path: Path) -> None:
    """A keyword in file A opens a 16 KiB window that ends inside file B's block."""
    import re

    from vaultside.scan.base import Severity
    from vaultside.scan.detectors.rules import Rule, default_rules

    rng = random.Random(29)
    body = "\n".join(rnd(rng, AN, 60) for _ in range(50))  # ~3 KB
    rule = Rule(
        id="acme-block",
        description="ACME block",
        severity=Severity.HIGH,
        regex=re.compile(rb"BEGIN ACME([A-Za-z0-9\n]{10,5000}?)END ACME"),
        keywords=(b"begin acme",),
        multiline=True,
    )
    files: dict[str, bytes | None] = {"a/doc.txt": b"see BEGIN ACME\n"}
    files.update({f"a/pad{i}.txt": b"x" * 1000 + b"\n" for i in range(14)})
    files["a/key.txt"] = f"BEGIN ACME{body}END ACME\n".encode()
    archive = tmp_path / "img.tar"
    docker_save(ImageSpec([("COPY . /", files)]), archive)
    found = Scanner(rules=[*default_rules(), rule]).scan([ImageArchiveSource(archive)]).findings
    assert [f.location.path for f in found if f.rule_id == "acme-block"] == ["a/key.txt"]


def test_detect_marked_marks_every_multiline_keyword_of_one_pass() -> None:
    """The bundle's multiline-keyword marks come from the detection pass itself."""
    from vaultside.scan.detectors.rules import RuleDetector, default_rules

    det = RuleDetector(default_rules())
    head = b"-----BEGIN RSA PRIVATE KEY-----"
    data = b"x = 1\n" + head + b"\nnot a key\n" + b"machine example.org\n" + head.lower()
    cands, marks = det.detect_marked(data)
    multi = [kw for r in det.rules if r.multiline for kw in r.keywords]
    expected = sorted(
        {
            i + len(kw) - 1
            for kw in multi
            for i in range(len(data))
            if data.lower().startswith(kw, i)
        }
    )
    assert sorted(set(marks)) == expected and expected
    assert [c.start for c in cands] == [c.start for c in det.detect(data)]
