#!/usr/bin/env python3
"""An independent reader of a Bookswarm vault, written from PROTOCOL.md alone.

It checks the disk format (§4) and the book layer (§3) of every book in a vault's store, and
reads the task messenger's pages (§10.2, §10.3) to print each task's log the way `bookswarm
log TASK --json` does (§10.7 `entry`), one JSON object per line. Nothing of Bookswarm's own
code is used: Python's sqlite3 and hashlib (BLAKE2b) and PyNaCl (Ed25519).

Usage: bookswarm_reader.py VAULT [--task TASK_ID]
       bookswarm_reader.py --store BOOKS.SQLITE [--master-secret HEX]

Without --task, every task of the vault (its journals) is printed as a line
`{"task": ID, "title": ..., "messages": N}` (N: its messages — chats and files —, joins not
counted) followed by its entries (messages, files and joins); with --task, only that task's
entries. Each file of a log is put together from its parts (§10.2 Files) and checked against
its hash: counted as `files`, `files whole`, `files intact`. A summary of what was checked goes to stderr as one line
`checked: {JSON counts}`. Any mismatch between the store and PROTOCOL.md ends the run with
exit status 1 and one line `mismatch: REASON` on stderr. A fault in a book the vault wrote is
a mismatch; a malformed page in another author's book is what §10.2 tells readers to hide:
it is counted and left out of the log. Exit 3: PyNaCl is missing (the Swift test skips).

Stop the daemon first (the reader refuses a store whose books.lock is held, §4.1). The store
is opened read-only and, when no WAL is left beside it, `immutable=1`, so that nothing is
written next to it (a `mode=ro` connection would leave -shm and -wal files behind).

This file holds §10: messenger pages and files (§10.2), a task's books and log (§10.3), the
vault (§10.6) and the command line. The book layer and the disk format (§1, §3, §4: hashes, the
flat tree, signatures, proofs, book keys, reading and checking books.sqlite and books.pages) are
in bookswarm_store.py beside it, whose names it re-exports.
"""
import argparse
import json
import os
import re
import sqlite3
import sys
import unicodedata

try:
    import nacl.exceptions
    import nacl.public
    import nacl.signing
except ImportError as error:  # the Swift test skips with this message
    print(f"missing {error.name}", file=sys.stderr, flush=True)
    sys.exit(3)

# §1, §3 and §4 (hashes, the flat tree, signatures, proofs, keys, the store): bookswarm_store.py,
# beside this file. Its names are re-exported here: bookswarm_craft.py uses them as `r.NAME`.
from bookswarm_store import (  # noqa: E402, F401  (after the PyNaCl check above)
    BOOK_TAG, Mismatch, blake2b, book_public_key, check_store, children, fail, leaf_hash, new_counts,
    nodes_completed_by, parent_hash, peaks, root_hash, u64, verify_proof,
)


# ---------------------------------------------------------------- §10.2 messenger pages

class Malformed(Exception):
    pass


class Reader:
    def __init__(self, data):
        self.data, self.at = data, 0

    def bytes(self, n):
        if self.at + n > len(self.data):
            raise Malformed("truncated")
        out = self.data[self.at:self.at + n]
        self.at += n
        return out

    def u8(self):
        return self.bytes(1)[0]

    def varint(self):
        """Unsigned LEB128, canonical: ≤ 10 bytes, no trailing zero group, ≤ 2^64 − 1."""
        value, shift = 0, 0
        for count in range(1, 11):
            byte = self.u8()
            value |= (byte & 0x7F) << shift
            if not byte & 0x80:
                if byte == 0 and count > 1:
                    raise Malformed("non-canonical varint")
                if value > 2**64 - 1:
                    raise Malformed("varint over 2^64 - 1")
                return value
            shift += 7
        raise Malformed("varint over 10 bytes")

    def done(self):
        return self.at == len(self.data)


def utf8(raw, what):
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise Malformed(f"{what} is not UTF-8")


