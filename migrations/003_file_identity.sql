-- kafka-node schema, version 3: the file's identity.
-- A random id drawn when the file is made. A replicated node says which file it answers from,
-- and lin-kv records the file of each replica eligible to lead: a node that lost its disk
-- starts on a new file, with a new id, so it can never pass for the replica that held the
-- acknowledged messages, however many times it restarts.

CREATE TABLE file_identity (
    file_id TEXT NOT NULL
);

INSERT INTO file_identity (file_id) VALUES (lower(hex(randomblob(8))));
