"""The format rules of the secret scanner: one regular expression per credential format.

Each rule names the lower-case literals (`anchors`) one of which must occur on a line before its
regular expression runs there; that prefilter is what keeps the scan fast. Rules without anchors run
over the whole text and must start with a cheap literal or character class. Where detect-secrets has
a maintained plugin for a format we do not cover otherwise, its expressions are used as they are
(`source` names the plugin; copied in secret_rules_ds.py, so the light install needs no detect-secrets).
The secret is the named group `s`, else the first group that matched, else the whole match.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable
from dataclasses import dataclass

from orchestrator.reviews.checks.findings import Severity
from orchestrator.reviews.checks.secret_rules_ds import DENYLISTS
from orchestrator.reviews.checks.secret_values import mixed_alnum, shannon_entropy


@dataclass(frozen=True)
class Rule:
    """One credential format."""

    id: str
    family: str
    pattern: re.Pattern[str]
    anchors: tuple[str, ...]
    severity: Severity = Severity.high
    min_entropy: float = 0.0
    sequences: bool = True
    placeholder: bool = True
    window: int = 0
    validator: Callable[[str], bool] | None = None
    source: str = "orchestrator"
    # "credential" rules match human-chosen passwords: they also reject templates and stand-in words
    # (unless `words` is off: in `DirectoryEntry(path, user, "secret")` the word is the password).
    kind: str = "format"
    words: bool = True

    def secret_of(self, match: re.Match[str]) -> str:
        """The secret value inside a match of this rule."""
        for name in ("s", "t"):
            if name in self.pattern.groupindex and match.group(name) is not None:
                return match.group(name)
        for group in match.groups():
            if group:
                return group
        return match.group(0)


L = r"(?<![A-Za-z0-9_])"  # left boundary: not inside a longer word
R = r"(?![A-Za-z0-9_])"  # right boundary


def _denylist(plugin: str) -> list[re.Pattern[str]]:
    """A detect-secrets plugin's denylist, compiled as the plugin compiles it (secret_rules_ds.py)."""
    return [re.compile(p, re.IGNORECASE if ci else 0) for p, ci in DENYLISTS[plugin]]


def _r(
    rule_id: str,
    family: str,
    regex: str,
    anchors: tuple[str, ...] | str,
    *,
    flags: int = 0,
    **kwargs: object,
) -> Rule:
    anchors = (anchors,) if isinstance(anchors, str) else anchors
    return Rule(rule_id, family, re.compile(regex, flags), tuple(a.lower() for a in anchors), **kwargs)  # type: ignore[arg-type]


def _has_letter(value: str) -> bool:
    return any(c.isalpha() for c in value)


def _has_digit(value: str) -> bool:
    return any(c.isdigit() for c in value)


def _pem_body_ok(body: str) -> bool:
    # A header followed by nothing or a word ("anything") is documentation, not a key.
    compact = re.sub(r"\s+|\\n|\\r|[\"',]", "", body)
    return len(compact) >= 12 and not ("<" in compact and ">" in compact)


def _atlassian_dc_pat(value: str) -> bool:
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return False
    return len(raw) == 33 and raw[:12].isdigit() and raw[12:13] == b":"


def _b64_pem(value: str) -> bool:
    head = value[:120]
    head = head[: len(head) - len(head) % 4]
    try:
        decoded = base64.b64decode(head)
    except (binascii.Error, ValueError):
        return False
    return b"PRIVATE KEY" in decoded


_AWS_PREFIXES = ("akia", "asia", "abia", "acca", "a3t")