CHAT, ADDRESS, JOIN, COPY, TITLE, TASK, NAME, CHUNK, FILE, SUCCESSOR, FOLLOWED, WITHDRAW = 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12
SEALED_BOX_OVERHEAD = 48  # libsodium's crypto_box_SEALBYTES


def successor_of(page, author, reader):
    """§10.2 Successors: (without, with, invite) of a `successor` page by `author` in a book
    for `reader` (the author itself: its journal), or None when it breaks the rules."""
    if not re.fullmatch(r"[0-9a-f]{24}", page["meta"].get("id", "")):
        return None
    data, at, lists = page["data"], 0, []
    for minimum in (1, 0):
        if at >= len(data):
            return None
        count = data[at]
        at += 1
        if count < minimum or len(data) - at < 32 * count:
            return None
        peers = [data[at + 32 * n: at + 32 * n + 32] for n in range(count)]
        at += 32 * count
        if any(a >= b for a, b in zip(peers, peers[1:])):
            return None
        lists.append(peers)
    without, with_ = lists
    if set(without) & set(with_) or author in without or author in with_:
        return None
    invite = data[at:]
    if reader == author:
        if len(invite) != 48 or invite[:32] != author:
            return None
    elif reader in with_:
        if len(invite) != 48 + SEALED_BOX_OVERHEAD:
            return None
    elif invite:
        return None
    return without, with_, invite


def decode_page(data):
    r = Reader(data)
    if r.u8() != 1:
        raise Malformed("version is not 1")
    page = {"author": r.bytes(32), "book": r.bytes(32)}
    page["index"] = r.varint()
    page["previous"] = r.bytes(32) if page["index"] > 0 else None
    n = r.varint()
    if n > 64:
        raise Malformed("over 64 refs")
    page["refs"] = []
    for _ in range(n):
        page["refs"].append((r.bytes(32), r.varint(), r.bytes(32)))
    page["type"] = r.varint()
    length = r.varint()
    if length > 2**20:
        raise Malformed("data over 2^20 bytes")
    page["data"] = r.bytes(length)
    page["time"] = r.varint()
    k = r.varint()
    if k > 16:
        raise Malformed("over 16 meta fields")
    meta, raw_keys, canonical = {}, [], set()
    for _ in range(k):
        key_length = r.varint()
        if key_length > 256:
            raise Malformed("meta key over 256 bytes")
        raw_key = r.bytes(key_length)
        key = utf8(raw_key, "meta key")
        value_length = r.varint()
        if value_length > 256:
            raise Malformed("meta value over 256 bytes")
        value = utf8(r.bytes(value_length), "meta value")
        if raw_keys and raw_key <= raw_keys[-1]:
            raise Malformed("meta keys not strictly increasing")
        if unicodedata.normalize("NFD", key) in canonical:
            raise Malformed("two meta keys canonically equivalent")
        raw_keys.append(raw_key)
        canonical.add(unicodedata.normalize("NFD", key))
        meta[key] = value
    page["meta"] = meta
    if not r.done():
        raise Malformed("trailing bytes")
    if page["type"] == COPY and not page["refs"]:
        raise Malformed("copy without refs")
    return page


def decode_copy_evidence(data):
    r = Reader(data)
    if r.u8() != 1:
        raise Malformed("copy evidence version is not 1")
    original = r.bytes(r.varint())
    length = r.varint()
    root, signature = r.bytes(32), r.bytes(64)
    m = r.varint()
    if m > 128:
        raise Malformed("over 128 proof nodes")
    nodes = [(r.varint(), r.bytes(32)) for _ in range(m)]
    if not r.done():
        raise Malformed("trailing bytes in copy evidence")
    return original, length, root, signature, nodes


WHITE_SPACE = set(map(chr, [*range(0x09, 0x0E), 0x20, 0x85, 0xA0, 0x1680, *range(0x2000, 0x200B),
                            0x2028, 0x2029, 0x202F, 0x205F, 0x3000]))
