"""Credentials in package-manager, VCS, database-client and infrastructure-as-code files
(issue 13's held-out formats). Every value is generated here. ``.pgpass`` lines and Terraform
state's sensitive outputs / generated passwords were missed before their rules existed."""

from __future__ import annotations

import base64
import json
import random
from pathlib import Path

import pytest

from tests.unit.scan.corpus_formats import SYM
from tests.unit.scan.credgen import AN, github_token, rnd
from vaultside.scan.base import Finding
from vaultside.scan.scanner import Scanner
from vaultside.scan.sources.path import PathSource

RNG = random.Random()


def found(root: Path, rel: str, text: str) -> set[tuple[str, int | None]]:
    p = root / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text)
    findings: list[Finding] = Scanner().scan([PathSource(root)]).findings
    return {(f.secret.reveal(), f.location.line) for f in findings if f.secret is not None}


def tfstate(doc: dict[str, object]) -> tuple[str, int]:
    """The state as Terraform writes it, and the line of the value that holds ``SECRET``."""
    text = json.dumps({"version": 4, "terraform_version": "1.9.0", **doc}, indent=2)
    return text, next(i for i, ln in enumerate(text.splitlines(), 1) if "SECRET" in ln)


def test_pgpass_lines(tmp_path: Path) -> None:
    a, b, c = rnd(RNG, AN, 20), rnd(RNG, AN, 16), rnd(RNG, AN, 8) + "\\:" + rnd(RNG, AN, 8)
    text = f"# host:port:db:user:password\ndb.internal:5432:app:app:{a}\n*:*:*:postgres:{b}\n"
    text += f"localhost:5432:*:ops:{c}\n"
    assert found(tmp_path, "root/.pgpass", text) >= {(a, 2), (b, 3), (c, 4)}


def test_pgpass_rule_leaves_shadow_and_group_files_alone(tmp_path: Path) -> None:
    text = "root:*:19000:0:99999:7:::\ndaemon:*:19000:0:99999:7:::\n"
    assert found(tmp_path, "etc/shadow", text) == set()


def test_terraform_sensitive_output(tmp_path: Path) -> None:
    pw = rnd(RNG, SYM, 24)
    text, line = tfstate(
        {
            "outputs": {
                "endpoint": {"value": "db.internal:5432", "type": "string"},
                "db_password": {"value": "SECRET", "type": "string", "sensitive": True},
            }
        }
    )
    assert (pw, line) in found(tmp_path, "infra/terraform.tfstate", text.replace("SECRET", pw))


def test_terraform_random_password_result(tmp_path: Path) -> None:
    pw = rnd(RNG, AN, 24)
    attrs = {"bcrypt_hash": "unset", "id": "none", "length": 24, "override_special": "!#$%",
             "result": "SECRET", "special": True}  # fmt: skip
    text, line = tfstate(
        {"resources": [{"type": "random_password", "instances": [{"attributes": attrs}]}]}
    )
    assert (pw, line) in found(tmp_path, "infra/terraform.tfstate", text.replace("SECRET", pw))


def test_terraform_resource_password_attribute(tmp_path: Path) -> None:
    pw = rnd(RNG, AN, 20)
    attrs = {"username": "app", "password": "SECRET", "engine": "postgres"}
    text, line = tfstate(
        {"resources": [{"type": "aws_db_instance", "instances": [{"attributes": attrs}]}]}
    )
    assert (pw, line) in found(tmp_path, "infra/terraform.tfstate", text.replace("SECRET", pw))


@pytest.mark.parametrize(
    ("path", "template", "line"),
    [
        (".git-credentials", "https://deploy:{v}@git.internal\n", 1),
        (".pypirc", "[distutils]\nindex-servers = internal\n\n[internal]\n"
         "repository = https://pypi.internal/\nusername = deploy\npassword = {v}\n", 7),
        (".netrc", "machine git.internal\n  login deploy\n  password {v}\n", 3),
        (".aws/credentials", "[default]\naws_access_key_id = {id}\n"
         "aws_secret_access_key = {v40}\n", 3),
        (".config/pip/pip.conf", "[global]\nindex-url = https://deploy:{v}@pypi.internal/simple\n",
         2),
        (".m2/settings.xml", "<settings>\n  <servers>\n    <server>\n      <id>internal</id>\n"
         "      <password>{v}</password>\n    </server>\n  </servers>\n</settings>\n", 5),
    ],
)  # fmt: skip
def test_package_manager_and_vcs_configs(
    tmp_path: Path, path: str, template: str, line: int
) -> None:
    v, v40 = rnd(RNG, AN, 22), rnd(RNG, AN + "/+", 40)
    value = v40 if "{v40}" in template else v
    key_id = "AKIA" + rnd(RNG, "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", 16)
    text = template.replace("{v40}", v40).replace("{v}", v).replace("{id}", key_id)
    assert any(
        value in got and (ln == line or ln is None)
        for got, ln in found(tmp_path, f"home/app/{path}", text)
    )


def test_docker_config_auth(tmp_path: Path) -> None:
    tok = github_token(RNG)
    auth = base64.b64encode(f"ci:{tok}".encode()).decode()
    text = json.dumps({"auths": {"ghcr.io": {"auth": auth}}}, indent=2)
    # reported as the encoded ``auth`` value (what to revoke is inside it), at its line
    assert (auth, 4) in found(tmp_path, "root/.docker/config.json", text)


@pytest.mark.parametrize(
    ("path", "template", "line"),
    [
        ("srv/app/hibernate.cfg.xml", "<hibernate-configuration>\n"
         '  <property name="hibernate.connection.password">{v}</property>\n', 2),
        ("root/.subversion/auth/svn.simple/0f3c", "K 8\npasstype\nV 6\nsimple\nK 8\npassword\n"
         "V 22\n{v}\nK 8\nusername\nV 6\ndeploy\nEND\n", 8),
        ("etc/wpa_supplicant/wpa_supplicant.conf", 'network={\n  ssid="corp"\n  psk="{v}"\n}\n', 3),
        ("srv/rails/.bundle/config", '---\nBUNDLE_GEMS__INTERNAL__COM: "deploy:{v}"\n', 2),
    ],
)  # fmt: skip
def test_configs_that_name_the_secret_by_structure(
    tmp_path: Path, path: str, template: str, line: int
) -> None:
    """Each was missed before its rule: the value has no assignment to a secret-ish name."""
    v = rnd(RNG, AN, 22)
    assert any(
        v in got and ln == line for got, ln in found(tmp_path, path, template.replace("{v}", v))
    )


def test_maven_master_password(tmp_path: Path) -> None:
    enc = "{" + base64.b64encode(RNG.randbytes(32)).decode() + "}"
    text = f"<settingsSecurity>\n  <master>{enc}</master>\n</settingsSecurity>\n"
    assert (enc, 2) in found(tmp_path, "root/.m2/settings-security.xml", text)
