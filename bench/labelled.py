"""Labelled cases for the secret, egress and PII checks, built at run time.

Token-shaped strings are never stored in the repository: the secret cases are generated here from a
seeded random source, in the formats the providers document (Twilio account SID + auth token, Azure SAS
URLs, Stripe webhook signing secrets, Atlassian data-center personal access tokens, passwords people
choose in JS/TS objects and framework settings files), next to the look-alikes that must stay quiet
(placeholders, environment references, hashes, lockfile integrity strings, documentation examples).
Egress and PII cases hold no secrets: they are code lines and fictitious personal data.

Used by tests/reviews/checks/test_labelled.py (targets) and by `python -m bench.secrets` and
`python -m bench.review` (recall and false-positive rate per family, next to detect-secrets).
"""

from __future__ import annotations

import base64
import random
import string
from dataclasses import dataclass

HEX = "0123456789abcdef"
ALNUM = string.ascii_letters + string.digits


@dataclass(frozen=True)
class Case:
    """One labelled case: `expect` is the family's name when the text must be flagged, None when not."""

    family: str
    path: str
    text: str
    expect: str | None


def _s(rng: random.Random, alphabet: str, n: int) -> str:
    while True:
        value = "".join(rng.choice(alphabet) for _ in range(n))
        if any(c.isdigit() for c in value) and any(c.isalpha() for c in value):
            return value


def _password(rng: random.Random) -> str:
    words = ["Sunset", "river", "Falcon", "maple", "Orbit", "cobalt", "Tundra", "velvet", "Harbor", "quartz"]
    joint = rng.choice(["!", "#", "-", "_", "@", ""])
    return f"{rng.choice(words)}{joint}{rng.choice(words).lower()}{rng.randint(10, 9999)}"


def _atlassian_dc(rng: random.Random) -> str:
    raw = "".join(rng.choice(string.digits) for _ in range(12)).encode() + b":" + rng.randbytes(20)
    return base64.b64encode(raw).decode()


