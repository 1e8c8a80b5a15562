"""Ed25519 signing of the auditor export's manifest.

The private key is a PEM (PKCS#8, unencrypted) file named by `IRU_SIGNING_KEY_FILE`, kept
outside the data folder and readable by its owner only; the public half is a PEM file beside
it (`<key>.pub`) that auditors receive out of band. An export's `manifest.json` records the
public key's fingerprint (sha256 of its raw 32 bytes) and `manifest.sig` holds the 64-byte
signature of the exact bytes of `manifest.json`. Ed25519 signatures are deterministic, so
exporting a run twice still gives the same bytes.

Nothing here ever prints, logs or raises the key material: errors name the file and the fix.
"""

from __future__ import annotations

import hashlib
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from iru_pipeline.config import ConfigError
from iru_pipeline.env_names import SIGNING_KEY_FILE_ENV

SIGNATURE_FILE = "manifest.sig"
ALGORITHM = "Ed25519"
KEY_SETTING = SIGNING_KEY_FILE_ENV


def fingerprint(public_key: Ed25519PublicKey) -> str:
    """sha256 of the raw public key, in hex (what manifest.json records)."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()


@dataclass(frozen=True)
class Signer:
    """A loaded private key; repr shows only the fingerprint."""

    _key: Ed25519PrivateKey
    fingerprint: str

    def sign(self, data: bytes) -> bytes:
        return self._key.sign(data)

    def __repr__(self) -> str:
        return f"Signer(fingerprint={self.fingerprint!r})"


def check_private_key_file(path: Path, data_dir: Path | None = None) -> None:
    """Refuse a key file that is missing, inside the data folder, or readable by others."""
    where = f"{KEY_SETTING}={path}"
    try:
        st = path.stat()
    except OSError as exc:
        raise ConfigError(f"{where} cannot be read ({exc.strerror}): run `iru-pipeline keygen` "
                          "and point the setting at the private key it writes") from None
    if not stat.S_ISREG(st.st_mode):
        raise ConfigError(f"{where} is not a file: point it at the private key written by `iru-pipeline keygen`")
    if st.st_mode & 0o077:
        raise ConfigError(f"{where} is readable or writable by group or others (mode "
                          f"{stat.S_IMODE(st.st_mode):o}): run `chmod 600 {path}`")
    if data_dir is not None and _inside(path, data_dir):
        raise ConfigError(f"{where} is inside the data folder {data_dir}: move the key elsewhere "
                          "(the data folder is copied and shared; the key must not be)")


def load_signer(path: Path, data_dir: Path | None = None) -> Signer:
    check_private_key_file(path, data_dir)
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError):
        raise ConfigError(f"{KEY_SETTING}={path} is not an unencrypted PEM private key: "
                          "write one with `iru-pipeline keygen`") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ConfigError(f"{KEY_SETTING}={path} is not an Ed25519 key: write one with `iru-pipeline keygen`")
    return Signer(key, fingerprint(key.public_key()))


def load_public_key(path: Path) -> Ed25519PublicKey:
    """An auditor's copy of the public key (PEM, as written by keygen). ConfigError if unusable."""
    try:
        key = serialization.load_pem_public_key(path.read_bytes())
    except OSError as exc:
        raise ConfigError(f"--public-key {path} cannot be read ({exc.strerror})") from None
    except (ValueError, TypeError):
        raise ConfigError(f"--public-key {path} is not a PEM public key: use the .pub file written by "
                          "`iru-pipeline keygen`") from None
    if not isinstance(key, Ed25519PublicKey):
        raise ConfigError(f"--public-key {path} is not an Ed25519 public key")
    return key


def signature_valid(public_key: Ed25519PublicKey, signature: bytes, data: bytes) -> bool:
    try:
        public_key.verify(signature, data)
    except InvalidSignature:
        return False
    return True


def generate_key_pair(private_path: Path) -> tuple[Path, str]:
    """Write a new Ed25519 key pair: the private key (mode 0600, created exclusively: an
    existing key is never overwritten) and `<private>.pub`. Returns the public key's path and
    fingerprint."""
    public_path = private_path.with_name(private_path.name + ".pub")
    for existing in (private_path, public_path):
        if existing.exists():
            raise ConfigError(f"{existing} already exists: choose another --out (a key is never overwritten)")
    private_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    # O_EXCL with mode 0600 from the start: the key is never readable by others, not even briefly.
    fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)
    os.chmod(private_path, 0o600)  # in case the umask was stricter than needed, or looser
    public_path.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                          serialization.PublicFormat.SubjectPublicKeyInfo))
    return public_path, fingerprint(key.public_key())


def _inside(path: Path, folder: Path) -> bool:
    try:
        path.resolve().relative_to(folder.resolve())
    except ValueError:
        return False
    return True
