"""Fake credentials generated at test time from each format (never committed as literals).

``CASES[rule_id](rng)`` returns ``(positives, near_misses)``: lines that must produce a finding
of that rule, and lines that look close but must not. A seeded RNG keeps runs reproducible.
"""

from __future__ import annotations

import base64
import json
import random
import string
import zlib
from collections.abc import Callable

U = string.ascii_uppercase
L = string.ascii_lowercase
D = string.digits
AN = U + L + D
HEX = "0123456789abcdef"
B64 = AN + "+/"
URLS = AN + "-_"
B32 = U + "234567"
BECH = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
_B62 = D + U + L

Case = tuple[list[str], list[str]]


def rnd(rng: random.Random, alphabet: str, n: int) -> str:
    """``n`` random characters of ``alphabet``, with a digit and a letter when it has both."""
    while True:
        s = "".join(rng.choice(alphabet) for _ in range(n))
        has_digit = any(c.isdigit() for c in s) or not any(c.isdigit() for c in alphabet)
        has_alpha = any(c.isalpha() for c in s) or not any(c.isalpha() for c in alphabet)
        if has_digit and has_alpha:
            return s


def b62(n: int, width: int) -> str:
    """Base62 (0-9A-Za-z) left-padded to ``width``."""
    out = ""
    while n:
        n, r = divmod(n, 62)
        out = _B62[r] + out
    return out.rjust(width, "0")


def github_token(rng: random.Random, prefix: str = "ghp_", *, valid: bool = True) -> str:
    """A GitHub-format token: 30 random base62 chars + base62 CRC32 checksum."""
    body = rnd(rng, AN, 30)
    check = b62(zlib.crc32(body.encode()), 6)
    if not valid:
        check = check[:-1] + ("A" if check[-1] != "A" else "B")
    return prefix + body + check