def secret_cases(seed: int = 17, per_family: int = 12) -> list[Case]:
    """Positive and negative cases for the secret families of issue 17."""
    rng = random.Random(seed)
    cases: list[Case] = []

    def add(family: str, path: str, text: str, positive: bool) -> None:
        cases.append(Case(family, path, text, family if positive else None))

    for _ in range(per_family):
        sid, token = "AC" + _s(rng, HEX, 32), _s(rng, HEX, 32)
        add("twilio", ".env", f"TWILIO_ACCOUNT_SID={sid}\nTWILIO_AUTH_TOKEN={token}\n", True)
        add("twilio", "notify.py", f'client = Client("{sid}", "{token}")\n', True)
        add("twilio", "sms.js", f"const client = require('twilio')('{sid}', '{token}');\n", True)
        add("twilio", "settings.py", f'TWILIO = {{"account_sid": "{sid}", "auth_token": "{token}"}}\n', True)
        add("twilio", ".env", f"TWILIO_ACCOUNT_SID={sid}\nTWILIO_AUTH_TOKEN=${{TWILIO_AUTH_TOKEN}}\n", False)
        add("twilio", "notify.py", f'client = Client("{sid}", os.environ["TWILIO_AUTH_TOKEN"])\n', False)
        add("twilio", "build.py", f'CHECKSUM = "{token}"  # md5 of the release archive\n', False)
        add(
            "twilio",
            "docs.md",
            "TWILIO_ACCOUNT_SID=ACXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX\nTWILIO_AUTH_TOKEN=your_auth_token\n",
            False,
        )

        account = rng.choice(["acme", "datastore", "reports"]) + str(rng.randint(1, 99))
        sig = base64.b64encode(rng.randbytes(32)).decode().replace("+", "%2B").replace("/", "%2F").replace("=", "%3D")
        sas = (
            f"https://{account}.blob.core.windows.net/exports/data.csv?sv=2022-11-02&ss=b&srt=sco&sp=rl"
            f"&se=2026-01-01T00:00:00Z&st=2025-01-01T00:00:00Z&spr=https&sig={sig}"
        )
        add("azure-sas", "download.py", f'URL = "{sas}"\n', True)
        add("azure-sas", "config.yaml", f"export_url: {sas}\n", True)
        add(
            "azure-sas",
            "appsettings.json",
            f'{{"Blob": "BlobEndpoint=https://{account}.blob.core.windows.net/;'
            f'SharedAccessSignature=sv=2022-11-02&ss=b&srt=co&sp=r&se=2026-01-01&sig={sig}"}}\n',
            True,
        )
        add(
            "azure-sas",
            "download.py",
            f'URL = f"https://{account}.blob.core.windows.net/x?sv=2022-11-02&sig={{sig}}"\n',
            False,
        )
        add(
            "azure-sas",
            "README.md",
            f"https://{account}.blob.core.windows.net/c/f?sv=2022-11-02&sp=r&sig=<signature>\n",
            False,
        )
        add(
            "azure-sas",
            "fetch.sh",
            f'curl "https://{account}.blob.core.windows.net/c/f?sv=2022-11-02&sig=$SAS_SIG"\n',
            False,
        )

        whsec = "whsec_" + _s(rng, ALNUM, 32)
        add("stripe-webhook", "webhooks.py", f'endpoint_secret = "{whsec}"\n', True)
        add("stripe-webhook", ".env", f"STRIPE_WEBHOOK_SECRET={whsec}\n", True)
        add("stripe-webhook", "server.ts", f"const sig = stripe.webhooks.constructEvent(body, h, '{whsec}');\n", True)
        add("stripe-webhook", "server.ts", "const secret = process.env.STRIPE_WEBHOOK_SECRET ?? 'whsec_...';\n", False)
        add(
            "stripe-webhook",
            "README.md",
            "Set `STRIPE_WEBHOOK_SECRET=whsec_xxxxxxxxxxxxxxxxxxxxxxxx` in `.env`.\n",
            False,
        )

        pat = _atlassian_dc(rng)
        add("atlassian-dc", "jira.py", f'JIRA_TOKEN = "{pat}"\n', True)
        add("atlassian-dc", "confluence.js", f"headers: {{ Authorization: `Bearer {pat}` }},\n", True)
        add("atlassian-dc", "settings.ini", f"[jira]\npersonal_access_token = {pat}\n", True)
        add("atlassian-dc", "notes.txt", f"PAT for the nightly Jira export (rotate in March): {pat}\n", True)
        digest = base64.b64encode(rng.randbytes(32)).decode()
        add("atlassian-dc", "checksums.txt", f"archive.tar.gz sha256-{digest}\n", False)
        add("atlassian-dc", "jira.py", 'JIRA_TOKEN = os.environ["JIRA_PAT"]\n', False)

        pw = _password(rng)
        add("password-js", "db.js", f"const pool = new Pool({{ user: 'app', host: 'db', password: '{pw}' }});\n", True)
        add(
            "password-js",
            "config.ts",
            f'export const config = {{\n  db: {{\n    username: "svc",\n    password: "{pw}",\n  }},\n}};\n',
            True,
        )
        add("password-js", "mailer.mjs", f"auth: {{ user: 'alerts@corp.test', pass: '{pw}' }},\n", True)
        add(
            "password-js",
            "db.js",
            "const pool = new Pool({ user: 'app', password: process.env.DB_PASSWORD });\n",
            False,
        )
        add("password-js", "login.tsx", '<input type="password" name="password" placeholder="Password" />\n', False)
        add("password-js", "config.ts", "password: '<your-password>',\n", False)
        bcrypt = "$2b$12$" + _s(rng, ALNUM + "./", 53)
        add("password-js", "seed.js", f"{{ email: 'a@corp.test', passwordHash: '{bcrypt}' }},\n", False)

        pw2 = _password(rng)
        add(
            "password-settings",
            "settings.py",
            f"DATABASES = {{'default': {{'ENGINE': 'django.db.backends.postgresql', 'PASSWORD': '{pw2}'}}}}\n",
            True,
        )
        add("password-settings", "settings.py", f"EMAIL_HOST_PASSWORD = '{pw2}'\n", True)
        add("password-settings", "application.properties", f"spring.datasource.password={pw2}\n", True)
        add(
            "password-settings", "config/database.yml", f"production:\n  adapter: postgresql\n  password: {pw2}\n", True
        )
        add("password-settings", "appsettings.json", f'{{"Smtp": {{"Password": "{pw2}"}}}}\n', True)
        add(
            "password-settings",
            "settings.py",
            "DATABASES = {'default': {'PASSWORD': os.environ['DB_PASSWORD']}}\n",
            False,
        )
        add("password-settings", "config/database.yml", "production:\n  password: <%= ENV['DB_PASSWORD'] %>\n", False)
        add("password-settings", "application.properties", "spring.datasource.password=${DB_PASSWORD}\n", False)
        add(
            "password-settings",
            "settings.py",
            "AUTH_PASSWORD_VALIDATORS = [{'NAME': 'MinimumLengthValidator'}]\n",
            False,
        )
        integrity = "sha512-" + base64.b64encode(rng.randbytes(64)).decode()
        add("password-settings", "package-lock.json", f'      "integrity": "{integrity}",\n', False)
    return cases


