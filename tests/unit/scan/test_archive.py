"""Image archives: docker save and OCI layouts, gzip/zstd layers, whiteouts, nested archives."""

from __future__ import annotations

import gzip
import io
import random
import tarfile
from pathlib import Path

import pytest

from tests.unit.scan.credgen import AN, HEX, github_token, rnd
from tests.unit.scan.imagegen import ImageSpec, docker_save, oci_layout, tar_bytes, zip_bytes
from vaultside.scan.base import Finding
from vaultside.scan.scanner import Scanner
from vaultside.scan.sources.archive import ArchiveError, ImageArchiveSource
from vaultside.scan.sources.content import Limits


@pytest.fixture
def planted() -> dict[str, str]:
    rng = random.Random(42)
    return {
        "env": "glpat-" + rnd(rng, AN, 20),
        "label": "sk_live_" + rnd(rng, AN, 30),
        "arg": github_token(rng),
        "file": "AKIA" + rnd(rng, "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", 16),
        "deleted": "npm_" + rnd(rng, AN, 36),
        "overwritten": "dckr_pat_" + rnd(rng, AN, 27),
        "nested_zip": "glrt-" + rnd(rng, AN, 24),
        "nested_targz": "rubygems_" + rnd(rng, HEX, 48),
        "nested_deep": "shpat_" + rnd(rng, HEX, 32),
    }


def spec_for(p: dict[str, str]) -> ImageSpec:
    inner_tgz = gzip.compress(
        tar_bytes({"conf/app.ini": f"token = {p['nested_targz']}\n".encode()})
    )
    deep = zip_bytes({"deep/creds.txt": f"key={p['nested_deep']}\n".encode()})
    jar = zip_bytes(
        {
            "META-INF/MANIFEST.MF": b"Manifest-Version: 1.0\n",
            "application.properties": f"runner.token={p['nested_zip']}\n".encode(),
            "lib/inner.zip": deep,
        }
    )
    return ImageSpec(
        layers=[
            ("COPY busybox /bin/busybox", {"bin/busybox": b"\x7fELF\0\0binary"}),
            (
                f"RUN /bin/sh -c echo {p['arg']} > /dev/null # buildkit",
                {"etc/app/config.yml": f"aws_access_key_id: {p['file']}\n".encode()},
            ),
            ("COPY secrets.txt /tmp/", {"tmp/secrets.txt": f"NPM={p['deleted']}\n".encode()}),
            ("COPY hub.txt /root/", {"root/hub.txt": f"x\ny\n{p['overwritten']}\n".encode()}),
            ("RUN rm /tmp/secrets.txt", {"tmp/secrets.txt": None}),
            ("COPY hub.txt /root/ # replaced", {"root/hub.txt": b"nothing here\n"}),
            ("COPY app.jar bundle.tgz /opt/", {"opt/app.jar": jar, "opt/bundle.tgz": inner_tgz}),
        ],
        env=["PATH=/bin", f"GITLAB_TOKEN={p['env']}"],
        labels={"maintainer": "ops", "stripe": p["label"]},
        extra_history=["ARG BUILD_TOKEN", "ENV GITLAB_TOKEN=..."],
    )


def by_value(findings: list[Finding]) -> dict[str, Finding]:
    return {f.secret.reveal(): f for f in findings if f.secret is not None}


def check_attribution(findings: list[Finding], p: dict[str, str], layer_ids: list[str]) -> None:
    found = by_value(findings)
    missing = [k for k, v in p.items() if v not in found]
    assert not missing, f"not found: {missing}"
    assert found[p["env"]].location.path == "config/Env"
    assert found[p["env"]].location.line == 2
    assert found[p["label"]].location.path == "config/Labels"
    arg = found[p["arg"]]
    assert arg.location.path == "config/history"
    assert arg.location.created_by is not None and arg.location.created_by.startswith("RUN")
    f = found[p["file"]]
    assert (f.location.path, f.location.line, f.location.layer) == (
        "etc/app/config.yml",
        1,
        layer_ids[1],
    )
    assert f.location.created_by is not None and f.location.created_by.startswith("RUN /bin/sh")
    assert f.location.status is None
    d = found[p["deleted"]]
    assert (d.location.path, d.location.layer, d.location.status) == (
        "tmp/secrets.txt",
        layer_ids[2],
        "deleted",
    )
    assert d.location.created_by == "COPY secrets.txt /tmp/"
    o = found[p["overwritten"]]
    assert (o.location.line, o.location.status) == (3, "overwritten")
    z = found[p["nested_zip"]]
    assert (z.location.path, z.location.nested) == ("opt/app.jar", ("application.properties",))
    assert z.location.layer == layer_ids[6]
    t = found[p["nested_targz"]]
    assert (t.location.path, t.location.nested) == ("opt/bundle.tgz", ("conf/app.ini",))
    deep = found[p["nested_deep"]]
    assert deep.location.nested == ("lib/inner.zip", "deep/creds.txt")
    # attribution never prints a found value (the RUN line above carries the build arg)
    for each in findings:
        assert not any(v in (each.location.created_by or "") for v in p.values())
    by_file = found[p["file"]].location.created_by or ""
    assert "ghp_" in by_file and "len 40" in by_file


