"""Mask obvious secrets in text before it leaves the machine (in a prompt to an LLM judge).

Two layers: patterns of well-known credential formats (API keys, tokens, private keys, passwords
in URLs and assignments), and the literal values of this process's own secrets (environment
variables named like ``*_KEY``, ``*_TOKEN``, ``*_SECRET``, ``*_PASSWORD``), wherever they appear.
"""

from __future__ import annotations

import os
import re

MASK = "[REDACTED]"

_PATTERNS = [
    # PEM private keys, whole block (to the end of the text when the END line is missing).
    re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?(?:-----END [A-Z ]*PRIVATE KEY-----|\Z)", re.DOTALL),
    re.compile(r"\bsk-(?:proj-|ant-)?[A-Za-z0-9_\-]{16,}"),  # OpenAI / Anthropic style keys
    re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"),  # AWS access key ids
    re.compile(r"\bgh[pousr]_[A-Za-z0-9]{30,}\b"),  # GitHub tokens
    re.compile(r"\bgithub_pat_[A-Za-z0-9_]{40,}\b"),
    re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}\b"),  # Slack tokens
    re.compile(r"\bAIza[0-9A-Za-z_\-]{35}\b"),  # Google API keys
    re.compile(r"\beyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}"),  # JWTs
]
# Secrets that follow a telling name: keep the name, mask the value.
_ASSIGNMENTS = re.compile(
    # A name ending in a telling word (DB_PASSWORD, OPENAI_API_KEY, client_secret, "token"), then = or :.
    r"(?i)((?<![A-Za-z0-9])[\w.-]*?(?:password|passwd|pwd|secret|api[_-]?key|access[_-]?key|private[_-]?key"
    r"|auth[_-]?token|access[_-]?token|token)[\"']?\s*[:=]\s*[\"']?)(?!\[REDACTED\])([^\s\"',;]{4,})")
_BEARER = re.compile(r"(?i)(\bbearer\s+)(?!\[REDACTED\])([A-Za-z0-9._~+/\-]{8,}=*)")
_URL_PASSWORD = re.compile(r"([a-z][a-z0-9+.\-]*://[^\s:/@]+:)([^\s@/]+)(@)", re.IGNORECASE)
_SECRET_ENV_NAME = re.compile(r"(?i)(KEY|TOKEN|SECRET|PASSWORD|PASSWD)$")


def environment_secrets() -> list[str]:
    """Values of this process's environment variables that are named like secrets (8+ characters)."""
    return sorted({value for name, value in os.environ.items()
                   if _SECRET_ENV_NAME.search(name) and len(value) >= 8}, key=len, reverse=True)


def redact(text: str, known_secrets: list[str] | None = None) -> tuple[str, int]:
    """``text`` with secrets masked, and how many were masked."""
    count = 0
    for secret in known_secrets if known_secrets is not None else environment_secrets():
        if secret in text:
            count += text.count(secret)
            text = text.replace(secret, MASK)
    for pattern in _PATTERNS:
        text, n = pattern.subn(MASK, text)
        count += n
    for pattern in (_ASSIGNMENTS, _BEARER, _URL_PASSWORD):
        text, n = pattern.subn(lambda m: m.group(1) + MASK + (m.group(3) if m.re.groups >= 3 else ""), text)
        count += n
    return text, count