FORBIDDEN_CATEGORIES = {"Cc", "Cf", "Zl", "Zp", "Cs", "Co", "Cn"}


def valid_name(data):
    """§10.2 display names: 1…64 bytes of UTF-8, trimmed, no invisible or control scalars."""
    if not 1 <= len(data) <= 64:
        return None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if text[0] in WHITE_SPACE or text[-1] in WHITE_SPACE:
        return None
    if any(unicodedata.category(c) in FORBIDDEN_CATEGORIES for c in text):
        return None
    return text


# ---------------------------------------------------------------- §10.2 files

HEX24, HEX64_TEXT = re.compile(r"[0-9a-f]{24}"), re.compile(r"[0-9a-f]{64}")
NAME_FORBIDDEN = {*map(chr, range(0x00, 0x20)), *map(chr, range(0x7F, 0xA0)), "\u200e", "\u200f",
                  *map(chr, range(0x202A, 0x202F)), *map(chr, range(0x2066, 0x206A)), "/", "\\"}


def number(text):
    """A meta number: decimal digits without leading zeros, at most 2^53 − 1; else None."""
    if text is None or not re.fullmatch(r"0|[1-9][0-9]*", text) or int(text) > 2**53 - 1:
        return None
    return int(text)


def valid_file_name(name):
    return (name is not None and 1 <= len(name.encode("utf-8")) <= 255 and name not in (".", "..")
            and not any(c in NAME_FORBIDDEN for c in name))


def file_manifest(page):
    """A `file` page's (id, {hash, name, parts, size}, caption), or None when it is malformed."""
    meta = page["meta"]
    try:
        caption = page["data"].decode("utf-8")
    except UnicodeDecodeError:
        return None
    file_id, digest, name = meta.get("id"), meta.get("hash"), meta.get("name")
    size, parts = number(meta.get("size")), number(meta.get("parts"))
    if file_id is None or not HEX24.fullmatch(file_id) or digest is None or not HEX64_TEXT.fullmatch(digest):
        return None
    if not valid_file_name(name) or size is None or parts is None or (parts == 0) != (size == 0) or parts > size:
        return None
    return file_id, {"hash": digest, "name": name, "parts": parts, "size": size}, caption


def chunk_of(page):
    """A `chunk` page's (file id, part), or None when it is malformed."""
    file_id, part = page["meta"].get("id"), number(page["meta"].get("part"))
    if not page["data"] or file_id is None or not HEX24.fullmatch(file_id) or part is None:
        return None
    return file_id, part


def withdrawn_file_of(page):
    """A `withdraw` page's `ref` (the id of the file its author withdraws), or None when it is
    malformed (§10.2 Withdrawn files): data not empty, `id` or `ref` not 24 lower-case hex."""
    meta = page["meta"]
    if page["data"] or not HEX24.fullmatch(meta.get("id", "")) or not HEX24.fullmatch(meta.get("ref", "")):
        return None
    return meta["ref"]


# ---------------------------------------------------------------- §10.3 book names

HEX64, HEX32 = "[0-9a-f]{64}", "[0-9a-f]{32}"
TASK_BOOK = re.compile(rf"^({HEX64})-({HEX64})-({HEX32})(?:\.([1-9][0-9]?))?$")


def classify(name):
    """('task', author, reader, task, generation) | ('profile',) | ('compiled', NAME) | ('other',)."""
    if name is None:
        return ("other",)
    m = TASK_BOOK.match(name)
    if m:
        generation = int(m.group(4) or 0)
        if generation > 15:
            fail(f"book {name!r}: generation over 15 (§10.3)")
        return ("task", bytes.fromhex(m.group(1)), bytes.fromhex(m.group(2)), bytes.fromhex(m.group(3)), generation)
    if name == "profile":
        return ("profile",)
    if name.startswith("compiled:"):
        rest = name[len("compiled:"):]
        if not rest or rest != rest.strip():
            fail(f"book {name!r}: compiled name not trimmed or empty (§3.7)")
        return ("compiled", rest)
    return ("other",)