def jwt(rng: random.Random) -> str:
    """A structurally valid (unsigned-looking) JWT."""

    def seg(obj: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()

    head, body = seg({"alg": "HS256", "typ": "JWT"}), seg({"sub": rnd(rng, AN, 12)})
    return f"{head}.{body}.{rnd(rng, URLS, 43)}"


def pem_private_key(rng: random.Random, kind: str = "RSA ") -> str:
    """A PEM block of the private-key shape (random body, not a usable key)."""
    body = "\n".join(rnd(rng, B64, 64) for _ in range(6))
    return f"-----BEGIN {kind}PRIVATE KEY-----\n{body}\n-----END {kind}PRIVATE KEY-----"


def _simple(
    make: Callable[[random.Random], str],
    near: Callable[[random.Random], list[str]],
    ctx: str = "token = {}",
) -> Callable[[random.Random], Case]:
    def case(rng: random.Random) -> Case:
        return [ctx.format(make(rng))], [ctx.format(n) for n in near(rng)]

    return case


def _p(
    prefix: str,
    alphabet: str,
    n: int,
    ctx: str = "value: {}",
    alt_prefix: str | None = None,
    short: int | None = None,
) -> Callable[[random.Random], Case]:
    """Prefix + ``n`` chars; near misses: too short (one char for fixed-length formats, below
    the minimum for variable-length ones), and a wrong/altered prefix."""
    wrong = alt_prefix if alt_prefix is not None else prefix[:-1] + "#"
    too_short = short if short is not None else (n - 1 if n > 20 else n - 2)
    return _simple(
        lambda r: prefix + rnd(r, alphabet, n),
        lambda r: [prefix + rnd(r, alphabet, too_short), wrong + rnd(r, alphabet, n)],
        ctx,
    )


CASES: dict[str, Callable[[random.Random], Case]] = {
    "aws-access-key-id": _p("AKIA", B32, 16, "aws_access_key_id = {}", alt_prefix="AKIB"),
    "aws-secret-access-key": _simple(
        lambda r: rnd(r, AN + "/+", 40),
        lambda r: [rnd(r, AN, 39), "A" * 40],
        "aws_secret_access_key = {}",
    ),
    "gcp-api-key": _p("AIza", URLS, 35, alt_prefix="AIzb"),
    "gcp-oauth-client-secret": _p("GOCSPX-", URLS, 28),
    "gcp-service-account-key-id": _simple(
        lambda r: rnd(r, HEX, 40),
        lambda r: [rnd(r, HEX, 39), rnd(r, AN, 40)],
        '"private_key_id": "{}"',
    ),
    "azure-storage-account-key": _simple(
        lambda r: rnd(r, B64, 86) + "==",
        lambda r: [rnd(r, B64, 60) + "=="],
        "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey={};EndpointSuffix=core",
    ),
    "azure-ad-client-secret": _simple(
        lambda r: rnd(r, AN, 3) + str(r.randint(0, 9)) + "Q~" + rnd(r, AN, 34),
        lambda r: [rnd(r, AN, 3) + "xQ~" + rnd(r, AN, 34), rnd(r, AN, 4) + "Q~" + rnd(r, AN, 10)],
        "client_secret: {}",
    ),
    "digitalocean-token": _p("dop_v1_", HEX, 64, alt_prefix="dox_v1_"),
    "alibaba-access-key-id": _p("LTAI", AN, 20, alt_prefix="LTAJ"),
    "heroku-api-key": _simple(
        lambda r: "-".join(rnd(r, HEX, n) for n in (8, 4, 4, 4, 12)),
        lambda r: ["-".join(rnd(r, HEX, n) for n in (8, 4, 4, 12))],
        "HEROKU_API_KEY={}",
    ),
    "cloudflare-api-token": _simple(
        lambda r: rnd(r, URLS, 40),
        lambda r: [rnd(r, URLS, 39), "A" * 40],
        "CLOUDFLARE_API_TOKEN={}",
    ),
    "flyio-token": _p("fo1_", URLS, 43, alt_prefix="fo2_"),
    "databricks-token": _p("dapi", HEX, 32, alt_prefix="dapj"),
    "github-token": _simple(
        lambda r: github_token(r),
        # a bad checksum is still reported (lower): the checksum raises confidence only
        lambda r: [github_token(r)[:-1], "ghx_" + rnd(r, AN, 36)],
        "GITHUB_TOKEN={}",
    ),
    "github-fine-grained-pat": _simple(
        lambda r: "github_pat_" + rnd(r, AN, 22) + "_" + rnd(r, AN, 59),
        lambda r: ["github_pat_" + rnd(r, AN, 22) + "_" + rnd(r, AN, 40)],
    ),
    "gitlab-pat": _p("glpat-", URLS, 20, alt_prefix="glpax-"),
    "gitlab-runner-token": _p("glrt-", URLS, 20, alt_prefix="glrx-"),
    "gitlab-pipeline-trigger-token": _p("glptt-", HEX, 40),
    "circleci-token": _simple(
        lambda r: rnd(r, HEX, 40), lambda r: [rnd(r, HEX, 39)], "CIRCLE_TOKEN={}"
    ),
    "atlassian-api-token": _p("ATATT3", URLS, 186, alt_prefix="ATATT4"),
    "hashicorp-vault-token": _p("hvs.", URLS, 95, alt_prefix="hvx.", short=89),
    "terraform-cloud-token": _simple(
        lambda r: rnd(r, AN, 14) + ".atlasv1." + rnd(r, URLS, 65),
        lambda r: [rnd(r, AN, 14) + ".atlasv2." + rnd(r, URLS, 65)],
    ),
    "vaultside-token": _p("vs.", AN, 40, alt_prefix="vx.", short=31),
    "doppler-token": _p("dp.pt.", AN, 43, alt_prefix="dp.px.", short=39),
    "pulumi-token": _p("pul-", HEX, 40),
    "grafana-service-account-token": _simple(
        lambda r: "glsa_" + rnd(r, AN, 32) + "_" + rnd(r, HEX, 8),
        lambda r: ["glsa_" + rnd(r, AN, 31) + "_" + rnd(r, HEX, 8)],
    ),
    "newrelic-user-key": _p("NRAK-", U + D, 27, alt_prefix="NRAX-"),
    "datadog-api-key": _simple(
        lambda r: rnd(r, HEX, 32), lambda r: [rnd(r, HEX, 31)], "DD_API_KEY={}"
    ),
    "sentry-auth-token": _p("sntrys_", AN, 80, alt_prefix="sntryx_", short=59),
    "linear-api-key": _p("lin_api_", AN, 40, alt_prefix="lin_apx_"),
    "postman-api-key": _simple(
        lambda r: "PMAK-" + rnd(r, HEX, 24) + "-" + rnd(r, HEX, 34),
        lambda r: ["PMAK-" + rnd(r, HEX, 24) + "-" + rnd(r, HEX, 20)],
    ),
    "planetscale-token": _p("pscale_tkn_", URLS, 43, alt_prefix="pscale_tkx_"),
    "age-secret-key": _simple(
        lambda r: "AGE-SECRET-KEY-1" + rnd(r, BECH.upper(), 58),
        lambda r: ["AGE-SECRET-KEY-1" + rnd(r, BECH.upper(), 50)],
        "# key: {}",
    ),
    "slack-token": _simple(
        lambda r: f"xoxb-{rnd(r, D, 11)}-{rnd(r, D, 12)}-{rnd(r, AN, 24)}",
        lambda r: [f"xoxz-{rnd(r, D, 11)}-{rnd(r, D, 12)}-{rnd(r, AN, 24)}", "xoxb-"],
    ),
    "slack-app-token": _simple(
        lambda r: f"xapp-1-{rnd(r, U + D, 11)}-{rnd(r, D, 13)}-{rnd(r, HEX, 64)}",
        lambda r: [f"xapp-1-{rnd(r, U + D, 11)}-{rnd(r, D, 13)}-{rnd(r, HEX, 12)}"],
    ),
    "slack-webhook-url": _simple(
        lambda r: (
            f"https://hooks.slack.com/services/T{rnd(r, U + D, 10)}/B{rnd(r, U + D, 10)}/"
            + rnd(r, AN, 24)
        ),
        lambda r: [f"https://hooks.slack.com/services/T{rnd(r, U + D, 10)}/"],
        "SLACK_WEBHOOK={}",
    ),
    "discord-webhook-url": _simple(
        lambda r: f"https://discord.com/api/webhooks/{rnd(r, D, 18)}/{rnd(r, URLS, 68)}",
        lambda r: [f"https://discord.com/api/webhooks/{rnd(r, D, 18)}/{rnd(r, URLS, 20)}"],
    ),
    "teams-webhook-url": _simple(
        lambda r: (
            "https://acme.webhook.office.com/webhookb2/"
            + "-".join(rnd(r, HEX, n) for n in (8, 4, 4, 4, 12))
            + "@"
            + "-".join(rnd(r, HEX, n) for n in (8, 4, 4, 4, 12))
            + "/IncomingWebhook/"
            + rnd(r, HEX, 32)
            + "/"
            + "-".join(rnd(r, HEX, n) for n in (8, 4, 4, 4, 12))
        ),
        lambda r: ["https://acme.webhook.office.com/webhookb2/" + rnd(r, HEX, 36)],
    ),
    "telegram-bot-token": _simple(
        lambda r: rnd(r, D, 10) + ":AA" + rnd(r, URLS, 33),
        lambda r: [
            rnd(r, D, 10) + ":AB" + rnd(r, URLS, 33),
            rnd(r, D, 5) + ":AA" + rnd(r, URLS, 33),
        ],
        "TELEGRAM_BOT_TOKEN={}",
    ),
    "twilio-api-key": _simple(
        lambda r: "SK" + rnd(r, HEX, 32), lambda r: ["SK" + rnd(r, HEX, 31)], "TWILIO_API_KEY={}"
    ),
    "sendgrid-api-key": _simple(
        lambda r: f"SG.{rnd(r, URLS, 22)}.{rnd(r, URLS, 43)}",
        lambda r: [f"SG.{rnd(r, URLS, 22)}.{rnd(r, URLS, 30)}"],
    ),
    "mailgun-api-key": _p("key-", HEX, 32, alt_prefix="kex-"),
    "mailchimp-api-key": _simple(
        lambda r: rnd(r, HEX, 32) + "-us" + str(r.randint(1, 20)),
        lambda r: [rnd(r, HEX, 32) + "-eu1", rnd(r, HEX, 30) + "-us1"],
    ),
    "stripe-secret-key": _p("sk_live_", AN, 24, alt_prefix="sk_lave_"),
    "stripe-webhook-secret": _p("whsec_", AN, 32, alt_prefix="whsex_"),
    "square-token": _p("sq0atp-", URLS, 22, alt_prefix="sq0xtp-"),
    "braintree-access-token": _simple(
        lambda r: f"access_token$production${rnd(r, L + D, 16)}${rnd(r, HEX, 32)}",
        lambda r: [f"access_token$sandbox${rnd(r, L + D, 16)}${rnd(r, HEX, 32)}"],
    ),
    "shopify-token": _p("shpat_", HEX, 32, alt_prefix="shpxx_"),
    "npm-token": _p("npm_", AN, 36, "//registry.npmjs.org/:_authToken={}", alt_prefix="npx_"),
    "pypi-token": _p("pypi-AgEIcHlwaS5vcmc", URLS, 60, alt_prefix="pypi-AgEIcHlwaS5vcmd", short=49),
    "rubygems-api-key": _p("rubygems_", HEX, 48, alt_prefix="rubygemz_"),
    "nuget-api-key": _p("oy2", L + D, 43, alt_prefix="oy3"),
    "dockerhub-pat": _p("dckr_pat_", URLS, 27, alt_prefix="dckr_pax_"),
    "artifactory-api-key": _p("AKCp", AN, 69, alt_prefix="AKCq"),
    "docker-config-auth": _simple(
        lambda r: base64.b64encode(f"ci-bot:{rnd(r, AN, 20)}".encode()).decode(),
        lambda r: [base64.b64encode(rnd(r, AN, 21).encode()).decode()],
        '{{"auths": {{"registry.internal:5000": {{"auth": "{}"}}}}}}',
    ),
    "openai-api-key": _simple(
        lambda r: "sk-proj-" + rnd(r, URLS, 20) + "T3BlbkFJ" + rnd(r, URLS, 20),
        lambda r: ["sk-proj-" + rnd(r, URLS, 20) + "T3BlbkFK" + rnd(r, URLS, 20)],
        "OPENAI_API_KEY={}",
    ),
    "anthropic-api-key": _simple(
        lambda r: "sk-ant-api03-" + rnd(r, URLS, 93) + "AA",
        lambda r: ["sk-ant-api03-" + rnd(r, URLS, 40) + "AA"],
    ),
    "huggingface-token": _simple(
        lambda r: "hf_" + rnd(r, U + L, 34), lambda r: ["hf_" + rnd(r, U + L, 30), "hf_" + "a" * 34]
    ),
    "groq-api-key": _p("gsk_", AN, 52, alt_prefix="gsx_"),
    "replicate-api-token": _p("r8_", AN, 37, alt_prefix="r9_"),
    "private-key": lambda r: (
        [pem_private_key(r), pem_private_key(r, "OPENSSH "), pem_private_key(r, "")],
        [
            pem_private_key(r).replace("PRIVATE", "PUBLIC"),
            "-----BEGIN CERTIFICATE-----\n" + rnd(r, B64, 64) + "\n-----END CERTIFICATE-----",
            "-----BEGIN RSA PRIVATE KEY-----",
        ],
    ),
    "jwt": _simple(
        jwt,
        lambda r: ["eyJ" + rnd(r, URLS, 20) + ".eyJ" + rnd(r, URLS, 20) + "." + rnd(r, URLS, 30)],
        "Authorization: Bearer {}",
    ),
    "url-with-password": lambda r: (
        [
            f"DATABASE_URL=postgres://app:{rnd(r, AN, 18)}@db.internal:5432/app",
            f"amqp://guest2:{rnd(r, AN, 12)}@mq:5672/",
        ],
        [
            "DATABASE_URL=postgres://app:${DB_PASSWORD}@db:5432/app",
            "https://user@example.org/path",
            "postgres://app:changeme@localhost/app",
            "postgres://db.internal:5432/app",
            "amqp://guest:guest@localhost:5672/",
        ],
    ),
    "http-basic-auth-header": _simple(
        lambda r: base64.b64encode(f"svc:{rnd(r, AN, 16)}".encode()).decode(),
        lambda r: [base64.b64encode(rnd(r, AN, 18).encode()).decode()],
        "Authorization: Basic {}",
    ),
    "generic-secret-assignment": lambda r: (
        [
            f"DB_PASSWORD={rnd(r, AN, 20)}",
            f'api_key: "{rnd(r, AN + "!#%", 24)}"',
            f"export CLIENT_SECRET='{rnd(r, AN, 32)}'",
            f'"password": "{rnd(r, AN, 16)}"',
            f"define('DB_PASSWORD', '{rnd(r, AN + '#!', 20)}');",
            f"web1 ansible_become_pass={rnd(r, AN, 18)}",
            f"jdbc:mysql://db/app?user=app&password={rnd(r, AN, 16)}&useSSL=true",
            f"APP_KEY=base64:{rnd(r, B64, 43)}=",
            f"ENCRYPTION_KEY={rnd(r, AN, 32)}",
            f'<add key="DbPassword" value="{rnd(r, AN, 20)}" />',
            f'<Connector port="8443" keystorePass="{rnd(r, AN, 16)}" />',
            f"pass = {rnd(r, AN, 24)}",
        ],
        [
            "DB_PASSWORD=${DB_PASSWORD}",
            "password = changeme",
            "password: <your-password-here>",
            "token = self.get_token",
            "api_key = os.environ['API_KEY']",
            f"secret_hash = {rnd(r, HEX, 64)}",
            "request_token = 123e4567-e89b-12d3-a456-426614174000",
            "password=aaaaaaaaaaaa",
            "secret: {{ .Values.secret }}",
            "passthrough: enabled_always",
            "PASS: ld-ifunc/ifunc-10-x86-64",
            '<add key="Password" value="${DB_PASSWORD}" />',
            "PASSWORD_FILE=/run/secrets/db",
        ],
    ),
    "cli-secret-flag": lambda r: (
        [
            f"vault login --token {rnd(r, AN, 26)}",
            f'exec app --db-host db --password="{rnd(r, AN + "#!@", 20)}"',
            f"--api-key={rnd(r, AN, 32)}",
            f"keytool -importkeystore -srcstorepass {rnd(r, AN, 14)} -destkeystore x.p12",
        ],
        [
            "app --password-file /run/secrets/db",
            "app --token $API_TOKEN",
            'app --password "${DB_PASSWORD}"',
            "app --token -v",
            "ls --secret-dir /etc/app",
            "keytool -list -keystore ks.jks -storepass changeit",
        ],
    ),
    "cli-password-argument": lambda r: (
        [
            f"mysql -h db -u root -p{rnd(r, AN, 16)} app < dump.sql",
            f"RUN mysqldump -uroot -p'{rnd(r, AN + '#%', 14)}' shop > /tmp/x",
            f"sshpass -p {rnd(r, AN, 12)} ssh deploy@host",
            f"docker login -u ci -p {rnd(r, AN, 20)} registry.internal",
            f"curl -fsS -u admin:{rnd(r, AN, 18)} https://nexus.internal/api",
        ],
        [
            "mysql -h db -u root -p app",
            "mkdir -p /var/lib/mysql",
            'mysql -u root -p"$MYSQL_ROOT_PASSWORD"',
            "docker login -u ci --password-stdin registry",
            "curl -u admin https://x",
        ],
    ),
    "bearer-token": _simple(
        lambda r: rnd(r, URLS + ".", 40),
        lambda r: ["token", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "$TOKEN"],
        'curl -H "Authorization: Bearer {}" https://api.internal',
    ),
    "netrc-password": lambda r: (
        [
            f"machine api.heroku.com login ci@acme.io password {rnd(r, AN, 20)}",
            f"machine git.internal\n  login bot\n  password {rnd(r, AN, 16)}",
        ],
        ["machine api.heroku.com login ci@acme.io", "machine x login y password aaaa"],
    ),
    "npmrc-auth": _simple(
        lambda r: base64.b64encode(f"ci:{rnd(r, AN, 18)}".encode()).decode(),
        lambda r: [base64.b64encode(rnd(r, AN, 18).encode()).decode()],
        "//npm.internal/:_auth={}",
    ),
    "config-directive-password": lambda r: (
        [
            f"requirepass {rnd(r, AN, 24)}",
            f"  masterauth '{rnd(r, AN + '#!', 20)}'",
            f"rootpw {rnd(r, AN, 16)}",
        ],
        ["requirepass foobared", "# password is set below", "secret keys are rotated daily"],
    ),
    "putty-private-key": lambda r: (
        [
            "PuTTY-User-Key-File-3: ssh-ed25519\nEncryption: none\nComment: deploy\n"
            f"Public-Lines: 2\n{rnd(r, B64, 64)}\n{rnd(r, B64, 16)}\nPrivate-Lines: 1\n"
            f"{rnd(r, B64, 44)}\nPrivate-MAC: {rnd(r, HEX, 64)}"
        ],
        ["PuTTY-User-Key-File-3: ssh-ed25519\nEncryption: none\nComment: deploy"],
    ),
    "azure-shared-access-key": _simple(
        lambda r: rnd(r, B64, 43) + "=",
        lambda r: [rnd(r, B64, 30) + "="],
        "Endpoint=sb://acme.servicebus.windows.net/;SharedAccessKeyName=send;SharedAccessKey={}",
    ),
    "mapbox-secret-token": _simple(
        lambda r: "sk.eyJ1IjoiYWNtZSIsImEiOi" + rnd(r, URLS, 20) + "." + rnd(r, URLS, 22),
        lambda r: ["pk.eyJ1IjoiYWNtZSIsImEiOi" + rnd(r, URLS, 20) + "." + rnd(r, URLS, 22)],
        "MAPBOX_TOKEN={}",
    ),
}
