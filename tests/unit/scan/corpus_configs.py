"""More corpus files: credentials in application, VCS, package-manager and system configs
whose format names the secret by structure rather than by an assignment (``corpus_formats``
has the first set). Values come from the builder's ``rng``."""

from __future__ import annotations

import base64

from tests.unit.scan.corpus_formats import Builder
from tests.unit.scan.credgen import AN, rnd

CONFIGS = (
    "hibernate-property",
    "svn-simple-auth",
    "wpa-supplicant",
    "bundler-config",
    "maven-master",
)


def config_file(b: Builder, kind: str, typ: str) -> None:
    """One file of ``typ`` holding one plant."""
    r, u = b.rng, b.uid()
    base = {"deleted-file": "tmp/build/", "nested-archive": "opt/lib/"}.get(kind, "")
    if typ == "hibernate-property":
        pw = rnd(r, AN, 20)
        lines = ["<hibernate-configuration>", "  <session-factory>",
                 '    <property name="hibernate.connection.username">app</property>',
                 f'    <property name="hibernate.connection.password">{pw}</property>',
                 "  </session-factory>", "</hibernate-configuration>"]  # fmt: skip
        b.file(kind, f"{base}srv/app{u}/hibernate.cfg.xml", lines, [(typ, pw, 4, ())])
    elif typ == "svn-simple-auth":
        pw = rnd(r, AN, 18)
        lines = ["K 8", "passtype", "V 6", "simple", "K 8", "password", f"V {len(pw)}", pw,
                 "K 15", "svn:realmstring", "V 28", "<https://svn.internal:443> x",
                 "K 8", "username", "V 6", "deploy", "END"]  # fmt: skip
        path = f"{base}root/svn-{u}/.subversion/auth/svn.simple/{rnd(r, '0123456789abcdef', 32)}"
        b.file(kind, path, lines, [(typ, pw, 8, ())])
    elif typ == "wpa-supplicant":
        psk = rnd(r, AN, 24)
        lines = ["ctrl_interface=/run/wpa_supplicant", "network={", f'  ssid="corp{u}"',
                 "  key_mgmt=WPA-PSK", f'  psk="{psk}"', "}"]  # fmt: skip
        b.file(kind, f"{base}etc/wpa_supplicant/wpa-{u}.conf", lines, [(typ, psk, 5, ())])
    elif typ == "bundler-config":
        cred = f"deploy:{rnd(r, AN, 22)}"
        lines = ["---", 'BUNDLE_PATH: "vendor/bundle"', f'BUNDLE_GEMS__INTERNAL__COM: "{cred}"']
        b.file(kind, f"{base}srv/rails{u}/.bundle/config", lines, [(typ, cred, 3, ())])
    elif typ == "maven-master":
        enc = "{" + base64.b64encode(r.randbytes(32)).decode() + "}"
        lines = ["<settingsSecurity>", f"  <master>{enc}</master>", "</settingsSecurity>"]
        b.file(kind, f"{base}root/m2-{u}/.m2/settings-security.xml", lines, [(typ, enc, 2, ())])
    else:
        raise ValueError(typ)