# ---------------------------------------------------------------- §10.6 the vault's identity and master secret

def read_identity(vault):
    path = os.path.join(vault, "identity.key")
    if os.stat(path).st_mode & 0o077:
        fail("identity.key has group or other permission bits (§10.6)")
    with open(path, "rb") as f:
        lines = f.read().split(b"\n")
    if lines[0] != b"bookswarm-identity-v1" or len(lines) < 2 or not re.fullmatch(rb"[0-9a-fA-F]{64}", lines[1]):
        fail("identity.key is not `bookswarm-identity-v1` then 64 hex digits (§10.6)")
    return bytes.fromhex(lines[1].decode())


def master_secret(seed):
    return blake2b(seed, key=b"bookswarm/vault/master-secret/v1")


# ---------------------------------------------------------------- §10.3 the messenger's view

def read_vault(vault, only_task=None):
    counts = new_counts()
    seed = read_identity(vault)
    me = bytes(nacl.signing.SigningKey(seed).verify_key)
    master = master_secret(seed)
    books = check_store(os.path.join(vault, "store", "books.sqlite"), master, counts)

    tasks = {}  # task id → list of (book, kind tuple)
    decoded = {}  # (book number, index) → page
    for book in books:
        kind = classify(book.name)
        if kind[0] == "task":
            _, author, reader, task, generation = kind
            if book.writable and author != me:
                fail(f"{book.label}: writable, but another peer's book (§10.3)")
            if author == me and not book.writable:
                # Our own book given up to take back its readers' version (§4.7, §10.3): read-only,
                # its key still the one the master secret derives from its name.
                if book_public_key(master, book.name) != book.key:
                    fail(f"{book.label}: a book of ours given up, but its key is not derived from its name (§4.7)")
                counts["books given up"] += 1
            if author == reader and (author != me or generation):
                fail(f"{book.label}: a journal of another peer, or of a generation (§10.3)")
            tasks.setdefault(task, []).append((book, kind))
        if kind[0] in ("task", "compiled", "profile"):
            for j, data in sorted(book.pages.items()):
                # A page of a book we wrote must be perfect; one of another author's book that
                # is not is hidden and counted, as §10.2 tells readers to.
                try:
                    page = decode_page(data)
                    problems = page_problems(book, kind, j, page, me)
                except Malformed as error:
                    page, problems = None, [("malformed", f"not a messenger page: {error}")]
                if problems and book.writable:
                    fail(f"{book.label} page {j}: {problems[0][1]}")
                counts["messenger pages"] += 1
                if any(severity == "malformed" for severity, _ in problems):
                    counts["malformed pages"] += 1
                    continue
                if problems:
                    counts["wrong previous (shown)"] += 1
                decoded[(book.number, j)] = page
        if kind[0] == "compiled":
            if not book.writable:
                fail(f"{book.label}: a compiled book we do not write")
            for j in sorted(book.pages):
                check_copy(book, j, decoded[(book.number, j)])
                counts["copies verified"] += 1
        if kind[0] == "other":
            print(f"note: {book.label} has a name no section defines", file=sys.stderr)

    journals = {task for task, entries in tasks.items()
                if any(k[1] == me and k[2] == me for _, k in entries)}
    out = []
    for task in sorted(journals):
        if only_task is not None and task.hex() != only_task:
            continue
        entries, title = task_log(tasks[task], decoded, me, counts, seed)
        if only_task is None:
            # A summary's `messages` (§10.7): chat and file entries, joins not counted.
            header = {"task": task.hex(), "messages": sum(1 for e in entries if e.get("kind", "file") == "file")}
            if title is not None:
                header["title"] = title
            out.append(header)
        out.extend(entries)
    if only_task is not None and bytes.fromhex(only_task) not in journals:
        fail(f"task {only_task}: no journal in this vault")
    return out, counts


