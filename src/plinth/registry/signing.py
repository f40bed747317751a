"""Ed25519 signatures of model versions: who vouches for the code a version runs when loaded.

Loading a pickle-based flavor (scikit-learn, plain Python, the LightGBM wrapper) runs code from
the package, so without signatures whoever can write the store can run code wherever a model is
loaded: the store is the trust root. With PLINTH_SIGNING_KEY set, each version is signed when it
is registered; a signature covers a statement of the model's name, version, flavor and manifest
digest (which fixes every byte of the package), so it cannot be moved onto another version.

A version whose signature does not verify under a trusted key is refused always. With
PLINTH_REQUIRE_SIGNED=1 an unsigned version, or one signed by a key that is not trusted, is
refused too; without it they load, since a writer of the store could as well remove a signature.
Trusted keys are the public keys in PLINTH_VERIFY_KEYS and the signing key's own public half.
Signing and verifying need `cryptography` (`pip install 'plinth[signing]'`).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING

from plinth.core.entities import ModelVersion
from plinth.core.errors import ConfigError, SignatureError

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

    from plinth.core.settings import Settings

PURPOSE = "plinth model version"
SIGNING_SETTING = "PLINTH_SIGNING_KEY"
VERIFY_SETTING = "PLINTH_VERIFY_KEYS"
_NEW_KEY = "make one with `openssl genpkey -algorithm ed25519 -out signing-key.pem`"
_PUBLIC_HALF = "openssl pkey -in signing-key.pem -pubout -out signing-key.pub"


def statement(name: str, version: int, flavor: str, digest: str) -> bytes:
    """The bytes a signature covers: the manifest's digest bound to the version it belongs to."""
    fields = {"digest": digest, "flavor": flavor, "name": name, "purpose": PURPOSE, "version": version}
    return json.dumps(fields, sort_keys=True, separators=(",", ":")).encode()


def fingerprint(key: Ed25519PublicKey) -> str:
    """A public key's fingerprint: the sha256 of its 32 raw bytes, in hex."""
    from cryptography.hazmat.primitives import serialization

    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()


@dataclass(frozen=True)
class Signer:
    """The private key of PLINTH_SIGNING_KEY, ready to sign versions."""

    key: Ed25519PrivateKey
    fingerprint: str

    def sign(self, name: str, version: int, flavor: str, digest: str) -> str:
        """The base64 signature of a version's statement."""
        return base64.b64encode(self.key.sign(statement(name, version, flavor, digest))).decode()


def load_signer(settings: Settings) -> Signer | None:
    """The signer of `settings.signing_key`, or None when no signing key is set.

    Raises:
        ConfigError: `cryptography` is missing, or the file is missing, unreadable, not PEM,
            encrypted, a public key, or not an Ed25519 key.
    """
    if not settings.signing_key:
        return None
    key = _private_key(settings.signing_key)
    return Signer(key, fingerprint(key.public_key()))


def trusted_keys(settings: Settings) -> dict[str, Ed25519PublicKey]:
    """The keys signatures are checked against, by fingerprint (empty when none is configured)."""
    keys = [_public_key(path) for path in settings.verify_keys]
    if settings.signing_key:
        keys.append(_private_key(settings.signing_key).public_key())
    return {fingerprint(k): k for k in keys}


def check(mv: ModelVersion, settings: Settings, *, required: bool | None = None) -> None:
    """Refuse a version whose signature is bad, or unsigned or untrusted where signing is required.

    Args:
        required: whether a verified signature is required; `settings.require_signed` by default.

    Raises:
        SignatureError: as described in the module docstring.
        ConfigError: a key file in the settings cannot be used (checked whatever the version).
    """
    required = settings.require_signed if required is None else required
    verdict = status(mv, settings)
    if verdict == "bad" or (required and verdict != "verified"):
        raise SignatureError(_refusal(mv, verdict))


def status(mv: ModelVersion, settings: Settings) -> str:
    """'unsigned', 'verified', 'bad', 'untrusted' (a key not trusted here) or 'unchecked' (no keys set).

    Raises:
        ConfigError: a key file in the settings cannot be used.
    """
    keys = trusted_keys(settings)
    if mv.manifest_signature is None and mv.signing_key is None:
        return "unsigned"
    raw = _decode(mv.manifest_signature)
    if raw is None or not mv.signing_key:
        return "bad"
    if not keys:
        return "unchecked"
    key = keys.get(mv.signing_key)
    if key is None:
        return "untrusted"
    from cryptography.exceptions import InvalidSignature

    try:
        key.verify(raw, statement(mv.name, mv.version, mv.flavor, mv.digest))
    except InvalidSignature:
        return "bad"
    return "verified"


