-- kafka-node schema, version 1.
-- Every message of every key, and per key the next offset to hand out and the
-- highest committed offset. Offsets are dense per key and start at 0.

-- Marks the file as a kafka-node log ('KafN'), so another program's database is refused.
PRAGMA application_id = 1264674382;

CREATE TABLE log_keys (
    key              TEXT    PRIMARY KEY NOT NULL,
    next_offset      INTEGER NOT NULL DEFAULT 0 CHECK (next_offset >= 0),
    committed_offset INTEGER CHECK (committed_offset >= 0)
) WITHOUT ROWID;

CREATE TABLE messages (
    key        TEXT    NOT NULL,
    log_offset INTEGER NOT NULL CHECK (log_offset >= 0),
    msg        TEXT    NOT NULL,  -- the message exactly as sent, as JSON text
    PRIMARY KEY (key, log_offset)
) WITHOUT ROWID;

-- One row per message, oldest first within a key: SELECT * FROM key_log WHERE key = '7';
CREATE VIEW key_log AS
SELECT key, log_offset, json_type(msg) AS msg_type, msg
FROM messages;

-- One row per key: how many messages, the latest offset, what the consumer committed,
-- and how many messages are past the committed offset.
CREATE VIEW key_summary AS
SELECT key,
       next_offset                                   AS messages,
       CASE WHEN next_offset > 0 THEN next_offset - 1 END AS latest_offset,
       committed_offset,
       max(0, next_offset - 1 - coalesce(committed_offset, -1)) AS lag
FROM log_keys;