def test_docker_save_tarball(tmp_path: Path, planted: dict[str, str]) -> None:
    path = tmp_path / "image.tar"
    diff_ids = docker_save(spec_for(planted), path)
    result = Scanner().scan([ImageArchiveSource(path)])
    check_attribution(result.findings, planted, diff_ids)
    assert result.stats.layers == 7
    assert all(f.location.target == "test/app:1" for f in result.findings)


@pytest.mark.parametrize("compression", ["gzip", "zstd", "none"])
def test_oci_layout_tar(tmp_path: Path, planted: dict[str, str], compression: str) -> None:
    path = tmp_path / "oci.tar"
    digests = oci_layout(spec_for(planted), path, compression=compression)
    result = Scanner().scan([ImageArchiveSource(path)])
    check_attribution(result.findings, planted, digests)


def test_oci_layout_directory(tmp_path: Path, planted: dict[str, str]) -> None:
    digests = oci_layout(spec_for(planted), tmp_path, compression="zstd", as_tar=False)
    result = Scanner().scan([ImageArchiveSource(tmp_path)])
    check_attribution(result.findings, planted, digests)


def test_gzipped_docker_save(tmp_path: Path, planted: dict[str, str]) -> None:
    raw = tmp_path / "image.tar"
    diff_ids = docker_save(spec_for(planted), raw)
    gz = tmp_path / "image.tar.gz"
    gz.write_bytes(gzip.compress(raw.read_bytes()))
    check_attribution(Scanner().scan([ImageArchiveSource(gz)]).findings, planted, diff_ids)


def test_nested_depth_limit(tmp_path: Path, planted: dict[str, str]) -> None:
    path = tmp_path / "image.tar"
    docker_save(spec_for(planted), path)
    result = Scanner().scan([ImageArchiveSource(path, limits=Limits(max_depth=1))])
    found = by_value(result.findings)
    assert planted["nested_zip"] in found
    assert planted["nested_deep"] not in found
    assert any("deeper than 1" in w for w in result.stats.warnings)


def test_plain_tar_is_scanned_as_files(tmp_path: Path) -> None:
    token = "glpat-" + rnd(random.Random(5), AN, 20)
    path = tmp_path / "plain.tar"
    path.write_bytes(tar_bytes({"srv/app/.env": f"GITLAB={token}\n".encode()}))
    found = by_value(Scanner().scan([ImageArchiveSource(path)]).findings)
    assert found[token].location.path == "srv/app/.env"


def test_binary_files_are_skipped_by_sniffing(tmp_path: Path) -> None:
    token = "glpat-" + rnd(random.Random(6), AN, 20)
    path = tmp_path / "plain.tar"
    path.write_bytes(tar_bytes({"bin/tool": b"\x7fELF\0\0\0" + token.encode()}))
    result = Scanner().scan([ImageArchiveSource(path)])
    assert result.findings == [] and result.stats.binary_skipped == 1


def test_large_text_file_is_streamed_in_line_aligned_chunks(tmp_path: Path) -> None:
    token = "glpat-" + rnd(random.Random(8), AN, 20)
    lines = [f"line {i} nothing to see" for i in range(200_000)]
    lines[150_000] = f"GITLAB={token}"
    path = tmp_path / "plain.tar"
    path.write_bytes(tar_bytes({"var/log/big.log": ("\n".join(lines) + "\n").encode()}))
    result = Scanner().scan([ImageArchiveSource(path)])
    assert [(f.rule_id, f.location.line) for f in result.findings] == [("gitlab-pat", 150_001)]


