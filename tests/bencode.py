"""Bencoding by hand, for .torrent files no library would write (odd key order, `..` paths)."""


def bencode(value, *, sort_keys: bool = False) -> bytes:
    """Dictionary keys in the given order unless `sort_keys` (what the format asks for)."""
    if isinstance(value, int):
        return b"i%de" % value
    if isinstance(value, str):
        value = value.encode()
    if isinstance(value, bytes):
        return b"%d:%s" % (len(value), value)
    if isinstance(value, list):
        return b"l" + b"".join(bencode(item, sort_keys=sort_keys) for item in value) + b"e"
    items = sorted(value.items()) if sort_keys else value.items()
    return b"d" + b"".join(bencode(key) + bencode(item, sort_keys=sort_keys) for key, item in items) + b"e"
