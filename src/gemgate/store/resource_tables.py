"""Tables of the stateful Gemini resources: files, cached contents, batches (migration 0008).

Every resource row names the key that owns it (``key_id``); its public id is random and
unguessable. What an upstream holds for one of ours is a *copy* row naming the holder
(``{provider}/{upstream key label}``: files and caches belong to the upstream project of
the key that created them) and the upstream's own name for it, so any replica can serve
any resource.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
)

from gemgate.store.tables import metadata

# A file: its bytes live in the content store under the file's id.
gemini_files = Table(
    "gemini_files",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("key_id", Integer, nullable=False),
    Column("display_name", String(512), nullable=True),
    Column("mime_type", String(255), nullable=False),
    Column("size_bytes", BigInteger, nullable=False),  # as declared at the upload's start
    Column("received_bytes", BigInteger, nullable=False, default=0),
    Column("sha256", String(64), nullable=True),  # hex, once the upload is complete
    Column("state", String(16), nullable=False),  # UPLOADING | ACTIVE | FAILED
    Column("source", String(16), nullable=False),  # UPLOADED | GENERATED
    Column("upload_hash", String(64), nullable=True, unique=True),  # SHA-256 of the upload id
    Column("upload_expires_at", DateTime(timezone=True), nullable=True),
    Column("modality", String(16), nullable=True),  # TEXT | IMAGE | AUDIO | VIDEO | DOCUMENT
    Column("tokens", BigInteger, nullable=True),  # by Google's media rules
    Column("token_bound", BigInteger, nullable=True),  # an upper bound for any tokenizer
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
)
Index("ix_gemini_files_key_created", gemini_files.c.key_id, gemini_files.c.created_at)
Index("ix_gemini_files_expires", gemini_files.c.expires_at)

# The bytes of files, in pieces, when the content store is the database.
file_chunks = Table(
    "file_chunks",
    metadata,
    Column("file_id", String(40), primary_key=True),
    Column("start", BigInteger, primary_key=True),  # byte offset of the piece in the file
    Column("data", LargeBinary, nullable=False),
)

# A gateway file uploaded to an upstream project.
file_copies = Table(
    "file_copies",
    metadata,
    Column("file_id", String(40), primary_key=True),
    Column("holder", String(300), primary_key=True),  # "{provider}/{upstream key label}"
    Column("upstream_name", String(200), nullable=False),  # "files/..."
    Column("upstream_uri", String(1000), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
)

# A cached content; the gateway keeps its contents, so it can be sent anywhere.
cached_contents = Table(
    "cached_contents",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("key_id", Integer, nullable=False),
    Column("model", String(200), nullable=False),  # the public model id
    Column("display_name", String(512), nullable=True),
    Column("body", Text, nullable=False),  # JSON: contents, systemInstruction, tools, toolConfig
    Column("tokens", BigInteger, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("billed_until", DateTime(timezone=True), nullable=False),  # storage billed up to
    Column("deleted_at", DateTime(timezone=True), nullable=True),
)
Index("ix_cached_contents_key_created", cached_contents.c.key_id, cached_contents.c.created_at)

cache_copies = Table(
    "cache_copies",
    metadata,
    Column("cache_id", String(40), primary_key=True),
    Column("holder", String(300), primary_key=True),
    Column("channel", String(300), nullable=False),  # the channel label it was made for
    Column("upstream_name", String(200), nullable=False),  # "cachedContents/..."
    Column("expires_at", DateTime(timezone=True), nullable=False),
)

# A batch: run upstream (``upstream_name`` set) or by the gateway itself, item by item.
batches = Table(
    "batches",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("key_id", Integer, nullable=False),
    Column("kind", String(16), nullable=False),  # generate | embed
    Column("model", String(200), nullable=False),  # the public model id
    Column("display_name", String(512), nullable=True),
    Column("state", String(32), nullable=False),  # BATCH_STATE_*
    Column("input_file", String(40), nullable=True),  # gateway file id of a JSONL input
    Column("output_file", String(40), nullable=True),  # gateway file id of the responses
    Column("item_count", Integer, nullable=False),
    Column("succeeded", Integer, nullable=False, default=0),
    Column("failed", Integer, nullable=False, default=0),
    Column("reserved_nanos", BigInteger, nullable=False, default=0),  # worst case at create
    Column("channel", String(300), nullable=True),  # upstream runs: the channel label
    Column("holder", String(300), nullable=True),
    Column("upstream_name", String(200), nullable=True),  # "batches/..."
    Column("lease_owner", String(40), nullable=True),
    Column("lease_until", DateTime(timezone=True), nullable=True),
    Column("error", Text, nullable=True),  # JSON google.rpc.Status of a failed batch
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("end_time", DateTime(timezone=True), nullable=True),
    Column("expires_at", DateTime(timezone=True), nullable=False),
)
Index("ix_batches_key_created", batches.c.key_id, batches.c.created_at)
Index("ix_batches_state", batches.c.state)

batch_items = Table(
    "batch_items",
    metadata,
    Column("batch_id", String(40), primary_key=True),
    Column("idx", Integer, primary_key=True),
    Column("item_key", String(512), nullable=True),  # the JSONL line's "key"
    Column("request", Text, nullable=False),  # JSON request (and metadata)
    Column("response", Text, nullable=True),  # JSON response, once done
    Column("error", Text, nullable=True),  # JSON google.rpc.Status, when it failed
    Column("tries", Integer, nullable=False, default=0),
)