def _truncated(tmp_path: Path, planted: dict[str, str]) -> Path:
    path = tmp_path / "image.tar"
    docker_save(spec_for(planted), path)
    data = path.read_bytes()
    bad = tmp_path / "truncated.tar"
    bad.write_bytes(data[: len(data) // 2 + 300])
    return bad


def test_truncated_archive_is_a_clear_error(tmp_path: Path, planted: dict[str, str]) -> None:
    with pytest.raises(ArchiveError, match="corrupt or truncated"):
        Scanner().scan([ImageArchiveSource(_truncated(tmp_path, planted))])


def test_truncated_gzip_layer_is_a_clear_error(tmp_path: Path, planted: dict[str, str]) -> None:
    path = tmp_path / "oci.tar"
    oci_layout(spec_for(planted), path, compression="gzip")
    buf = io.BytesIO()
    with tarfile.open(path) as src, tarfile.open(fileobj=buf, mode="w") as dst:
        for m in src.getmembers():
            data = src.extractfile(m).read() if m.isfile() else b""  # type: ignore[union-attr]
            if m.isfile() and data[:2] == b"\x1f\x8b" and len(data) > 200:
                data = data[: len(data) // 2]
                m.size = len(data)
            dst.addfile(m, io.BytesIO(data))
    bad = tmp_path / "bad.tar"
    bad.write_bytes(buf.getvalue())
    with pytest.raises(ArchiveError, match="corrupt or truncated"):
        Scanner().scan([ImageArchiveSource(bad)])


@pytest.mark.parametrize("content", [b"", b"hello, not an archive\n", b"\x1f\x8b\x08garbage"])
def test_not_an_archive_is_a_clear_error(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "x.tar"
    path.write_bytes(content)
    with pytest.raises(ArchiveError):
        Scanner().scan([ImageArchiveSource(path)])


def test_archive_cut_at_a_member_boundary_is_truncated(
    tmp_path: Path, planted: dict[str, str]
) -> None:
    path = tmp_path / "image.tar"
    docker_save(spec_for(planted), path)
    with tarfile.open(path) as tf:
        last = tf.getmembers()[-1]  # manifest.json
    bad = tmp_path / "cut.tar"
    bad.write_bytes(path.read_bytes()[: last.offset])  # everything before its header
    with pytest.raises(ArchiveError, match="truncated"):
        Scanner().scan([ImageArchiveSource(bad)])


def test_parallel_workers_find_the_same_with_the_same_attribution(
    tmp_path: Path, planted: dict[str, str]
) -> None:
    path = tmp_path / "image.tar"
    diff_ids = docker_save(spec_for(planted), path)
    serial = Scanner().scan([ImageArchiveSource(path)])
    parallel = Scanner().scan([ImageArchiveSource(path)], jobs=3)
    check_attribution(parallel.findings, planted, diff_ids)
    assert sorted((f.fingerprint, str(f.location)) for f in parallel.findings) == sorted(
        (f.fingerprint, str(f.location)) for f in serial.findings
    )
    assert (parallel.stats.files, parallel.stats.layers) == (
        serial.stats.files,
        serial.stats.layers,
    )


def test_parallel_scan_of_a_truncated_archive_still_fails_clearly(
    tmp_path: Path, planted: dict[str, str]
) -> None:
    with pytest.raises(ArchiveError, match="corrupt or truncated"):
        Scanner().scan([ImageArchiveSource(_truncated(tmp_path, planted))], jobs=2)


def test_split_hands_out_slices_before_the_archive_is_indexed(tmp_path: Path) -> None:
    """Workers start on the first slices while later layers' headers are still unread."""
    rng = random.Random(5)
    layers = [
        (
            f"COPY l{i} /",
            {f"l{i}/f{j}.txt": (rnd(rng, AN, 2000) + "\n").encode() for j in range(800)},
        )
        for i in range(3)
    ]
    path = tmp_path / "image.tar"
    docker_save(ImageSpec(layers=layers), path)
    src = ImageArchiveSource(path)
    slices = src.split(8)
    first = next(iter(slices))
    assert first.items and len(src._split_layers) < 3  # the last layers are not indexed yet
    rest = list(slices)
    assert len(src._split_layers) == 3
    files = [item for part in (first, *rest) for item in part.items]
    assert len(files) == 3 * 800 and len(rest) >= 2