def page_problems(book, kind, j, page, me):
    """What §10.2 and §10.3 require of the page found at index j of book: a list of
    ("malformed" | "previous", reason). head.author is the author part of the name (task
    books), or the store's own peer (its profile and compiled books, which only it writes);
    head.book and head.index are where the page is. head.previous is the leaf hash of page
    index − 1, but a reader does not check it (the Merkle tree already fixes the order): a
    wrong one is only reported."""
    problems = []
    expected_author = kind[1] if kind[0] == "task" else me
    if page["author"] != expected_author:
        problems.append(("malformed", "head.author is not the book's author (§10.2)"))
    if page["book"] != book.key or page["index"] != j:
        problems.append(("malformed", "head.book/head.index are not where the page was found (§10.2)"))
    if kind[0] == "task" and j == 0:
        _, author, reader, task, _ = kind
        expected_type = TASK if author == reader else ADDRESS
        if page["type"] != expected_type:
            problems.append(("malformed", f"page 0 of type {page['type']}, expected {expected_type} (§10.3)"))
        elif author != reader and page["data"] != reader + task:
            problems.append(("malformed", "address page data is not reader peer id ‖ task id (§10.2)"))
        elif author == reader and (len(page["data"]) != 48 or page["data"][32:] != task):
            problems.append(("malformed", "task page data is not creator ‖ task id (§10.2)"))
    if page["type"] == NAME and valid_name(page["data"]) is None:
        unassigned = [f"U+{ord(c):04X}" for c in page["data"].decode("utf-8", errors="replace")
                      if unicodedata.category(c) == "Cn"]
        problems.append(("malformed", "a name page whose name is not valid (§10.2)" + (
            f"; {', '.join(unassigned)} unassigned in this Python's Unicode {unicodedata.unidata_version}"
            if unassigned else "")))
    if page["type"] == CHAT:
        try:
            page["data"].decode("utf-8")
        except UnicodeDecodeError:
            problems.append(("malformed", "a chat page whose text is not UTF-8 (§10.2)"))
    if page["type"] == JOIN and page["data"] != page["author"]:
        problems.append(("malformed", "a join page whose data is not its head.author (§10.2)"))
    if page["type"] == FILE and file_manifest(page) is None:
        problems.append(("malformed", "a file page that breaks the rules of §10.2 Files"))
    if page["type"] == CHUNK and chunk_of(page) is None:
        problems.append(("malformed", "a chunk page that breaks the rules of §10.2 Files"))
    if page["type"] == WITHDRAW and withdrawn_file_of(page) is None:
        problems.append(("malformed", "a withdraw page that breaks the rules of §10.2 Withdrawn files"))
    if page["type"] == SUCCESSOR and (kind[0] != "task" or successor_of(page, kind[1], kind[2]) is None):
        problems.append(("malformed", "a successor page that breaks the rules of §10.2 Successors"))
    if page["type"] == FOLLOWED and (kind[0] != "task" or kind[1] != kind[2] or len(page["data"]) != 80
                                     or page["data"][32:64] != page["data"][:32]
                                     or not re.fullmatch(r"[0-9a-f]{24}", page["meta"].get("id", ""))):
        problems.append(("malformed", "a followed page that breaks the rules of §10.2 Successors"))
    if j > 0:
        previous = book.value(2 * (j - 1))
        if previous is not None and page["previous"] != previous:
            problems.append(("previous", f"head.previous is not the leaf hash of page {j - 1} (§10.2)"))
    return problems


