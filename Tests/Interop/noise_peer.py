#!/usr/bin/env python3
"""An independent Noise peer for interop tests: PyPI's `noiseprotocol`, keys via `pynacl`.

Bookswarm derives a peer's Noise static key from its Ed25519 identity
(crypto_sign_ed25519_{sk,pk}_to_curve25519); this script does the same through pynacl,
so the conversion is checked independently too.

Usage: noise_peer.py --pattern IK|XX --role initiator|responder --seed HEX32
                     [--remote-id HEX32] [--prologue HEX]
Prints `ready <own X25519 static public key hex>`, then answers one line per command on
stdin:
  write HEX   -> `ok HEX`: the next handshake message, or after the handshake a transport
                 ciphertext, carrying the payload HEX
  read HEX    -> `ok HEX`: the payload of a handshake message or a transport ciphertext
  info        -> `ok <handshake hash hex> <remote static key hex>`
  quit
Any failure prints `error <text>` and exits 1. Exits 3 when a module is missing.
"""
import argparse
import sys

try:
    from nacl import bindings
    from noise.connection import NoiseConnection, Keypair
except ImportError as error:  # the Swift test skips with this message
    print(f"missing {error.name}", flush=True)
    sys.exit(3)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--pattern", required=True, choices=["IK", "XX"])
    parser.add_argument("--role", required=True, choices=["initiator", "responder"])
    parser.add_argument("--seed", required=True)
    parser.add_argument("--remote-id")
    parser.add_argument("--prologue", default="")
    args = parser.parse_args()

    _, ed_secret = bindings.crypto_sign_seed_keypair(bytes.fromhex(args.seed))
    static_secret = bindings.crypto_sign_ed25519_sk_to_curve25519(ed_secret)
    static_public = bindings.crypto_scalarmult_base(static_secret)

    conn = NoiseConnection.from_name(f"Noise_{args.pattern}_25519_ChaChaPoly_BLAKE2b".encode())
    if args.role == "initiator":
        conn.set_as_initiator()
    else:
        conn.set_as_responder()
    conn.set_keypair_from_private_bytes(Keypair.STATIC, static_secret)
    if args.remote_id:
        remote = bindings.crypto_sign_ed25519_pk_to_curve25519(bytes.fromhex(args.remote_id))
        conn.set_keypair_from_public_bytes(Keypair.REMOTE_STATIC, remote)
    conn.set_prologue(bytes.fromhex(args.prologue))
    conn.start_handshake()
    # noiseprotocol drops its handshake state when the handshake ends; keep a reference to
    # read the remote static key afterwards.
    handshake = conn.noise_protocol.handshake_state

    print(f"ready {static_public.hex()}", flush=True)
    for line in sys.stdin:
        words = line.split()
        if not words:
            continue
        command, data = words[0], bytes.fromhex(words[1]) if len(words) > 1 else b""
        try:
            if command == "write":
                out = conn.write_message(data) if not conn.handshake_finished else conn.encrypt(data)
            elif command == "read":
                out = conn.read_message(data) if not conn.handshake_finished else conn.decrypt(data)
            elif command == "info":
                rs = handshake.rs.public_bytes.hex() if hasattr(handshake.rs, "public_bytes") else "-"
                print(f"ok {conn.get_handshake_hash().hex()} {rs}", flush=True)
                continue
            elif command == "quit":
                return 0
            else:
                raise ValueError(f"unknown command {command}")
        except Exception as error:  # report any failure to the driving test, then stop
            print(f"error {type(error).__name__}: {error}".replace("\n", " "), flush=True)
            return 1
        print(f"ok {bytes(out).hex()}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
