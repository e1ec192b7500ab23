"""The book layer (§3) and the disk format (§4) for bookswarm_reader.py, from PROTOCOL.md alone.

§1 and §3.3 hashes (BLAKE2b), §3.2 the flat tree, §3.4 signed roots, §3.5 proofs (the evidence
of a copy page, §10.2), §3.6 fork proofs and §3.7 a named book's key; then §4, the store: one
books.sqlite (schema versions 1 to 3, §4.2, §4.9, §4.10) and its page file books.pages (§4.10)
opened read-only, and every book in it checked — its pages, their tree nodes (§4.4) recomputed,
its signed roots (§4.5) verified and recomputed, every held page tied to a signed root, and with
the master secret the keys of the books it writes (§3.7). Any disagreement raises Mismatch.

A module, not a script: bookswarm_reader.py (§10: messenger pages, the vault, tasks; the command
line) imports from it and re-exports what bookswarm_craft.py uses as `r.NAME`. Nothing of
Bookswarm's own code is used: Python's sqlite3 and hashlib (BLAKE2b) and PyNaCl (Ed25519).
"""
import fcntl
import hashlib
import os
import sqlite3

import nacl.exceptions
import nacl.signing


class Mismatch(Exception):
    """The store disagrees with PROTOCOL.md."""


def fail(message):
    raise Mismatch(message)


# ---------------------------------------------------------------- §1, §3.3 hashes

def blake2b(data, size=32, key=b""):
    return hashlib.blake2b(data, digest_size=size, key=key).digest()


def u64(n):
    return n.to_bytes(8, "little")


def leaf_hash(page):
    return blake2b(b"\x00" + u64(len(page)) + page)


def parent_hash(left, right):
    return blake2b(b"\x01" + left + right)


def root_hash(peaks):
    """peaks: [(flat index, hash)], left to right."""
    return blake2b(b"\x02" + b"".join(u64(i) + h for i, h in peaks))


# ---------------------------------------------------------------- §3.2 flat tree

def depth(k):
    d = 0
    while k & 1:
        k >>= 1
        d += 1
    return d


def offset(k):
    return k >> (depth(k) + 1)


def flat_index(d, o):
    return (o << (d + 1)) + (1 << d) - 1


def children(k):
    d = depth(k)
    half = 1 << (d - 1)
    return k - half, k + half


def parent_of(k):
    d = depth(k)
    return flat_index(d + 1, offset(k) >> 1)


def sibling_of(k):
    d = depth(k)
    return flat_index(d, offset(k) ^ 1)


def pages_of(k):
    """The pages node k covers: range(first, last + 1)."""
    d, o = depth(k), offset(k)
    return range(o << d, (o + 1) << d)


def peaks(n):
    """Flat indices of the peaks of a tree of n pages, left to right (§3.2)."""
    result, start = [], 0
    for d in range(n.bit_length() - 1, -1, -1):
        if n & (1 << d):
            result.append(flat_index(d, start >> d))
            start += 1 << d
    return result


def nodes_completed_by(j):
    """The nodes page j completes, bottom up: its leaf, then 1 parent per trailing 1 bit."""
    return [flat_index(d, j >> d) for d in range(depth(j) + 1)]


assert peaks(11) == [7, 17, 20]  # §3.2's example


# ---------------------------------------------------------------- §3.4 signed roots

BOOK_TAG = b"bookswarm/book/v1"
assert len(BOOK_TAG) == 17


def signature_ok(book_id, length, root, signature):
    signable = BOOK_TAG + book_id + u64(length) + root
    assert len(signable) == 89
    try:
        nacl.signing.VerifyKey(book_id).verify(signable, signature)
        return True
    except (nacl.exceptions.BadSignatureError, ValueError, nacl.exceptions.CryptoError):
        return False


# ---------------------------------------------------------------- §3.5 proofs (copy evidence)

def verify_proof(book_id, page_index, page, length, root, signature, nodes):
    """The proof of one page against a signed root, upgrading from 0 (§3.5, §10.2)."""
    if not (page_index < length and length >= 1):
        return False
    entries = list(nodes)

    def visit(k):
        span = pages_of(k)
        if span[0] <= page_index <= span[-1]:
            if depth(k) == 0:
                return leaf_hash(page)
            left, right = children(k)
            return parent_hash(visit(left), visit(right))
        if not entries or entries[0][0] != k:
            raise ValueError(f"proof entry for node {k} missing or out of place")
        return entries.pop(0)[1]

    try:
        computed = [(p, visit(p)) for p in peaks(length)]
    except ValueError:
        return False
    if entries:
        return False
    return root_hash(computed) == root and signature_ok(book_id, length, root, signature)