def check_copy(book, j, page):
    where = f"{book.label} page {j}"
    if page["type"] != COPY:
        fail(f"{where}: a compiled book holds only copy pages (§10.2), this is type {page['type']}")
    try:
        original, length, root, signature, nodes = decode_copy_evidence(page["data"])
    except Malformed as error:
        fail(f"{where}: copy evidence: {error}")
    original_book, original_index, page_hash = page["refs"][0]
    if leaf_hash(original) != page_hash:
        fail(f"{where}: the original's leaf hash is not refs[0].pageHash (§10.2)")
    if not verify_proof(original_book, original_index, original, length, root, signature, nodes):
        fail(f"{where}: the copy's proof or signature does not verify (§10.2)")
    inner = decode_page(original)
    if inner["book"] != original_book or inner["index"] != original_index:
        fail(f"{where}: the original's head does not name refs[0]")
    # What `bookswarm task compile` writes (§10.2): a copy of a chat or a file keeps its time,
    # and meta `author` and `task` name the original's author and task in hex.
    if inner["type"] not in (CHAT, FILE) or page["time"] != inner["time"] or page["meta"].get("author") != inner["author"].hex() \
            or not re.fullmatch(HEX32, page["meta"].get("task", "")):
        fail(f"{where}: a copy whose time or meta `author`/`task` are not the original's (§10.2)")


def task_log(entries, decoded, me, counts, seed):
    """§10.3 the log (its chat, join, file and successor pages), the display names of §10.2,
    each file put together from its parts and checked (§10.2 Files), and each successor's
    invite sealed to this vault opened with its key and matched with the `followed` page of
    its journal (§10.2 Successors)."""
    title = None
    followed = {}  # (author, successor page id) → invite, from the journal's `followed` pages
    offers = []  # (author, successor page id, sealed invite) in books written for this vault
    chats = {}  # (type, author, id) → (rank, page, book, index)
    names = {}  # author → (time, generation, index, name)
    parts = {}  # (author, file id) → {part: [(rank, index, book id, data)]}
    withdrawn = set()  # (author, file id) of the files their authors withdrew (§10.2)
    for book, kind in entries:
        _, author, reader, task, generation = kind
        journal = author == reader
        for j in sorted(book.pages):
            page = decoded.get((book.number, j))
            if page is None:  # malformed, hidden
                continue
            if page["type"] == TASK and journal and "title" in page["meta"] and title is None:
                title = page["meta"]["title"]
            if page["type"] == TITLE and title is None:
                title = page["data"].decode("utf-8", errors="replace")
            if page["type"] == NAME:
                name = valid_name(page["data"])
                candidate = (page["time"], generation, j, name)
                if name is not None and (author not in names or candidate[:3] > names[author][:3]):
                    names[author] = candidate
            # The journal's copy wins, then the copy in the book of the least reader id, then
            # of the least generation, then the lower index (§10.3; a book's pages are read in
            # index order, so of two copies in one book the first is kept).
            rank = (not journal, reader, generation)
            if page["type"] == CHUNK:
                file_id, part = chunk_of(page)
                parts.setdefault((author, file_id), {}).setdefault(part, []).append((rank, j, book.key, page["data"]))
                continue
            if page["type"] == FOLLOWED:
                followed[(page["data"][:32], page["meta"]["id"])] = page["data"][32:]
                continue
            if page["type"] == WITHDRAW:  # the author's own file only: the key holds its author
                withdrawn.add((author, withdrawn_file_of(page)))
                continue
            if page["type"] == SUCCESSOR and reader == me and author != me:
                invite = successor_of(page, author, reader)[2]
                if invite:
                    offers.append((author, page["meta"]["id"], invite))
            if page["type"] not in (CHAT, JOIN, FILE, SUCCESSOR):
                continue
            message_id = page["meta"].get("id", f"{book.key.hex()[:16]}:{j}")
            key = (page["type"], author, message_id)  # a chat, a join, a file and a successor are never one entry
            if key in chats and chats[key][0] <= rank:
                continue
            chats[key] = (rank, page, book, j)
    log = []
    for (type_, author, message_id), (rank, page, book, j) in chats.items():
        entry = {"author": author.hex(), "id": message_id, "time": page["time"], "book": book.key.hex(), "index": j}
        if type_ == JOIN:  # §10.7: "kind" on a join and a file only, a join's text ""
            entry["kind"] = "join"
            entry["text"] = ""
        elif type_ == SUCCESSOR:
            without, with_, _ = successor_of(page, author, rank[1])
            entry["kind"], entry["text"] = "successor", ""
            entry["without"], entry["with"] = [p.hex() for p in without], [p.hex() for p in with_]
            # §10.7: the display names of the members it names, those known here only.
            named = {p.hex(): names[p][3] for p in without + with_ if p in names}
            if named:
                entry["names"] = named
        elif type_ == FILE:
            file_id, file, caption = file_manifest(page)
            entry["kind"], entry["text"], entry["file"] = "file", caption, file
            intact = check_file(file, parts.get((author, file_id), {}), book.key, counts)
            if book.writable and not intact:
                # The vault's own file, read from the book it wrote (its journal): all there.
                fail(f"{book.label} page {j}: a file this vault attached is not whole and intact (§10.2 Files)")
            if (author, file_id) in withdrawn:  # §10.7: no file, no caption
                entry["withdrawn"], entry["text"] = True, ""
                del entry["file"]
        else:
            entry["text"] = page["data"].decode("utf-8")
        if author in names:
            entry["name"] = names[author][3]
        log.append((type_, entry))
    # (time, author id, index, id, type): the page type breaks a full tie, a chat first.
    log.sort(key=lambda te: (te[1]["time"], te[1]["author"], te[1]["index"], te[1]["id"], te[0]))
    # §10.2 Successors: the invite sealed to this vault opens with the X25519 form of its key
    # and names a task its author created; one followed names the same task.
    private = nacl.signing.SigningKey(seed).to_curve25519_private_key()
    for author, page_id, sealed in offers:
        try:
            invite = nacl.public.SealedBox(private).decrypt(sealed)
        except nacl.exceptions.CryptoError:
            continue
        if len(invite) != 48 or invite[:32] != author:
            fail(f"a successor invite from {author.hex()[:8]} that does not name a task of its author (§10.2)")
        counts["successor invites opened"] += 1
        if (author, page_id) in followed:
            if followed[(author, page_id)] != invite:
                fail(f"a followed page whose invite is not the successor's (§10.2)")
            counts["successors followed"] += 1
    return [entry for _, entry in log], title


