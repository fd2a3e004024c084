"""Our NKey encoding (bus/nkey.c) against the reference implementation,
the PyPI package nkeys (by the NATS authors): a seed made by either side
gives the same public key on the other.

Our side is tests/bus/nkey_check (NKEY_CHECK): seeds on stdin, the public
key we derive for each on stdout ("ERR <why>" when we refuse one);
`--new N` prints N pairs "<seed> <public key>" we generated."""
import base64
import os
import subprocess

import pytest

try:
    import nacl.signing  # nkeys' own dependency
    import nkeys
except ImportError:  # a missing reference must fail the test, not skip it
    nkeys = None

ROUNDS = 50


def nkey_check(*args, stdin=""):
    path = os.environ.get("NKEY_CHECK")
    assert path and os.access(path, os.X_OK), \
        "NKEY_CHECK must name the built tests/bus/nkey_check (meson test sets it)"
    out = subprocess.run([path, *args], input=stdin, capture_output=True, text=True,
                         timeout=30, check=True)
    return out.stdout.splitlines()


@pytest.fixture(autouse=True)
def reference():
    assert nkeys is not None, \
        "the PyPI package nkeys is missing: pip install nkeys (.ci/setup installs it)"


def reference_user_seed():
    return nkeys.encode_seed(os.urandom(32), nkeys.PREFIX_BYTE_USER).decode()


def test_we_derive_the_reference_public_key_of_reference_seeds():
    seeds = [reference_user_seed() for _ in range(ROUNDS)]
    ours = nkey_check(stdin="".join(s + "\n" for s in seeds))
    assert len(ours) == ROUNDS
    for seed, pub in zip(seeds, ours):
        assert pub == nkeys.from_seed(seed.encode()).public_key.decode(), seed


def test_the_reference_derives_our_public_key_of_our_seeds():
    pairs = [line.split() for line in nkey_check("--new", str(ROUNDS))]
    assert len(pairs) == ROUNDS
    for seed, pub in pairs:
        assert seed.startswith("SU") and len(seed) == 58
        assert pub.startswith("U") and len(pub) == 56
        kp = nkeys.from_seed(seed.encode())
        assert kp.public_key.decode() == pub
        # And the keys work: what the reference signs with our seed
        # verifies against the raw key in our public key's text.
        raw = base64.b32decode(pub)[1:33]
        nacl.signing.VerifyKey(raw).verify(b"nonce", kp.sign(b"nonce"))
    assert len({seed for seed, _ in pairs}) == ROUNDS


def test_we_refuse_reference_seeds_of_other_kinds():
    account = nkeys.encode_seed(os.urandom(32), nkeys.PREFIX_BYTE_ACCOUNT).decode()
    good = reference_user_seed()
    bad_crc = good[:20] + ("A" if good[20] != "A" else "B") + good[21:]
    out = nkey_check(stdin=account + "\n" + bad_crc + "\n")
    assert out[0].startswith("ERR not a user seed"), out[0]
    assert out[1].startswith("ERR its checksum does not match"), out[1]