# --------------------------------------------------------------------------- egress


def egress_cases() -> list[Case]:
    """Code that reaches a model provider directly (expect = provider family), and code that does not."""
    positive = [
        ("app.py", "from langchain.llms import OpenAI\n"),
        ("app.py", "from langchain.chat_models import ChatOpenAI\n"),
        ("app.py", "from langchain.chat_models.openai import ChatOpenAI\n"),
        ("app.py", "from langchain_community.llms import Bedrock\n"),
        ("app.py", "from langchain_community.chat_models import ChatAnthropic\n"),
        ("app.py", "from langchain_openai import ChatOpenAI\n"),
        ("app.py", "from langchain_anthropic import ChatAnthropic\n"),
        ("app.py", "from langchain_google_genai import ChatGoogleGenerativeAI\n"),
        ("app.py", "from langchain_aws import ChatBedrock\n"),
        ("app.py", "from langchain_mistralai import ChatMistralAI\n"),
        ("app.py", "import langchain_cohere\n"),
        ("app.ts", 'import { ChatOpenAI } from "@langchain/openai";\n'),
        ("app.js", 'const { ChatAnthropic } = require("@langchain/anthropic");\n'),
        ("app.ts", 'import { OpenAI } from "langchain/llms/openai";\n'),
        ("app.ts", 'import { ChatOpenAI } from "langchain/chat_models/openai";\n'),
        ("app.ts", 'import { BedrockChat } from "@langchain/community/chat_models/bedrock";\n'),
        ("app.ts", 'import { ChatGoogleGenerativeAI } from "@langchain/google-genai";\n'),
        ("app.py", "from llama_index.llms.openai import OpenAI\n"),
        ("app.py", "from llama_index.llms.anthropic import Anthropic\n"),
        ("app.py", "from llama_index.embeddings.openai import OpenAIEmbedding\n"),
        ("app.ts", 'import { OpenAI } from "llamaindex";\n'),
        ("app.ts", 'import { openai } from "@llamaindex/openai";\n'),
        ("app.py", "import litellm\n"),
        ("app.py", "from litellm import completion\n"),
        ("app.py", 'client = boto3.client("bedrock-runtime", region_name="us-east-1")\n'),
        ("app.py", "brt = session.client(service_name='bedrock-runtime')\n"),
        ("app.py", "agent = boto3.client('bedrock-agent-runtime')\n"),
        ("app.ts", 'import { BedrockRuntimeClient } from "@aws-sdk/client-bedrock-runtime";\n'),
        ("app.py", "from openai import AzureOpenAI\n"),
        ("app.ts", 'import { AzureOpenAI } from "openai";\n'),
        ("app.ts", 'import { OpenAIClient } from "@azure/openai";\n'),
        ("app.py", "import anthropic\n"),
        ("app.py", "import google.generativeai as genai\n"),
        ("app.py", "from mistralai import Mistral\n"),
        ("app.py", "import cohere\n"),
        ("app.ts", 'import Anthropic from "@anthropic-ai/sdk";\n'),
        ("app.mjs", 'const { default: OpenAI } = await import("openai");\n'),
        ("app.ts", 'import { openai } from "@ai-sdk/openai";\n'),
    ]
    negative = [
        ("app.py", 's3 = boto3.client("s3")\n'),
        ("app.py", "from langchain.text_splitter import RecursiveCharacterTextSplitter\n"),
        ("app.py", "from langchain_core.prompts import ChatPromptTemplate\n"),
        ("app.ts", 'import { Document } from "langchain/document";\n'),
        ("app.py", "from llama_index.core.node_parser import SentenceSplitter\n"),
        ("app.py", "# from openai import OpenAI  (we use the connector instead)\n"),
        ("app.ts", '// import OpenAI from "openai";  -- via the connector now\n'),
        ("app.py", "from corp_llm_connector import complete\nanswer = complete(prompt)\n"),
        ("app.py", 'resp = requests.post(os.environ["LLM_CONNECTOR_URL"], json={"prompt": p})\n'),
        ("app.py", 'print("compare with openai and anthropic models")\n'),
        ("app.py", "bedrock_enabled = settings.get('bedrock-runtime-disabled', False)\n"),
    ]
    return [Case("egress", p, t, "llm") for p, t in positive] + [Case("egress", p, t, None) for p, t in negative]


