-- Attachments on cases (issue 24): photos before and after the work (反馈), the inspector's
-- photo on site (核查), and other evidence. Kept in the database with the case, limited in
-- size and type by the API (policy centre.attachment_max_kib; JPEG, PNG, WebP, PDF checked
-- by their first bytes), and removed with the case.
CREATE TABLE case_attachments (
    id                 bigserial PRIMARY KEY,
    case_id            bigint NOT NULL REFERENCES cases (id) ON DELETE CASCADE,
    kind               text NOT NULL CHECK (kind IN ('before', 'after', 'verify', 'evidence')),
    content_type       text NOT NULL,
    filename           text NOT NULL DEFAULT '',
    size_bytes         integer NOT NULL CHECK (size_bytes > 0),
    sha256             text NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    data               bytea NOT NULL,
    uploaded_by        text,
    actor_role         text NOT NULL,
    uploaded_at        timestamptz NOT NULL
);
CREATE INDEX case_attachments_case_idx ON case_attachments (case_id, uploaded_at);