def check_file(file, held, entry_book, counts):
    """§10.2 Files: part p is a chunk of the author with the file's id and `part` = p — the one in
    the entry's own book, else the first in the log's order of copies. Whole: every part held,
    their lengths adding up to `size`; intact: their BLAKE2b-256 is `hash`."""
    counts["files"] += 1
    chosen = []
    for p in range(file["parts"]) if len(held) >= file["parts"] else []:
        if p not in held:
            return False
        chosen.append(min(held[p], key=lambda c: (c[2] != entry_book, c[0], c[1]))[3])
    if len(chosen) != file["parts"] or sum(map(len, chosen)) != file["size"]:
        return False
    counts["files whole"] += 1
    if blake2b(b"".join(chosen)).hex() != file["hash"]:
        return False
    counts["files intact"] += 1
    return True


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("vault", help="a vault directory (§10.6), or with --store a books.sqlite file")
    parser.add_argument("--task", help="task id (32 hex digits): print only its entries")
    parser.add_argument("--store", action="store_true", help="check one store file only (§3, §4), no messenger")
    parser.add_argument("--master-secret", help="with --store: the store's master secret (64 hex digits), "
                                                "to check the keys of its writable books (§3.7)")
    args = parser.parse_args()
    try:
        if args.store:
            lines, counts = [], new_counts()
            master = bytes.fromhex(args.master_secret) if args.master_secret else None
            check_store(args.vault, master, counts)
        else:
            lines, counts = read_vault(args.vault, args.task.lower() if args.task else None)
    except Mismatch as error:
        print(f"mismatch: {error}", file=sys.stderr)
        return 1
    except (sqlite3.Error, OSError) as error:
        print(f"mismatch: cannot read the vault: {error}", file=sys.stderr)
        return 1
    for line in lines:
        print(json.dumps(line, sort_keys=True, ensure_ascii=False, separators=(",", ":")))
    print("checked: " + json.dumps(counts, sort_keys=True), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