# --------------------------------------------------------------------------- PII


def _luhn_number(rng: random.Random, prefix: str, length: int) -> str:
    body = prefix + "".join(rng.choice(string.digits) for _ in range(length - len(prefix) - 1))
    total = 0
    for i, ch in enumerate(reversed(body)):
        d = int(ch)
        if i % 2 == 0:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return body + str((10 - total % 10) % 10)


def _national_ids(rng: random.Random) -> list[tuple[str, str, str]]:
    """Valid-looking national identifiers (check digits computed here) with the label a file would carry."""
    from stdnum import verhoeff
    from stdnum.fr import nir
    from stdnum.it import codicefiscale

    out = []
    for _ in range(3):
        base = "".join(rng.choice(string.digits) for _ in range(9))
        d1 = (sum(int(c) * w for c, w in zip(base, range(10, 1, -1), strict=True)) * 10) % 11 % 10
        d2 = (sum(int(c) * w for c, w in zip(base + str(d1), range(11, 1, -1), strict=True)) * 10) % 11 % 10
        out.append(("CPF", f"{base[:3]}.{base[3:6]}.{base[6:]}-{d1}{d2}", "br-cpf"))
        number = rng.randint(10_000_000, 99_999_999)
        out.append(("DNI", f"{number}{'TRWAGMYFPDXBNJZSQVHLCKE'[number % 23]}", "es-dni"))
        body = str(rng.randint(2, 9)) + "".join(rng.choice(string.digits) for _ in range(10))
        aadhaar = body + verhoeff.calc_check_digit(body)
        out.append(("Aadhaar", f"{aadhaar[:4]} {aadhaar[4:8]} {aadhaar[8:]}", "in-aadhaar"))
        head = "".join(rng.choice(string.ascii_uppercase) for _ in range(6)) + f"{rng.randint(40, 99)}"
        head += (
            rng.choice("ABCDEHLMPRST")
            + f"{rng.randint(1, 28):02d}"
            + rng.choice("ABCDEFGHILM")
            + f"{rng.randint(100, 999)}"
        )
        out.append(("codice fiscale", head + codicefiscale.calc_check_digit(head), "it-codice-fiscale"))
        nir_body = f"{rng.randint(1, 2)}{rng.randint(50, 99)}{rng.randint(1, 12):02d}{rng.randint(1, 95):02d}"
        nir_body += f"{rng.randint(1, 990):03d}{rng.randint(1, 999):03d}"
        out.append(("NIR", f"{nir_body} {nir.calc_check_digits(nir_body)}", "fr-nir"))
    return out


def pii_cases() -> list[Case]:
    """Fictitious cards and phone numbers in many formats, and number-shaped values that are neither."""
    rng = random.Random(17)
    # Issuer prefixes and lengths: Mastercard 2-series (2221-2720) and 51-55, Visa, Amex, Discover, JCB, Diners.
    networks = [("2221", 16), ("2500", 16), ("2720", 16), ("51", 16), ("55", 16), ("4", 16), ("34", 15)]
    networks += [("37", 15), ("6011", 16), ("65", 16), ("3530", 16), ("36", 14)]
    cards = [_luhn_number(rng, prefix, length) for prefix, length in networks]
    cards = [" ".join(c[i : i + 4] for i in range(0, len(c), 4)) if n % 2 else c for n, c in enumerate(cards)]
    phones = [
        "+44 20 7946 0958",
        "+442079460958",
        "020 7946 0958",  # UK national
        "07700 900123",
        "+49 30 901820",
        "030 12345678",  # Germany national
        "+33 1 23 45 67 89",
        "01 23 45 67 89",  # France national
        "+34 912 345 678",
        "912 345 678",  # Spain national
        "+39 06 1234 5678",
        "06 1234 5678",  # Italy national
        "+91 98765 43210",
        "098765 43210",  # India national
        "+55 11 91234-5678",
        "(11) 91234-5678",  # Brazil national
        "+1 415 555 2671",
        "(415) 555-2671",
    ]
    negatives = [
        "2024-01-15 10:30:00",
        "192.168.100.200",
        "version 1.22.333.4444",
        "ORD-2024-000123",
        "1 234 567,89 EUR",
        "978-3-16-148410-0",
        "timeout 1700000000",
        "2720 9999 9999 9997",  # Mastercard range, Luhn fails
        "1800 0000 0000 0002",  # Luhn-valid, no network starts with 18
        "coords 51.5074, -0.1278",
        "build 20240115.1030.42",
    ]
    out = [Case("pii-card", "fixtures.json", f'{{"card": "{c}"}}\n', "payment-card") for c in cards]
    out += [
        Case("pii-national-id", "people.csv", f"{label},{value}\n", kind) for label, value, kind in _national_ids(rng)
    ]
    out += [
        Case("pii", "data.txt", "order 2341 2341 2346 shipped\n", None),  # Aadhaar-shaped, no label
        Case("pii", "data.txt", "batch 36574261809\n", None),  # tax-id-shaped, no label
        Case("pii", "data.txt", "sku 12345678-A\n", None),  # DNI-shaped, wrong letter
    ]
    out += [Case("pii-phone", "contacts.csv", f"Jane Roe,{p},London\n", "phone-number") for p in phones]
    out += [Case("pii", "data.txt", f"value: {n}\n", None) for n in negatives]
    return out