def _refusal(mv: ModelVersion, verdict: str) -> str:
    required = "PLINTH_REQUIRE_SIGNED=1 refuses"
    if verdict == "bad":
        return (
            f"The signature of model {mv.ref} does not match its name, version, flavor and digest: "
            "the record was changed after it was signed, or the signature was copied from another "
            "version. It was not loaded; restore the record from a backup or register the model again."
        )
    if verdict == "unsigned":
        return (
            f"Model {mv.ref} is not signed and {required} unsigned versions. Check that it is the "
            f"model you expect, then sign it: `plinth models sign {mv.ref}` with {SIGNING_SETTING} set."
        )
    if verdict == "untrusted":
        return (
            f"Model {mv.ref} is signed by key {mv.signing_key}, which is not among the trusted keys, "
            f"and {required} it. Add that key's public half to {VERIFY_SETTING} if you trust it."
        )
    return (
        f"Model {mv.ref} is signed but no key is set to check it with, and {required} it: "
        f"set {VERIFY_SETTING} to the signers' public keys (or {SIGNING_SETTING})."
    )


def _decode(signature: str | None) -> bytes | None:
    if not signature:
        return None
    try:
        raw = base64.b64decode(signature, validate=True)
    except (binascii.Error, ValueError):
        return None
    return raw if len(raw) == 64 else None


def _private_key(path: str) -> Ed25519PrivateKey:
    _need_cryptography()
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    data = _read_pem(path, SIGNING_SETTING)
    if b"PRIVATE KEY-----" not in data and b"PUBLIC KEY-----" in data:
        raise ConfigError(
            f"{SIGNING_SETTING}={path!r} is a public key; signing needs the private key (its public "
            f"half belongs in {VERIFY_SETTING})."
        )
    try:
        key = load_pem_private_key(data, password=None)
    except TypeError as exc:
        raise ConfigError(
            f"{SIGNING_SETTING}={path!r} is encrypted with a passphrase; plinth reads keys without one. "
            "Keep an unencrypted copy readable only by you (chmod 600)."
        ) from exc
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise ConfigError(
            f"{SIGNING_SETTING}={path!r} is not a PEM private key ({exc}); {_NEW_KEY}."
        ) from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise ConfigError(f"{SIGNING_SETTING}={path!r} holds {_kind(key)}, not an Ed25519 key; {_NEW_KEY}.")
    return key


def _public_key(path: str) -> Ed25519PublicKey:
    _need_cryptography()
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    data = _read_pem(path, VERIFY_SETTING)
    if b"PRIVATE KEY-----" in data:
        raise ConfigError(
            f"{VERIFY_SETTING} lists {path!r}, a private key; give its public half instead "
            f"(`{_PUBLIC_HALF}`) and keep the private key with the signer."
        )
    try:
        key = load_pem_public_key(data)
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise ConfigError(f"{VERIFY_SETTING} lists {path!r}, which is not a PEM public key ({exc}).") from exc
    if not isinstance(key, Ed25519PublicKey):
        raise ConfigError(f"{VERIFY_SETTING} lists {path!r}, which holds {_kind(key)}, not an Ed25519 key.")
    return key


def _kind(key: object) -> str:
    """'an RSA key', 'an EC key' ... from the key's class name."""
    name = type(key).__name__.lstrip("_").removesuffix("PrivateKey").removesuffix("PublicKey")
    return f"an {name} key" if name[:1] in "AEIOURX" else f"a {name} key"


def _read_pem(path: str, setting: str) -> bytes:
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except FileNotFoundError as exc:
        raise ConfigError(f"{setting}: there is no key file {path!r}; {_NEW_KEY}.") from exc
    except OSError as exc:
        raise ConfigError(f"{setting}: the key file {path!r} cannot be read ({exc.strerror}).") from exc
    if b"-----BEGIN " not in data:
        raise ConfigError(f"{setting}: {path!r} is not a PEM key file (no '-----BEGIN' line); {_NEW_KEY}.")
    return data


def _need_cryptography() -> None:
    try:
        import cryptography  # noqa: F401
    except ImportError as exc:
        raise ConfigError(
            "Model signing needs the cryptography package: pip install 'plinth[signing]'."
        ) from exc
