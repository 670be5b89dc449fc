"""Hashes of file contents, read in 1 MiB chunks (weights files can be large)."""
import hashlib

__all__ = ['update_file_digest', 'file_sha1']


def update_file_digest(digest, path):
    """Feed the bytes of ``path`` into the hashlib object ``digest`` (in place) and return it."""
    with open(path, 'rb') as f:
        for chunk in iter(lambda: f.read(1 << 20), b''):
            digest.update(chunk)
    return digest


def file_sha1(path):
    """Hex SHA-1 of a file's bytes."""
    return update_file_digest(hashlib.sha1(), path).hexdigest()
