#!/usr/bin/env python3
"""Writes a book into a stopped vault from PROTOCOL.md alone: the other direction of
bookswarm_reader.py. The book is a further generation of a pairwise book (§10.3) as its reader
holds it, with pages that probe the reader rules of §10.2 and §10.3.

Usage: bookswarm_craft.py READER_VAULT AUTHOR_VAULT TASK_ID GENERATION

READER_VAULT holds `author-reader-task` (generation 0); AUTHOR_VAULT is the author's vault,
whose identity.key gives the book key (§3.7, §10.6). Into READER_VAULT's store goes the book
`author-reader-task.GENERATION`, read-only (writable 0), with its pages, tree columns (§4.4)
and one signed root in the root table (§3.4, §4.5). Its pages (§10.2):

  0  address                                   (shown: no)
  1  a copy of generation 0's first chat, same meta      (a duplicate: generation 0's copy wins)
  2  a chat whose text is not UTF-8            (hidden)
  3  a chat without an id                      (shown, id `<16 hex of the book id>:3`)
  4  a chat whose head.author is the reader    (hidden)
  5  a chat whose head.index is wrong          (hidden)
  6  a chat whose head.previous is wrong       (shown: readers do not check it)
  7  a name with a right-to-left override, the newest   (not a valid name: ignored)
  8  a valid name, as old as generation 0's newest name (newer by generation: it wins)
  9  a join of the author (data: its peer id)  (shown, "kind": "join")
 10  a join whose data is the reader's id      (hidden)
 11  a join whose data is 31 bytes             (hidden)
 12  a chat with the id of the join at 9       (shown: a chat and a join are never one entry)
 13  part 0 of file 111…, a chunk              (shown: no; a part of 15)
 14  part 1 of file 111…, a chunk              (shown: no; a part of 15)
 15  file 111…: 2 parts, its hash              (shown, "kind": "file"; whole and intact)
 16  a file named `a/b`                        (hidden)
 17  a chunk of file 111… with no bytes        (hidden)
 18  file 333…: 1 part, none written           (shown; not whole)

Prints one JSON object: {"book", "length", "duplicate", "hidden", "shown", "name", "files"} (ids
of the chats, joins and files; "files": {"whole": id, "partial": id, "size": the whole one's}).
"""
import json
import os
import sqlite3
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the repository
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bookswarm_reader as r  # noqa: E402  (the same primitives, §3 and §10)


def varint(n):
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def encode_page(author, book, index, previous, type_, data, time, meta):
    """§10.2, no refs."""
    out = b"\x01" + author + book + varint(index) + (previous if index else b"")
    out += varint(0) + varint(type_) + varint(len(data)) + data + varint(time) + varint(len(meta))
    for key in sorted(meta, key=lambda k: k.encode()):
        k, v = key.encode(), meta[key].encode()
        out += varint(len(k)) + k + varint(len(v)) + v
    return out