# ---------------------------------------------------------------- §3.7 keys

def book_public_key(master, name):
    seed = blake2b(b"bookswarm/book-key/v1" + b"\x00" + name.encode("utf-8"), key=master)
    return bytes(nacl.signing.SigningKey(seed).verify_key)


# ---------------------------------------------------------------- §4 the store

class Book:
    def __init__(self, number, key, name, writable):
        self.number, self.key, self.name, self.writable = number, key, name, writable
        self.pages = {}  # index → data
        self.stored = {}  # flat index → hash, from page rows and the node table
        self.roots = {}  # length → (hash, signature, where)
        self.values = {}  # flat index → hash, as value() found it
        self.verified_pages = set()  # pages tied to a signed root by recomputation

    @property
    def label(self):
        return f"book {self.number} ({self.name or self.key.hex()[:16]})"

    def store_node(self, k, h, where):
        if len(h) != 32:
            fail(f"{self.label}: node {k} from {where} is {len(h)} bytes, not 32")
        if k in self.stored and self.stored[k] != h:
            fail(f"{self.label}: node {k} differs between page row and node table (§4.4)")
        self.stored[k] = h

    def value(self, k):
        """Node k's hash, recomputed from pages and children wherever possible; else as stored.
        Every stored node that can be recomputed must equal its recomputation."""
        if k in self.values:
            return self.values[k]
        h = None
        if depth(k) == 0:
            if k // 2 in self.pages:
                h = leaf_hash(self.pages[k // 2])
        else:
            left, right = children(k)
            lv, rv = self.value(left), self.value(right)
            if lv is not None and rv is not None:
                h = parent_hash(lv, rv)
        if h is not None and k in self.stored and self.stored[k] != h:
            fail(f"{self.label}: stored node {k} is not the hash of its "
                 + ("page (§3.3 leaf)" if depth(k) == 0 else "children (§3.3 parent)"))
        if h is None:
            h = self.stored.get(k)
        self.values[k] = h
        return h


def open_store(path):
    """The store, read-only. §4.1: a daemon holds an exclusive flock on store/books.lock while the
    store is open; a closed store has no WAL left (its last connection copied it back). The file
    stays in WAL mode, so even a `mode=ro` connection would create `-shm` and `-wal` beside it:
    with no WAL present the file is opened `immutable=1` instead, which writes nothing."""
    if not os.path.exists(path):
        fail(f"{path}: no store")
    lock = os.path.join(os.path.dirname(path), "books.lock")
    if os.path.exists(lock):
        fd = os.open(lock, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            fcntl.flock(fd, fcntl.LOCK_UN)
        except BlockingIOError:
            fail(f"{path}: the store is open (books.lock is locked): stop the daemon first")
        finally:
            os.close(fd)
    wal = os.path.exists(path + "-wal") and os.path.getsize(path + "-wal") > 0
    db = sqlite3.connect(f"file:{path}?mode=ro" + ("" if wal else "&immutable=1"), uri=True)
    application_id = db.execute("PRAGMA application_id").fetchone()[0]
    if application_id != 0x426F6F6B:
        fail(f"{path}: application_id is {application_id:#x}, not 0x426F6F6B (§4.1)")
    version = db.execute("PRAGMA user_version").fetchone()[0]
    if version not in (1, 2, 3):
        fail(f"{path}: schema version {version}; this reader knows versions 1 to 3 (§4.2, §4.9, §4.10)")
    return db


def load_books(db):
    books = []
    for number, key, name, writable in db.execute("SELECT id, CAST(key AS BLOB), name, writable FROM book ORDER BY id"):
        if not 1 <= number < 2**23:
            fail(f"book row {number}: local number outside 1 … 2^23 − 1 (§4.2)")
        if not isinstance(key, bytes) or len(key) != 32:
            fail(f"book row {number}: key is not a 32-byte blob")
        if writable not in (0, 1):
            fail(f"book row {number}: writable is {writable!r}")
        if name is not None and not 1 <= len(name.encode("utf-8")) <= 255:
            fail(f"book row {number}: name of {len(name.encode())} bytes, not 1–255 (§3.7)")
        if writable and name is None:
            fail(f"book row {number}: writable without a name (§4.1)")
        books.append(Book(number, key, name, bool(writable)))
    return books


def check_book(db, book, counts):
    low, high = book.number << 40, (book.number + 1) << 40
    # §4.9 (version 2): a page of 64 KiB or more keeps its head in `data` and its tail in `blob`.
    version = db.execute("PRAGMA user_version").fetchone()[0]
    shared, filed = version >= 2, version >= 3
    rows = db.execute("SELECT page.key, typeof(page.tree) || typeof(page.data) || typeof(page.root), "
                      "CAST(page.tree AS BLOB), CAST(page.data AS BLOB), CAST(page.root AS BLOB), "
                      + ("page.blob, CAST(blob.hash AS BLOB), CAST(blob.data AS BLOB), " if shared else "NULL, NULL, NULL, ")
                      + ("page.at, page.size FROM page " if filed else "NULL, NULL FROM page ")
                      + ("LEFT JOIN blob ON blob.id = page.blob " if shared else "")
                      + "WHERE page.key >= ? AND page.key < ? ORDER BY page.key", (low, high)).fetchall()
    page_roots = []
    pages_path = os.path.join(os.path.dirname(db.execute("PRAGMA database_list").fetchone()[2]), "books.pages")
    pages_file = open(pages_path, "rb") if filed and os.path.exists(pages_path) else None
    for key, types, tree, data, root, blob, blob_hash, blob_data, at, size in rows:
        j = key & (2**40 - 1)
        # §4.10 (version 3): a reader's page of 512 bytes to 64 KiB keeps its bytes in books.pages.
        in_file = at is not None
        if in_file:
            if pages_file is None or data != b"" or blob is not None or not 512 <= size < 65536:
                fail(f"{book.label} page {j}: names {size} bytes at {at} of books.pages, with data of {len(data)} (§4.10)")
            pages_file.seek(at)
            data = pages_file.read(size)
            if len(data) != size:
                fail(f"{book.label} page {j}: books.pages ends before its {size} bytes at {at} (§4.10)")
            counts["pages in the page file"] += 1
        if types not in ("blobblobblob", "blobblobnull"):
            fail(f"{book.label} page {j}: tree, data, root are {types}, not blobs (§4.2)")
        if blob is not None:
            if blob_data is None:
                fail(f"{book.label} page {j}: names blob {blob}, which is not there (§4.9)")
            if len(data) >= 4096 or len(blob_data) % 4096 != 0 or len(data) + len(blob_data) < 65536:
                fail(f"{book.label} page {j}: a head of {len(data)} bytes and a blob of {len(blob_data)} bytes "
                     "are not a page of 64 KiB or more split 4 KiB-aligned from its end (§4.9)")
            if blob_hash != blake2b(blob_data):
                fail(f"{book.label} page {j}: blob {blob} is not stored under the hash of its bytes (§4.9)")
            data = data + blob_data
            counts["pages stored once (blob)"] += 1
        if len(data) > 4 * 1024 * 1024:
            fail(f"{book.label} page {j}: over the 4 MiB page limit (§3.1)")
        book.pages[j] = data
        # §4.4: the leaf only for a page longer than 1024 bytes (or in the page file, §4.10),
        # then the parents it completes.
        completed = nodes_completed_by(j)
        leaf = len(data) > 1024 or in_file
        slots = completed if leaf else completed[1:]
        if len(tree) != 32 * len(slots):
            fail(f"{book.label} page {j} ({len(data)} bytes): tree column of {len(tree)} bytes, "
                 f"expected {32 * len(slots)} (§4.4: {'leaf + ' if leaf else ''}"
                 f"{len(completed) - 1} parents)")
        for slot, k in enumerate(slots):
            book.store_node(k, tree[32 * slot:32 * slot + 32], f"page row {j}")
        counts["tree bytes"] += len(tree)
        if len(data) > 1024:
            counts["pages > 1024 bytes"] += 1
        if len(data) in (1024, 1025):
            counts[f"pages of {len(data)} bytes"] += 1
        if root is not None:
            if not isinstance(root, bytes) or len(root) != 96:
                fail(f"{book.label} page {j}: root column is not root hash (32) ‖ signature (64) (§4.2)")
            page_roots.append((j + 1, root[:32], root[32:]))
    if pages_file is not None:
        pages_file.close()
    for idx, kind, h in db.execute("SELECT idx, typeof(hash), CAST(hash AS BLOB) FROM node WHERE book = ? ORDER BY idx",
                                   (book.number,)):
        if not 0 <= idx < 2**41 or kind != "blob":
            fail(f"{book.label}: node table row {idx} out of range or not a blob (§4.2)")
        book.store_node(idx, h, "node table")
        counts["node rows"] += 1
    table_roots = db.execute("SELECT length, CAST(hash AS BLOB), CAST(signature AS BLOB) FROM root WHERE book = ? "
                             "AND typeof(hash) = 'blob' AND typeof(signature) = 'blob' ORDER BY length",
                             (book.number,)).fetchall()
    if len(table_roots) != db.execute("SELECT count(*) FROM root WHERE book = ?", (book.number,)).fetchone()[0]:
        fail(f"{book.label}: a root row whose hash or signature is not a blob (§4.2)")
    for length, h, sig, where in [(l, h, s, "page row") for l, h, s in page_roots] + \
                                  [(l, h, s, "root table") for l, h, s in table_roots]:
        if not (1 <= length <= 2**40) or len(h) != 32 or len(sig) != 64:
            fail(f"{book.label}: signed root of length {length} in the {where} has a bad shape (§4.2)")
        if length in book.roots and book.roots[length][0] != h:
            fail(f"{book.label}: two different roots at length {length} (a fork outside the fork table)")
        if not signature_ok(book.key, length, h, sig):
            fail(f"{book.label}: the signed root of length {length} ({where}) does not verify (§3.4)")
        book.roots[length] = (h, sig, where)
        counts["signed roots"] += 1
    # Every stored node that can be recomputed from pages and children equals it.
    for k in sorted(book.stored):
        book.value(k)
    for j in book.pages:
        book.value(2 * j)
    # Every signed root whose peaks are all known equals the root of those peaks (§3.3).
    checked_roots = []
    for length, (h, _, where) in sorted(book.roots.items()):
        values = [(p, book.value(p)) for p in peaks(length)]
        if all(v is not None for _, v in values):
            if root_hash(values) != h:
                fail(f"{book.label}: the signed root of length {length} ({where}) is not the root of the "
                     f"stored tree (§3.3)")
            checked_roots.append(length)
            counts["roots recomputed"] += 1
    latest = max(book.roots) if book.roots else 0
    # §4.5: the latest signed root is the longer of the newest root row and the last page's column.
    if book.pages and max(book.pages) >= latest:
        fail(f"{book.label}: page {max(book.pages)} held beyond the verified length {latest}")
    # Every held page is tied by recomputation to a signed root that verified.
    for j in sorted(book.pages):
        for length in checked_roots:
            if length <= j:
                continue
            peak = next(p for p in peaks(length) if j in pages_of(p))
            k, ok = 2 * j, True
            while k != peak:
                if book.value(sibling_of(k)) is None:
                    ok = False
                    break
                k = parent_of(k)
            if ok:
                book.verified_pages.add(j)
                break
        else:
            fail(f"{book.label}: page {j} is tied to no signed root by the stored tree")
    if book.writable:
        # An author's book: every page 0 … n−1, and its last page row carries the latest root.
        n = len(book.pages)
        if n and (sorted(book.pages) != list(range(n))):
            fail(f"{book.label}: an author's book with gaps")
        if n and (n not in book.roots or book.roots[n][2] != "page row"):
            fail(f"{book.label}: the author's last page row carries no signed root (§4.5)")
        if n == 0 and book.roots:
            fail(f"{book.label}: signed roots without pages")
    forks = db.execute("SELECT first_length, first_hash, first_signature, second_length, second_hash, "
                       "second_signature FROM fork WHERE book = ?", (book.number,)).fetchall()
    for fl, fh, fs, sl, sh, ss in forks:
        if not (signature_ok(book.key, fl, fh, fs) and signature_ok(book.key, sl, sh, ss)):
            fail(f"{book.label}: a fork proof whose signatures do not both verify (§3.6)")
    book.forked = bool(forks)
    book.length = latest
    counts["books"] += 1
    counts["pages"] += len(book.pages)


# ---------------------------------------------------------------- §3, §4 one store file

def new_counts():
    """The counts of the `checked:` line, the messenger's (bookswarm_reader.py) too: the same
    keys whether a vault or one store file is checked."""
    return {k: 0 for k in ["books", "pages", "pages > 1024 bytes", "tree bytes", "node rows", "signed roots",
                           "roots recomputed", "messenger pages", "copies verified", "keys derived",
                           "pages of 1024 bytes", "pages of 1025 bytes", "malformed pages",
                           "wrong previous (shown)", "books given up", "files", "files whole", "files intact",
                           "pages stored once (blob)", "blob rows", "successor invites opened", "successors followed",
                           "pages in the page file"]}


def check_store(path, master, counts):
    """§3 and §4 for every book of one store file; with the master secret, §3.7's keys too."""
    db = open_store(path)
    books = load_books(db)
    for book in books:
        check_book(db, book, counts)
        if book.writable and master is not None:
            if book_public_key(master, book.name) != book.key:
                fail(f"{book.label}: its key is not the one the master secret derives for its name (§3.7)")
            counts["keys derived"] += 1
    if db.execute("PRAGMA user_version").fetchone()[0] >= 2:
        counts["blob rows"] += db.execute("SELECT count(*) FROM blob").fetchone()[0]
    db.close()
    return books