RULES: tuple[Rule, ...] = (
    # --- cloud: AWS
    _r(
        "aws-access-key-id",
        "aws",
        L + r"(?P<s>(?:A3T[A-Z0-9]|AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16})" + R,
        _AWS_PREFIXES,
        severity=Severity.critical,
    ),
    _r(
        "aws-secret-access-key",
        "aws",
        r"(?i:aws)[\w.\-]{0,40}?(?i:secret|sec|key|token)[^\n]{0,60}?(?<![A-Za-z0-9/+])"
        r"(?P<s>[A-Za-z0-9/+]{40})(?![A-Za-z0-9/+=])",
        "aws",
        severity=Severity.critical,
        min_entropy=3.0,
        validator=mixed_alnum,
    ),
    _r(
        "aws-bedrock-api-key",
        "aws",
        L + r"(?P<s>bedrock-api-key-[A-Za-z0-9+/]{20,}={0,2}|ABSK[A-Za-z0-9+/]{40,}={0,2})",
        ("bedrock-api-key-", "absk"),
        severity=Severity.critical,
    ),
    _r("aws-appsync-api-key", "aws", L + r"(?P<s>da2-[a-z0-9]{26})" + R, "da2-"),
    # --- cloud: Google
    _r("gcp-api-key", "google", L + r"(?P<s>AIza[\w-]{35})(?![\w-])", "aiza", severity=Severity.critical),
    _r("google-oauth-client-secret", "google", L + r"(?P<s>GOCSPX-[\w-]{28})(?![\w-])", "gocspx-"),
    _r("google-oauth-access-token", "google", L + r"(?P<s>ya29\.[\w-]{20,})", "ya29."),
    # --- cloud: Azure
    _r(
        "azure-storage-account-key",
        "azure",
        r"(?i:AccountKey|SharedAccessKey)\s*=\s*(?P<s>[A-Za-z0-9+/]{40,}={0,2})",
        ("accountkey", "sharedaccesskey"),
        severity=Severity.critical,
    ),
    # A shared access signature: the signed-version field, then the signature (base64, often URL-encoded).
    _r(
        "azure-sas-signature",
        "azure",
        r"(?i:\bsv=\d{4}-\d{2}-\d{2})[^\s\"'<>`]{0,400}?[?&;]sig=(?P<s>(?:[A-Za-z0-9+/]|%2[BbFf]){40,120}(?:=|%3[Dd]){0,2})",
        "sv=",
        min_entropy=3.5,
    ),
    _r(
        "azure-ad-client-secret",
        "azure",
        r"(?:^|[\\'\"`\s>=:(,)])(?P<s>[a-zA-Z0-9_~.]{3}\dQ~[a-zA-Z0-9_~.-]{31,34})(?:$|[\\'\"`\s<),])",
        "q~",
        severity=Severity.critical,
    ),
    _r(
        "azure-app-config-connection-string",
        "azure",
        r"azconfig\.io;Id=[^;\s]{4,};Secret=(?P<s>[A-Za-z0-9+/]{20,}={0,2})",
        "azconfig.io",
    ),
    _r(
        "azure-devops-pat",
        "azure",
        r"(?<![A-Za-z0-9])(?P<s>[A-Za-z0-9]{52}JQQJ9[A-Za-z0-9]{19}AZDO[A-Za-z0-9]{4})(?![A-Za-z0-9])",
        "jqqj9",
    ),
    # --- source control
    _r(
        "github-token",
        "github",
        L + r"(?P<s>gh[pousr]_[A-Za-z0-9]{36,255})" + R,
        ("ghp_", "gho_", "ghu_", "ghs_", "ghr_"),
    ),
    _r("github-fine-grained-pat", "github", L + r"(?P<s>github_pat_[A-Za-z0-9_]{60,255})" + R, "github_pat_"),
    _r(
        "gitlab-token",
        "gitlab",
        L + r"(?P<s>gl(?:pat|dt|ft|soat|rt|cbt|ptt|imt|agent|oas|ffct)-[A-Za-z0-9_\-]{20,1024}"
        r"(?:\.[A-Za-z0-9_\-]{2,}){0,2})(?![\w-])",
        ("glpat-", "gldt-", "glft-", "glsoat-", "glrt-", "glcbt-", "glptt-", "glimt-", "glagent-", "gloas-", "glffct-"),
    ),
    _r(
        "gitlab-runner-registration-token",
        "gitlab",
        L + r"(?P<s>GR1348941[A-Za-z0-9_\-]{20,50})(?![\w-])",
        "gr1348941",
        validator=lambda v: _has_letter(v[9:]),
    ),
    _r("bitbucket-app-password", "bitbucket", L + r"(?P<s>ATBB[a-zA-Z0-9]{32})" + R, "atbb"),
    # --- chat: Slack, Teams
    _r(
        "slack-token",
        "slack",
        L + r"(?P<s>xox[abposr]-(?:\d{6,}-)+[A-Za-z0-9]{10,})",
        "xox",
        sequences=False,
        validator=lambda v: _has_letter(v.rsplit("-", 1)[-1]),
    ),
    _r("slack-config-token", "slack", L + r"(?P<s>xoxe(?:\.xox[bp])?-\d-[A-Za-z0-9]{100,})", "xoxe"),
    _r(
        "slack-app-token",
        "slack",
        L + r"(?P<s>xapp-\d-[A-Za-z0-9]+-\d+-[A-Za-z0-9]+|xapp-\d{6,}-[A-Za-z0-9/+]{16,})",
        "xapp-",
    ),
    _r(
        "slack-webhook-url",
        "slack",
        r"(?P<s>hooks\.slack\.com/(?:services|workflows|triggers)/[A-Za-z0-9_]+/[A-Za-z0-9_]+/(?:[A-Za-z0-9_]+/)?"
        r"[A-Za-z0-9_]{16,})",
        "hooks.slack.com",
    ),
    _r(
        "msteams-webhook-url",
        "msteams",
        r"(?P<s>(?:outlook\.office\.com|[a-z0-9-]+\.webhook\.office\.com)/webhook(?:b2)?/[0-9a-f-]{36}@[0-9a-f-]{36}/"
        r"IncomingWebhook/[0-9a-f]{32}/[0-9a-f-]{36})",
        ("outlook.office.com/webhook", "webhook.office.com"),
    ),
    _r("discord-webhook-url", "discord", r"(?P<s>discord(?:app)?\.com/api/webhooks/\d+/[\w-]{60,})", "discord"),
    _r("telegram-bot-token", "telegram", r"(?<![0-9])(?P<s>\d{8,10}:AA[A-Za-z0-9_-]{32,33})(?![A-Za-z0-9_-])", ":aa"),
    # --- payments
    _r(
        "stripe-key",
        "stripe",
        r"(?<![A-Za-z0-9])(?P<s>[rs]k_(?:live|prod)_[A-Za-z0-9]{20,247})" + R,
        ("sk_live_", "rk_live_", "sk_prod_", "rk_prod_"),
        severity=Severity.critical,
    ),
    _r(
        "stripe-webhook-secret",
        "stripe",
        r"(?<![A-Za-z0-9])(?P<s>whsec_[A-Za-z0-9+/=]{24,80})" + R,
        "whsec_",
        min_entropy=3.5,
    ),
    _r(
        "stripe-test-key",
        "stripe",
        r"(?<![A-Za-z0-9])(?P<s>[rs]k_test_[A-Za-z0-9]{20,247})" + R,
        ("sk_test_", "rk_test_"),
        severity=Severity.medium,
    ),
    _r(
        "square-token",
        "square",
        L + r"(?P<s>sq0atp-[\w-]{22,60}|sq0csp-[\w\\-]{30,60}|EAAA[\w-]{60})",
        ("sq0atp-", "sq0csp-", "eaaa"),
        sequences=False,
    ),
    _r("shopify-token", "shopify", L + r"(?P<s>shp(?:ss|at|ca|pa)_[a-fA-F0-9]{32})" + R, "shp"),
    # --- LLM providers
    _r(
        "openai-api-key",
        "openai",
        L + r"(?P<s>sk-(?:(?:proj|svcacct|admin|None)-)?[A-Za-z0-9_-]{16,}T3BlbkFJ[A-Za-z0-9_-]{16,})",
        "sk-",
    ),
    _r("openai-project-key", "openai", L + r"(?P<s>sk-(?:proj|svcacct|admin)-[A-Za-z0-9_-]{40,})", "sk-"),
    _r(
        "anthropic-api-key",
        "anthropic",
        L + r"(?P<s>sk-ant-(?:api|admin|sid)\d{2}-[\w-]{80,})",
        "sk-ant-",
        sequences=False,
    ),
    _r("groq-api-key", "llm", L + r"(?P<s>gsk_[A-Za-z0-9]{48,})" + R, "gsk_"),
    _r("perplexity-api-key", "llm", L + r"(?P<s>pplx-[A-Za-z0-9]{48})" + R, "pplx-"),
    _r(
        "huggingface-token",
        "llm",
        L + r"(?P<s>hf_[A-Za-z]{34}|api_org_[A-Za-z]{34})" + R,
        ("hf_", "api_org_"),
        validator=mixed_alnum,
    ),
    _r("jina-api-key", "llm", L + r"(?P<s>jina_[A-Za-z0-9]{60,})" + R, "jina_"),
    _r("tavily-api-key", "llm", L + r"(?P<s>tvly-(?:dev-)?[A-Za-z0-9]{32})" + R, "tvly-"),
    _r("firecrawl-api-key", "llm", L + r"(?P<s>fc-[a-f0-9]{32})" + R, "fc-"),
    _r("replicate-api-token", "llm", L + r"(?P<s>r8_[A-Za-z0-9]{37})" + R, "r8_"),
    _r("xai-api-key", "llm", L + r"(?P<s>xai-[A-Za-z0-9]{80})" + R, "xai-"),
    # --- keys and tokens with self-describing shapes
    _r(
        "private-key",
        "private-key",
        r"-----BEGIN[ A-Z0-9_-]{0,100}PRIVATE KEY(?: BLOCK)?-----(?P<s>(?:(?!-----END)[\s\S]){0,8000})",
        "private key",
        severity=Severity.critical,
        window=80,
        validator=_pem_body_ok,
        placeholder=False,
    ),
    _r(
        "private-key-base64",
        "private-key",
        r"(?P<s>LS0tLS1CRUdJTi[A-Za-z0-9+/]{40,}={0,2})",
        "ls0tls1crudjti",
        severity=Severity.critical,
        validator=_b64_pem,
    ),
    _r(
        "putty-private-key",
        "private-key",
        r"(?P<s>PuTTY-User-Key-File-\d: .*)",
        "putty-user-key-file",
        severity=Severity.critical,
    ),
    _r(
        "age-secret-key",
        "private-key",
        r"(?P<s>AGE-SECRET-KEY-1[0-9A-Z]{58})",
        "age-secret-key-1",
        severity=Severity.critical,
    ),
    _r(
        "jwt",
        "jwt",
        r"(?<![A-Za-z0-9_-])(?P<s>eyJ[A-Za-z0-9_-]{10,}\.eyJ[A-Za-z0-9_-]{10,}(?:\.[A-Za-z0-9_\-+/=]*)?)",
        "eyj",
    ),
    # --- other services
    _r("1password-service-account-token", "1password", L + r"(?P<s>ops_eyJ[A-Za-z0-9+/]{250,}={0,3})", "ops_eyj"),
    _r(
        "1password-secret-key",
        "1password",
        r"\b(?P<s>A3-[A-Z0-9]{6}-(?:[A-Z0-9]{11}|[A-Z0-9]{6}-[A-Z0-9]{5})-[A-Z0-9]{5}-[A-Z0-9]{5}-[A-Z0-9]{5})\b",
        "a3-",
    ),
    # Jira / Confluence / Bitbucket Data Center personal access token: base64 of "<12-digit id>:<20 random bytes>".
    _r(
        "atlassian-dc-pat",
        "atlassian",
        # base64 of 12 ASCII digits starts [MNO][DTjz]; the look-behind after the first letter keeps the scan fast
        r"(?P<s>[MNO](?<![A-Za-z0-9+/][MNO])[DTjz][A-Za-z0-9+/]{42})(?![A-Za-z0-9+/=])",
        (),
        validator=_atlassian_dc_pat,
    ),
    _r("atlassian-api-token", "atlassian", L + r"(?P<s>ATATT3[A-Za-z0-9_\-=]{150,})", "atatt3"),
    _r(
        "artifactory-token",
        "artifactory",
        L + r"(?P<s>AKCp[A-Za-z0-9]{69}|cmVmdGtu[A-Za-z0-9]{56})" + R,
        ("akcp", "cmvmdgtu"),
    ),
    _r("cloudflare-origin-ca-key", "cloudflare", L + r"(?P<s>v1\.0-[a-f0-9]{24}-[a-f0-9]{146})", "v1.0-"),
    _r("clickhouse-api-secret", "clickhouse", L + r"(?P<s>4b1d[A-Za-z0-9]{38})" + R, "4b1d"),
    _r("databricks-token", "databricks", L + r"(?P<s>dapi[a-f0-9]{32}(?:-\d)?)" + R, "dapi"),
    _r(
        "digitalocean-token",
        "digitalocean",
        L + r"(?P<s>do[opr]_v1_[a-f0-9]{64})" + R,
        ("doo_v1_", "dop_v1_", "dor_v1_"),
    ),
    _r("dockerhub-pat", "dockerhub", L + r"(?P<s>dckr_pat_[\w-]{27,})", "dckr_pat_"),
    _r(
        "doppler-token",
        "doppler",
        r"\b(?P<s>dp\.(?:ct|pt|st|sa|scim|audit)\.(?:[a-z0-9_-]{2,35}\.)?[A-Za-z0-9]{40,44})\b",
        "dp.",
    ),
    _r("dropbox-token", "dropbox", r"(?<![\w.])(?P<s>sl\.[A-Za-z0-9_-]{130,160})", "sl."),
    _r("dynatrace-token", "dynatrace", r"(?P<s>dt0c01\.[A-Z0-9]{24}\.[A-Z0-9]{64})", "dt0c01."),
    _r("facebook-access-token", "facebook", L + r"(?P<s>EAA[MC][A-Za-z0-9]{80,})", ("eaam", "eaac")),
    _r(
        "facebook-app-token",
        "facebook",
        r"(?<![0-9])(?P<s>\d{15,16}\|[A-Za-z0-9_-]{27})(?![A-Za-z0-9_-])",
        ("facebook", "access_token"),
    ),
    _r("figma-token", "figma", L + r"(?P<s>figd_[\w-]{40,})", "figd_"),
    _r(
        "flyio-token",
        "flyio",
        L + r"(?P<s>fo1_[\w-]{43}|fm[12][ar]?_[A-Za-z0-9+/]{100,}={0,3})",
        ("fo1_", "fm1", "fm2"),
    ),
    _r(
        "grafana-token",
        "grafana",
        L + r"(?P<s>glc_[A-Za-z0-9+/]{32,400}={0,2}|glsa_[A-Za-z0-9]{32}_[A-Fa-f0-9]{8}"
        r"|eyJrIjoi[A-Za-z0-9+/]{30,}={0,2})",
        ("glc_", "glsa_", "eyjrijoi"),
    ),
    _r("hashicorp-tf-token", "hashicorp", r"(?i)\b(?P<s>[a-z0-9]{14}\.atlasv1\.[a-z0-9\-_=]{60,70})", "atlasv1"),
    _r("vault-token", "hashicorp", L + r"(?P<s>hv[sbr]\.[A-Za-z0-9_-]{24,})", ("hvs.", "hvb.", "hvr.")),
    _r(
        "vault-unseal-key",
        "hashicorp",
        r"(?i:unseal key\s*\d*\s*:|operator unseal)\s+(?P<s>[A-Za-z0-9+/]{40,}={0,2})",
        "unseal",
    ),
    _r("heroku-api-key", "heroku", L + r"(?P<s>HRKU-[A-Za-z0-9_-]{40,})", "hrku-"),
    _r("infracost-api-token", "infracost", r"(?<![\w.])(?P<s>ico-[A-Za-z0-9]{32})" + R, "ico-"),
    _r("intra42-client-secret", "intra42", L + r"(?P<s>s-s4t2(?:ud|af)-[a-f0-9]{64})" + R, "s-s4t2"),
    _r("mailchimp-api-key", "mailchimp", L + r"(?P<s>[0-9a-f]{32}-us\d{1,2})" + R, "-us"),
    _r("mailgun-api-key", "mailgun", L + r"(?P<s>key-[0-9a-f]{32})" + R, "key-"),
    _r("mapbox-token", "mapbox", L + r"(?P<s>[spt]k\.eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,})", "k.eyj"),
    _r(
        "newrelic-key",
        "newrelic",
        L + r"(?P<s>NRAK-[A-Z0-9]{27}|NRAA-[a-f0-9]{27}|NRI[IQ]-[A-Za-z0-9_-]{32}|NRRA-[a-f0-9]{42}|[A-Za-z0-9]{36}NRAL"
        r"|px-(?:dep|api)-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})" + R,
        ("nrak-", "nraa-", "nrii-", "nriq-", "nrra-", "nral", "px-dep-", "px-api-"),
    ),
    _r("notion-api-token", "notion", L + r"(?P<s>ntn_\d{11}[A-Za-z0-9]{35})" + R, "ntn_", validator=_has_letter),
    _r("npm-access-token", "npm", L + r"(?P<s>npm_[A-Za-z0-9]{36})" + R, "npm_"),
    _r("nuget-api-key", "nuget", L + r"(?P<s>oy2[a-z0-9]{43})" + R, "oy2"),
    _r("octopus-deploy-api-key", "octopus", r"(?<![A-Za-z0-9])(?P<s>API-[A-Z0-9]{26})(?![A-Za-z0-9])", "api-"),
    _r(
        "okta-api-token",
        "okta",
        r"(?i:okta)[\s\S]{0,120}?(?<![\w-])(?P<s>00[A-Za-z0-9_-]{40})(?![\w-])",
        "okta",
        window=2,
        min_entropy=3.5,
    ),
    _r("openshift-token", "openshift", r"(?P<s>sha256~[\w-]{43})(?![\w-])", "sha256~"),
    _r("postman-api-key", "postman", r"(?P<s>PMAK-[a-f0-9]{24}-[a-f0-9]{34})", "pmak-"),
    _r(
        "postmark-token",
        "postmark",
        r"(?i:postmark)[\w-]*[\"']?\s*[:=]\s*[\"']?(?P<s>[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})",
        "postmark",
    ),
    _r("pypi-token", "pypi", r"(?P<s>pypi-Ag[A-Za-z0-9_-]{50,})", "pypi-ag"),
    _r("rubygems-api-key", "rubygems", L + r"(?P<s>rubygems_[a-f0-9]{48})" + R, "rubygems_"),
    _r("salesforce-token", "salesforce", L + r"(?P<s>00D[A-Za-z0-9]{12,15}![A-Za-z0-9._]{80,})", "00d"),
    _r("scalingo-token", "scalingo", L + r"(?P<s>tk-us-[\w-]{48})", "tk-us-"),
    _r("sendgrid-api-key", "sendgrid", L + r"(?P<s>SG\.[\w-]{22}\.[\w-]{43})", "sg."),
    _r(
        "sentry-token",
        "sentry",
        L + r"(?P<s>sntrys_eyJ[A-Za-z0-9+/=_-]{50,}|sntryu_[a-f0-9]{64})",
        ("sntrys_", "sntryu_"),
    ),
    _r(
        "sidekiq-secret",
        "sidekiq",
        r"BUNDLE_(?:ENTERPRISE|GEMS)__CONTRIBSYS__COM[\"']?\s*[:=]\s*[\"']?(?P<s>[a-f0-9]{8}:[a-f0-9]{8})",
        "contribsys",
    ),
    _r(
        "sonarqube-token",
        "sonarqube",
        r"(?i:sonar)[\w.-]*(?i:login|token)[\"']?\s*(?:[=:,]|=>)\s*[\"']?(?P<s>[a-f0-9]{40})\b|"
        + L
        + r"(?P<t>sq[pua]_[a-f0-9]{40})"
        + R,
        ("sonar", "sqp_", "squ_", "sqa_"),
    ),
    _r(
        "sourcegraph-token",
        "sourcegraph",
        L
        + r"(?P<s>sgp_(?:[a-fA-F0-9]{16}_|local_)?[A-Za-z0-9]{40,64})"
        + R
        + r"|(?i:sourcegraph)\W{1,5}(?P<t>[a-fA-F0-9]{40})\b",
        ("sgp_", "sourcegraph"),
    ),
    _r("stackhawk-api-key", "stackhawk", r"(?P<s>hawk\.[\w-]{20}\.[\w-]{20})", "hawk."),
    _r(
        "sumologic-access-id",
        "sumologic",
        r"(?i:sumo)[\w.-]{0,30}[\"']?\s*[:=]\s*[\"']?(?P<s>su[A-Za-z0-9]{12})(?![A-Za-z0-9])",
        "sumo",
        validator=_has_digit,
    ),
    _r("thingsboard-token", "thingsboard", r"thingsboard\.cloud/api/v1/(?P<s>[a-z0-9]{20})/", "thingsboard"),
    _r(
        "truenas-api-key",
        "truenas",
        r"login_with_api_key\"[\s\S]{0,40}?\"(?P<s>\d+-[A-Za-z0-9]{64})\"",
        "login_with_api_key",
    ),
    # Literal first (the look-behind after it): a pattern that opens with a look-behind is tried at
    # every position of the text.
    _r("twilio-api-key", "twilio", r"(?P<s>SK(?<![A-Za-z0-9]SK)[0-9a-f]{32})(?![A-Za-z0-9])", ()),
    # An auth token is 32 hex digits, like any MD5: it counts when its account SID stands right before it
    # (same call, same object, the next lines of an .env file).
    _r(
        "twilio-auth-token",
        "twilio",
        r"AC(?<![A-Za-z0-9]AC)[0-9a-f]{32}(?![A-Za-z0-9])[^\n]{0,120}(?:\n[^\n]{0,120}){0,2}?"
        r"(?<![A-Za-z0-9])(?P<s>[0-9a-f]{32})(?![A-Za-z0-9])",
        (),
        severity=Severity.critical,
        min_entropy=3.0,
    ),
    _r("twitch-stream-key", "twitch", L + r"(?P<s>live_\d{6,10}_[A-Za-z0-9]{30})" + R, "live_"),
    _r("adafruit-io-key", "adafruit", L + r"(?P<s>aio_[A-Za-z0-9]{28})" + R, "aio_"),
    _r("adobe-client-secret", "adobe", L + r"(?P<s>p8e-[A-Za-z0-9_-]{32})(?![\w-])", "p8e-"),
    _r(
        "cratesio-api-key",
        "cratesio",
        r"(?<![A-Za-z0-9])(?P<s>cio[a-zA-Z0-9]{32})(?![A-Za-z0-9])",
        "cio",
        validator=mixed_alnum,
        min_entropy=3.5,
    ),
    _r("dependency-track-api-key", "dependency-track", L + r"(?P<s>odt_[A-Za-z0-9]{32})" + R, "odt_"),
    _r("linear-api-key", "linear", L + r"(?P<s>lin_api_[A-Za-z0-9]{40})" + R, "lin_api_"),
    _r(
        "codeclimate-reporter-id",
        "codeclimate",
        r"(?i:codeclimate|cc_test_reporter_id)[\w-]*[\"']?\s*[:=]\s*[\"']?(?P<s>[a-f0-9]{64})\b",
        ("codeclimate", "cc_test_reporter_id"),
    ),
    # --- credentials in commands and connection strings
    _r(
        "basic-auth-url",
        "generic",
        r"\b[a-z][a-z0-9+.-]{1,20}://(?P<u>[^\s:@/'\"<>{}\[\]]*):(?P<s>[^\s:@/'\"<>{}\[\]]+)@[\w.-]+",
        "://",
        kind="credential",
    ),
    _r(
        "curl-user-password",
        "generic",
        r"(?:^|\s)(?:-u|--user)[ =]+[\"']?(?P<u>[^\s\"':]*)[\"']?:[\"']?(?P<s>[^\s\"']+)[\"']?",
        "curl",
        window=8,
        kind="credential",
    ),
    _r(
        "authorization-header",
        "generic",
        r"(?<![A-Za-z])(?i:authorization)(?:\s*[:=]\s*(?i:basic|bearer|token|digest)\s+|[\"']\s*[:=]\s*[\"']"
        r"(?:(?i:basic|bearer|token|digest)\s+)?|\s*:\s*)(?P<s>[A-Za-z0-9+/=_.~-]{8,})",
        "authorization",
        kind="credential",
        min_entropy=3.0,
        validator=lambda v: _has_digit(v) and not v.startswith("AWS4-"),
    ),
    _r(
        "bearer-token",
        "generic",
        r"(?i:bearer)\s*:?\s+(?P<s>[A-Za-z0-9+/=_.~-]{8,})",
        "bearer",
        kind="credential",
        min_entropy=3.0,
        validator=_has_digit,
    ),
    _r(
        "psexec-password",
        "generic",
        r"(?i:psexec)[^\n]*?\s-u\s+\S+\s+-p\s+(?P<s>[^\s\"']+)",
        "psexec",
        kind="credential",
    ),
    _r(
        "netrc-password",
        "generic",
        r"\bmachine\s+\S+\s+login\s+\S+\s+password\s+(?P<s>\S+)",
        "machine",
        window=3,
        kind="credential",
    ),
    _r(
        "dotnet-network-credential",
        "generic",
        r"NetworkCredential\(\s*\"[^\"]*\"\s*,\s*\"(?P<s>[^\"]{3,})\"",
        "networkcredential",
        kind="credential",
        words=False,
    ),
    _r(
        "dotnet-directory-entry",
        "generic",
        r"DirectoryEntry\(\s*\"[^\"]*\"\s*,\s*\"[^\"]*\"\s*,\s*\"(?P<s>[^\"]{3,})\"",
        "directoryentry",
        window=3,
        kind="credential",
        words=False,
    ),
    _r(
        "password-in-prose",
        "generic",
        r"(?i:\bpassword\b)(?:\s+for\s+(?:the\s+)?user\s+[\"']?[^\"'\s]+[\"']?)?\s+is\s+[\"'](?P<s>[^\"'\n]{3,64})[\"']",
        ("password is", "password for"),
        severity=Severity.medium,
        kind="credential",
    ),
    # --- detect-secrets plugins for formats the rules above do not cover
    *(
        Rule(
            f"ibm-cloud-iam-key-{i}",
            "ibm",
            p,
            ("key", "pwd", "pass", "token"),
            min_entropy=3.0,
            source="detect-secrets:IbmCloudIamDetector",
        )
        for i, p in enumerate(_denylist("IbmCloudIamDetector"))
    ),
    *(
        Rule(f"ibm-cos-hmac-{i}", "ibm", p, ("secret",), source="detect-secrets:IbmCosHmacDetector")
        for i, p in enumerate(_denylist("IbmCosHmacDetector"))
    ),
    *(
        Rule(
            f"softlayer-key-{i}",
            "softlayer",
            p,
            ("softlayer", "sl_", "sl-", "slapi", "slkey", "slpass", "slpwd", "sltoken"),
            source="detect-secrets:SoftlayerDetector",
        )
        for i, p in enumerate(_denylist("SoftlayerDetector"))
    ),
    *(
        Rule(
            f"cloudant-credential-{i}",
            "cloudant",
            p,
            ("cloudant", "clou", "cl_", "cl-", "clapi", "clkey", "clpw", "clpass", "cltoken"),
            source="detect-secrets:CloudantDetector",
        )
        for i, p in enumerate(_denylist("CloudantDetector"))
    ),
    *(
        Rule(f"npm-auth-token-{i}", "npm", p, ("_authtoken",), source="detect-secrets:NpmDetector")
        for i, p in enumerate(_denylist("NpmDetector"))
    ),
    *(
        Rule(
            f"discord-bot-token-{i}", "discord", p, (), min_entropy=3.5, source="detect-secrets:DiscordBotTokenDetector"
        )
        for i, p in enumerate(_denylist("DiscordBotTokenDetector"))
    ),
)


def value_ok(rule: Rule, value: str) -> bool:
    """Rule-specific acceptance of a matched value (entropy floor and validator)."""
    if rule.min_entropy and shannon_entropy(value) < rule.min_entropy:
        return False
    return rule.validator is None or rule.validator(value)