def main():
    reader_vault, author_vault, task_hex, generation = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    task = bytes.fromhex(task_hex)
    author_seed = r.read_identity(author_vault)
    author = bytes(r.nacl.signing.SigningKey(author_seed).verify_key)
    reader = bytes(r.nacl.signing.SigningKey(r.read_identity(reader_vault)).verify_key)
    base = f"{author.hex()}-{reader.hex()}-{task.hex()}"
    name = f"{base}.{generation}"
    seed = r.blake2b(b"bookswarm/book-key/v1\x00" + name.encode(), key=r.master_secret(author_seed))
    signing = r.nacl.signing.SigningKey(seed)
    book = bytes(signing.verify_key)

    db = sqlite3.connect(os.path.join(reader_vault, "store", "books.sqlite"))
    (gen0,) = db.execute("SELECT id FROM book WHERE name = ?", (base,)).fetchone()
    store_pages = os.path.join(reader_vault, "store", "books.pages")

    def page_bytes(data, at, size):  # §4.10: a copy's page of 512 bytes or more is in books.pages
        if at is None:
            return data
        with open(store_pages, "rb") as f:
            f.seek(at)
            return f.read(size)
    old = [r.decode_page(page_bytes(d, at, size))
           for (d, at, size) in db.execute("SELECT data, at, size FROM page WHERE key >> 40 = ? ORDER BY key", (gen0,))]
    first_chat = next(p for p in old if p["type"] == r.CHAT)
    newest_name_time = max(p["time"] for p in old if p["type"] == r.NAME)
    t = first_chat["time"]
    chosen = f"Generation {generation}"
    bad_previous = b"\x00" * 32
    content = b"a file crafted from PROTOCOL.md \xe2\x80\x94 " * 40  # §10.2 Files: two parts, any lengths
    whole_id, bad_id, partial_id = "1" * 24, "2" * 24, "3" * 24

    def file_meta(file_id, name, data, parts):
        return {"hash": r.blake2b(data).hex(), "id": file_id, "name": name, "parts": str(parts), "size": str(len(data))}
    plan = [  # (head author, head index or None, previous override, type, data, time, meta)
        (author, None, None, r.ADDRESS, reader + task, t, {}),
        (author, None, None, r.CHAT, first_chat["data"], t, dict(first_chat["meta"])),
        (author, None, None, r.CHAT, b"\xff\xfe not UTF-8", t + 1, {"id": "a" * 24}),
        (author, None, None, r.CHAT, b"a chat without an id", t + 2, {}),
        (reader, None, None, r.CHAT, b"head.author is the reader", t + 3, {"id": "b" * 24}),
        (author, 99, None, r.CHAT, b"head.index is 99", t + 4, {"id": "c" * 24}),
        (author, None, bad_previous, r.CHAT, b"head.previous is wrong", t + 5, {"id": "d" * 24}),
        (author, None, None, r.NAME, "Mallory\u202e".encode(), newest_name_time + 10**6, {}),
        (author, None, None, r.NAME, chosen.encode(), newest_name_time, {}),
        (author, None, None, r.JOIN, author, t + 6, {"id": "e" * 24}),
        (author, None, None, r.JOIN, reader, t + 7, {"id": "f" * 24}),
        (author, None, None, r.JOIN, author[:31], t + 8, {"id": "0" * 24}),
        (author, None, None, r.CHAT, b"the id of a join", t + 6, {"id": "e" * 24}),
        (author, None, None, r.CHUNK, content[:1000], t + 9, {"id": whole_id, "part": "0"}),
        (author, None, None, r.CHUNK, content[1000:], t + 9, {"id": whole_id, "part": "1"}),
        (author, None, None, r.FILE, "a crafted file".encode(), t + 9, file_meta(whole_id, "crafted — 屋根.txt", content, 2)),
        (author, None, None, r.FILE, b"", t + 10, file_meta(bad_id, "a/b", content, 2)),
        (author, None, None, r.CHUNK, b"", t + 10, {"id": whole_id, "part": "2"}),
        (author, None, None, r.FILE, b"", t + 11, file_meta(partial_id, "partial.bin", content, 1)),
    ]
    pages, previous = [], None
    for j, (head_author, head_index, previous_override, type_, data, time, meta) in enumerate(plan):
        page = encode_page(head_author, book, j if head_index is None else head_index,
                           previous_override or previous, type_, data, time, meta)
        pages.append(page)
        previous = r.leaf_hash(page)

    nodes = {2 * j: r.leaf_hash(p) for j, p in enumerate(pages)}

    def node(k):
        if k not in nodes:
            left, right = r.children(k)
            nodes[k] = r.parent_hash(node(left), node(right))
        return nodes[k]

    length = len(pages)
    root = r.root_hash([(p, node(p)) for p in r.peaks(length)])
    signature = signing.sign(r.BOOK_TAG + book + r.u64(length) + root).signature
    (number,) = db.execute("SELECT max(id) + 1 FROM book").fetchone()
    with db:
        db.execute("INSERT INTO book (id, key, name, writable) VALUES (?, ?, ?, 0)", (number, book, name))
        for j, page in enumerate(pages):
            completed = r.nodes_completed_by(j)
            slots = completed if len(page) > 1024 else completed[1:]
            db.execute("INSERT INTO page (key, tree, data, root) VALUES (?, ?, ?, NULL)",
                       ((number << 40) | j, b"".join(node(k) for k in slots), page))
        db.execute("INSERT INTO root (book, length, hash, signature) VALUES (?, ?, ?, ?)",
                   (number, length, root, signature))
    db.close()
    print(json.dumps({"book": book.hex(), "length": length, "duplicate": first_chat["meta"]["id"],
                      "hidden": ["a" * 24, "b" * 24, "c" * 24, "f" * 24, "0" * 24, bad_id],
                      "shown": [f"{book.hex()[:16]}:3", "d" * 24, "e" * 24, whole_id, partial_id], "name": chosen,
                      "files": {"whole": whole_id, "partial": partial_id, "size": len(content)}}))


if __name__ == "__main__":
    main()