# --------------------------------------------------------------------------- measuring


def _fired(case: Case) -> bool:
    if case.family == "egress":
        from orchestrator.reviews.checks.egress import EgressScan

        scan = EgressScan()
        scan.add_file(case.path, case.text)
        return bool(scan.sdks or scan.llm_hosts)
    if case.family.startswith("pii"):
        from orchestrator.reviews.checks.pii import scan_pii

        kinds = {h.kind for h in scan_pii(case.text)}
        return case.expect in kinds if case.expect else bool(kinds)
    from orchestrator.reviews.checks.secrets import scan_text

    return bool(scan_text(case.text, case.path))


def detect_secrets_fired(case: Case) -> bool:
    """Whether detect-secrets flags the case as its CLI would: the case written to a file of the case's
    name and scanned with `scan_file` (default plugins and filters).

    Not `scan_line`: that is its ad hoc mode, with eager search and the file filters off, which flags
    nearly any line ("hello world" included) and would make the comparison meaningless.
    """
    import tempfile
    from pathlib import Path

    from detect_secrets.core.scan import scan_file
    from detect_secrets.settings import default_settings

    with tempfile.TemporaryDirectory(prefix="bench-ds-") as tmp, default_settings():
        path = Path(tmp) / Path(case.path).name
        path.write_text(case.text, encoding="utf-8")
        return any(True for _ in scan_file(str(path)))


def measure(cases: list[Case], *, detect_secrets: bool = False) -> dict[str, tuple[int, int, int, int]]:
    """Per family: (found, positives, fired on negatives, negatives), plus an `ALL` row; with
    `detect_secrets`, the numbers of detect-secrets on the same cases instead of ours."""
    stats: dict[str, list[int]] = {}
    for case in cases:
        hit = detect_secrets_fired(case) if detect_secrets else _fired(case)
        for key in (case.family, "ALL"):
            row = stats.setdefault(key, [0, 0, 0, 0])
            if case.expect:
                row[0] += hit
                row[1] += 1
            else:
                row[2] += hit
                row[3] += 1
    return {k: (v[0], v[1], v[2], v[3]) for k, v in stats.items()}


def misses(cases: list[Case]) -> list[Case]:
    """The cases the scanners get wrong (missed positives and fired negatives)."""
    return [c for c in cases if _fired(c) != bool(c.expect)]


def _cell(found: int, total: int) -> str:
    return f"{found}/{total} {100 * found / total:5.1f}%" if total else "-"


def print_report(title: str, cases: list[Case], *, compare: bool = False) -> None:
    """Recall and false-positive rate per family (and detect-secrets' on the same cases with `compare`)."""
    ours = measure(cases)
    theirs = measure(cases, detect_secrets=True) if compare else {}
    head = f"{'family':<18} {'recall':>16} {'false positives':>18}"
    if compare:
        head += f"   {'detect-secrets recall':>22} {'its false positives':>20}"
    print(f"{title}\n{head}")
    for family, (found, pos, fired, neg) in sorted(ours.items(), key=lambda kv: kv[0] == "ALL"):
        line = f"{family:<18} {_cell(found, pos):>16} {_cell(fired, neg):>18}"
        if compare:
            f2, p2, x2, n2 = theirs[family]
            line += f"   {_cell(f2, p2):>22} {_cell(x2, n2):>20}"
        print(line)


if __name__ == "__main__":
    print_report("secrets (generated, issue 17 families)", secret_cases(), compare=True)
    print_report("\nLLM egress", egress_cases())
    print_report("\nPII", pii_cases())
