//! The PostgreSQL backend: every node of a deployment talks to one database.
//!
//! Plain SQL in transactions, one function that stores blobs, and fenced write functions:
//!
//! ```sql
//! cowheap_blobs      (digest bytea, sha256 bytea, len bigint, data bytea,
//!                     PK (digest, sha256))                  -- sha256 = sha256(data), by the server
//! cowheap_bases      (fingerprint bytea PK, (blob, blob_sha256) -> cowheap_blobs)
//! cowheap_principals (name text PK, secret bytea)          -- BLAKE3 of the secret
//! cowheap_tenants    (name text PK, base bytea -> cowheap_bases,
//!                     (state, state_sha256) -> cowheap_blobs,
//!                     owner text, epoch bigint, lease_expiry bigint)
//! cowheap_grants     (tenant text -> cowheap_tenants, principal text, PK (tenant, principal))
//! cowheap_committers (base bytea -> cowheap_bases, principal text, PK (base, principal))
//! cowheap_versions   (origin bytea -> cowheap_bases, number bigint >= 1,
//!                     (layer, layer_sha256) -> cowheap_blobs, committed_by text,
//!                     PK (origin, number))
//! cowheap_segments   (tenant text -> cowheap_tenants, id bigint,
//!                     (blob, blob_sha256) -> cowheap_blobs, PK (tenant, id))
//! cowheap_put_blob(digest bytea, data bytea) -> bytea    -- SECURITY DEFINER, returns sha256
//! cowheap_write_state(tenant, node, epoch, digest, data, release) -> bytea  -- the same,
//! cowheap_put_segment(tenant, node, epoch, id, digest, data) -> bytea      -- fenced, see
//! cowheap_remove_segment(tenant, node, epoch, id)                         -- FENCED_FUNCTIONS
//! cowheap_put_version(origin, number, digest, data) -> bytea  -- the same, VERSION_FUNCTION
//! cowheap_put_version_fenced(tenant, node, epoch, origin, number, digest, data) -> bytea
//! ```
//!
//! **A segment** of a tenant is a blob named by a `cowheap_segments` row, written in one
//! transaction with the fence check (the record's row locked `FOR UPDATE`) by
//! `cowheap_put_segment`, which checks the fence again and inserts `ON CONFLICT DO NOTHING`
//! so an id is never overwritten; removed the same way by `cowheap_remove_segment`. A principal's
//! role reaches only the rows of the tenants granted to it (row-level security), and reads
//! only the blobs those rows name.
//!
//! **A sweep** ([`Store::sweep_blobs`]) lists the blobs no row names and deletes each in a
//! transaction of its own, if still no row names it. Every row that names a blob holds a
//! foreign key to it, so a write that names one meanwhile makes the delete fail on that key
//! (it is skipped), or, if the delete came first, its own upsert files the blob again.
//!
//! **A version is one transaction**: read the newest number of its history, refuse unless
//! it is the one below, then `cowheap_put_version`, which stores the layer blob and
//! inserts `ON CONFLICT (origin, number) DO NOTHING`. The primary key decides between
//! writers of one number (a second inserter waits for the first and inserts nothing once it
//! commits). A principal's role may not insert versions itself: through the function it
//! writes one only as itself, only into a history whose base names it in
//! `cowheap_committers`, only over an existing version, and only naming the bytes it
//! supplies (proof of possession), so the server keeps the chain gapless and the rights
//! whatever SQL a node sends; versions and their layer blobs are readable by every
//! principal, as bases are. A version fenced by a claim (`Store::put_version_claimed`) is
//! the same transaction with the tenant's row locked `FOR UPDATE` first and the claim
//! checked, through `cowheap_put_version_fenced` (which runs the same fence check and then
//! `cowheap_put_version`), so a claim of the tenant by another node waits for it or fences
//! it. A store made by an earlier release gets the function, and its principals the right
//! to call it, when [`PgStore::init`] runs on it again.
//!
//! A change to a record is `SELECT ... FOR UPDATE` of its row, the same check as the local
//! store's (owner and lease for a claim, epoch and owner for a fenced write), and an
//! `UPDATE`, in one transaction: the row lock makes the claim one atomic step between
//! every node. A fenced write stores the blob and names it in the record in the same
//! transaction, so a node that dies mid-write leaves the record as it was.
//!
//! **Blobs cannot be planted.** A blob's name is the BLAKE3 digest of its bytes, which SQL
//! cannot compute, so the server cannot check a digest a writer claims. Blobs are written
//! only through `cowheap_put_blob`, a `SECURITY DEFINER` function owned by the operator
//! (no role but the operator may insert into or change `cowheap_blobs`): it computes the
//! SHA-256 of the bytes itself (`sha256(bytea)`, built in since PostgreSQL 11) and files the
//! bytes under the pair (claimed digest, SHA-256). Bytes that do not hash to the digest a
//! writer claims land under their own pair, beside the honest row and never in its place:
//! the honest bytes' pair can only ever hold the honest bytes (short of a SHA-256
//! collision). A record and a base name the pair, so a read fetches exactly the row its
//! writer stored, and verifies its BLAKE3 digest as ever. The same check makes repair
//! safe for every writer: a row of the pair whose bytes were damaged is rewritten with the
//! bytes, now proven to be the pair's by the server's own hash.
//!
//! What a PostgreSQL-compatible distributed database needs to serve as well: `bytea`,
//! `sha256(bytea)`, `INSERT ... ON CONFLICT`, `SELECT ... FOR UPDATE`, a `SECURITY
//! DEFINER` function, and transactions that are at least read committed with row locks.
//! Under serializable isolation a transaction may fail with SQLSTATE 40001; the store
//! retries those (and deadlocks, 40P01) a few times.
//!
//! Access: each principal is a database role (`cowheap_<name>`, made by
//! [`Store::add_principal`] with the secret as its password) with row-level security: it
//! sees and updates only the `cowheap_tenants` rows granted to it in `cowheap_grants`, only
//! its own grants and principal row, and only the blobs that are bases or the states of its
//! tenants; it may store blobs through `cowheap_put_blob`, and nothing else (no direct
//! insert, no delete, no grant, no new tenant). **Proof of possession**: it writes its
//! tenants' segment rows and states only through the fenced functions, which take the
//! bytes, so it never names a blob (say another tenant's, whose digest and SHA-256 it
//! learnt) without supplying its bytes in the same call; no direct insert, update or delete
//! of `cowheap_segments`, no direct update of the state columns (it keeps updating the
//! owner, epoch and lease, which is how it claims, but a trigger, `cowheap_claim_moves_on`,
//! refuses any update that takes a tenant's epoch back or names an owner at the epoch
//! already held, so a claim taken over or released stays fenced off whatever SQL its old
//! node sends). The functions check the grant, the claim
//! and write-once themselves, in the transaction, whatever SQL the node sends. Versions
//! likewise: no direct insert of `cowheap_versions`, only `cowheap_put_version` (or its
//! fenced form), which takes the layer's bytes and checks the commit right. A node connects as its principal's role, so
//! the server itself refuses other tenants' rows, whatever SQL the node sends. The store's
//! own checks (the secret's digest at connect, the grant inside each transaction) stay as a
//! second line. The operator is the tables' owner, which row-level security does not
//! restrict. Roles are per cluster: one store per cluster, or distinct principal names
//! across stores; a role of a principal's name that the store did not make is refused
//! ([`StoreError::RoleTaken`]), never taken over. The server must authenticate host logins by password (`scram-sha-256`),
//! as [`crate::PgServer`] sets it up.

use crate::local::{check_fence, check_history, lease_end, take};
use crate::store::{Access, BlobStats, Claim, Store, TenantRecord, VersionRecord, check_layer};
use crate::{
    Clock, Digest, Epoch, Millis, NodeName, PrincipalName, Result, StoreError, TenantName,
    names::{check_principal, check_secret, check_segment_id, stored_name},
};
use cowheap_heap::Fingerprint;
use cowheap_segment::swap::SegmentId;
use postgres::{Client, NoTls, Transaction};
use std::sync::{Arc, Mutex};

/// The condition on a row `b` of `cowheap_blobs` that no row names it: no base, tenant
/// state, version layer or segment.
const UNNAMED: &str = "\
    NOT EXISTS (SELECT 1 FROM cowheap_bases x WHERE x.blob = b.digest AND x.blob_sha256 = b.sha256) \
    AND NOT EXISTS (SELECT 1 FROM cowheap_tenants x WHERE x.state = b.digest AND x.state_sha256 = b.sha256) \
    AND NOT EXISTS (SELECT 1 FROM cowheap_versions x WHERE x.layer = b.digest AND x.layer_sha256 = b.sha256) \
    AND NOT EXISTS (SELECT 1 FROM cowheap_segments x WHERE x.blob = b.digest AND x.blob_sha256 = b.sha256)";

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS cowheap_blobs (
    digest bytea NOT NULL,
    sha256 bytea NOT NULL,
    len bigint NOT NULL,
    data bytea NOT NULL,
    PRIMARY KEY (digest, sha256)
);
CREATE TABLE IF NOT EXISTS cowheap_bases (
    fingerprint bytea PRIMARY KEY,
    blob bytea NOT NULL,
    blob_sha256 bytea NOT NULL,
    FOREIGN KEY (blob, blob_sha256) REFERENCES cowheap_blobs (digest, sha256)
);
CREATE TABLE IF NOT EXISTS cowheap_principals (
    name text PRIMARY KEY,
    secret bytea NOT NULL
);
CREATE TABLE IF NOT EXISTS cowheap_tenants (
    name text PRIMARY KEY,
    base bytea NOT NULL REFERENCES cowheap_bases (fingerprint),
    state bytea,
    state_sha256 bytea,
    owner text,
    epoch bigint NOT NULL,
    lease_expiry bigint NOT NULL,
    CHECK ((state IS NULL) = (state_sha256 IS NULL)),
    FOREIGN KEY (state, state_sha256) REFERENCES cowheap_blobs (digest, sha256)
);
CREATE TABLE IF NOT EXISTS cowheap_grants (
    tenant text NOT NULL REFERENCES cowheap_tenants (name),
    principal text NOT NULL,
    PRIMARY KEY (tenant, principal)
);
CREATE TABLE IF NOT EXISTS cowheap_committers (
    base bytea NOT NULL REFERENCES cowheap_bases (fingerprint),
    principal text NOT NULL,
    PRIMARY KEY (base, principal)
);
CREATE TABLE IF NOT EXISTS cowheap_versions (
    origin bytea NOT NULL REFERENCES cowheap_bases (fingerprint),
    number bigint NOT NULL CHECK (number >= 1),
    layer bytea NOT NULL,
    layer_sha256 bytea NOT NULL,
    committed_by text,
    PRIMARY KEY (origin, number),
    FOREIGN KEY (layer, layer_sha256) REFERENCES cowheap_blobs (digest, sha256)
);
CREATE TABLE IF NOT EXISTS cowheap_segments (
    tenant text NOT NULL REFERENCES cowheap_tenants (name),
    id bigint NOT NULL CHECK (id >= 0),
    blob bytea NOT NULL,
    blob_sha256 bytea NOT NULL,
    PRIMARY KEY (tenant, id),
    FOREIGN KEY (blob, blob_sha256) REFERENCES cowheap_blobs (digest, sha256)
);
ALTER TABLE cowheap_segments ENABLE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS cowheap_granted ON cowheap_segments;
CREATE POLICY cowheap_granted ON cowheap_segments FOR SELECT
    USING (EXISTS (SELECT 1 FROM cowheap_grants g WHERE g.tenant = cowheap_segments.tenant));
ALTER TABLE cowheap_committers ENABLE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS cowheap_self ON cowheap_committers;
CREATE POLICY cowheap_self ON cowheap_committers
    USING ('cowheap_' || principal = current_user::text);
ALTER TABLE cowheap_versions ENABLE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS cowheap_read ON cowheap_versions;
CREATE POLICY cowheap_read ON cowheap_versions FOR SELECT USING (true);
DROP POLICY IF EXISTS cowheap_commit ON cowheap_versions;
CREATE POLICY cowheap_commit ON cowheap_versions FOR INSERT
    WITH CHECK ('cowheap_' || cowheap_versions.committed_by = current_user::text
        AND EXISTS (SELECT 1 FROM cowheap_committers c
                    WHERE c.base = cowheap_versions.origin
                      AND c.principal = cowheap_versions.committed_by)
        AND (cowheap_versions.number = 1
             OR EXISTS (SELECT 1 FROM cowheap_versions p
                        WHERE p.origin = cowheap_versions.origin
                          AND p.number = cowheap_versions.number - 1)));
ALTER TABLE cowheap_grants ENABLE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS cowheap_own ON cowheap_grants;
CREATE POLICY cowheap_own ON cowheap_grants
    USING ('cowheap_' || principal = current_user::text);
ALTER TABLE cowheap_tenants ENABLE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS cowheap_granted ON cowheap_tenants;
CREATE POLICY cowheap_granted ON cowheap_tenants
    USING (EXISTS (SELECT 1 FROM cowheap_grants g WHERE g.tenant = name));
ALTER TABLE cowheap_principals ENABLE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS cowheap_self ON cowheap_principals;
CREATE POLICY cowheap_self ON cowheap_principals
    USING ('cowheap_' || name = current_user::text);
ALTER TABLE cowheap_blobs ENABLE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS cowheap_read ON cowheap_blobs;
CREATE POLICY cowheap_read ON cowheap_blobs FOR SELECT
    USING (EXISTS (SELECT 1 FROM cowheap_bases b
                   WHERE b.blob = cowheap_blobs.digest AND b.blob_sha256 = cowheap_blobs.sha256)
        OR EXISTS (SELECT 1 FROM cowheap_tenants t
                   WHERE t.state = cowheap_blobs.digest AND t.state_sha256 = cowheap_blobs.sha256)
        OR EXISTS (SELECT 1 FROM cowheap_versions v
                   WHERE v.layer = cowheap_blobs.digest AND v.layer_sha256 = cowheap_blobs.sha256)
        OR EXISTS (SELECT 1 FROM cowheap_segments s
                   WHERE s.blob = cowheap_blobs.digest AND s.blob_sha256 = cowheap_blobs.sha256));
DROP POLICY IF EXISTS cowheap_write ON cowheap_blobs;
CREATE OR REPLACE FUNCTION cowheap_claim_moves_on() RETURNS trigger
LANGUAGE plpgsql
AS $body$
BEGIN
    IF NEW.epoch < OLD.epoch
        OR (NEW.epoch = OLD.epoch AND NEW.owner IS NOT NULL
            AND NEW.owner IS DISTINCT FROM OLD.owner) THEN
        RAISE EXCEPTION 'a claim of tenant % moves only on: epoch % owner % after epoch % owner %',
            OLD.name, NEW.epoch, NEW.owner, OLD.epoch, OLD.owner
            USING ERRCODE = '55000';
    END IF;
    RETURN NEW;
END
$body$;
DROP TRIGGER IF EXISTS cowheap_claim_moves_on ON cowheap_tenants;
CREATE TRIGGER cowheap_claim_moves_on BEFORE UPDATE OF owner, epoch ON cowheap_tenants
    FOR EACH ROW EXECUTE FUNCTION cowheap_claim_moves_on();
";

/// The one way to store a blob, made by [`PgStore::init`] in the store's schema (`%1$I`,
/// filled in by the server's `format`) and owned by the operator who runs it. It runs with
/// the owner's rights (`SECURITY DEFINER`) on a fixed `search_path` (the store's schema,
/// then `pg_temp` last, so a caller's temporary tables cannot stand in for the store's),
/// hashes the bytes itself and files them under (digest, their SHA-256): a caller chooses
/// the digest it claims but never the bytes another pair holds. An existing row of the pair
/// whose bytes differ (damaged behind the store's back) is rewritten with these, whose
/// SHA-256 the server has just computed. Returns the SHA-256.
const PUT_BLOB_FUNCTION: &str = "SELECT format($f$
CREATE OR REPLACE FUNCTION %1$I.cowheap_put_blob(p_digest bytea, p_data bytea)
RETURNS bytea
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = %1$I, pg_temp
AS $body$
DECLARE
    h bytea;
BEGIN
    IF p_digest IS NULL OR p_data IS NULL OR length(p_digest) <> 32 THEN
        RAISE EXCEPTION 'cowheap_put_blob: a digest is 32 bytes and the data is not null'
            USING ERRCODE = '22023';
    END IF;
    h := pg_catalog.sha256(p_data);
    INSERT INTO cowheap_blobs AS b (digest, sha256, len, data)
    VALUES (p_digest, h, pg_catalog.length(p_data)::bigint, p_data)
    ON CONFLICT (digest, sha256) DO UPDATE SET len = EXCLUDED.len, data = EXCLUDED.data
        WHERE b.len <> EXCLUDED.len OR b.data <> EXCLUDED.data;
    RETURN h;
END
$body$;
REVOKE ALL ON FUNCTION %1$I.cowheap_put_blob(bytea, bytea) FROM PUBLIC;
$f$, current_schema())";

/// The fenced writes of a tenant's state and segments, made by [`PgStore::init`] beside
/// [`PUT_BLOB_FUNCTION`] and like it owned by the operator, `SECURITY DEFINER` on a fixed
/// `search_path`. No principal's role may insert, delete or change `cowheap_segments` rows
/// or the state columns of `cowheap_tenants` itself: it calls these, which take the bytes
/// (so a caller names only a blob whose bytes it supplies in the same call: proof of
/// possession), file them as `cowheap_put_blob` does, and then, on the tenant's row locked
/// `FOR UPDATE`, check the caller's entitlement (a grant to the session's principal role,
/// or the caller is the operator: a member of the functions' owner), the claim (the
/// record's owner and epoch are the caller's node and epoch) and, for a segment, that its
/// id is free. Refusals: SQLSTATE 42501 (not entitled, also for a tenant that does not
/// exist, so a caller learns nothing of other tenants), 55000 (the claim is stale), 23505
/// (the segment id is taken).
const FENCED_FUNCTIONS: &str = "SELECT format($f$
CREATE OR REPLACE FUNCTION %1$I.cowheap_fence(p_tenant text, p_node text, p_epoch bigint)
RETURNS void
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = %1$I, pg_temp
AS $body$
DECLARE
    r record;
BEGIN
    IF NOT (pg_catalog.pg_has_role(session_user, current_user, 'MEMBER')
            OR EXISTS (SELECT 1 FROM cowheap_grants g
                       WHERE g.tenant = p_tenant AND 'cowheap_' || g.principal = session_user))
    THEN
        RAISE EXCEPTION 'cowheap: not entitled to the tenant' USING ERRCODE = '42501';
    END IF;
    SELECT t.owner, t.epoch INTO r FROM cowheap_tenants t WHERE t.name = p_tenant FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'cowheap: not entitled to the tenant' USING ERRCODE = '42501';
    END IF;
    IF p_node IS NULL OR p_epoch IS NULL OR r.owner IS DISTINCT FROM p_node
       OR r.epoch <> p_epoch THEN
        RAISE EXCEPTION 'cowheap: the claim is stale' USING ERRCODE = '55000';
    END IF;
END
$body$;
REVOKE ALL ON FUNCTION %1$I.cowheap_fence(text, text, bigint) FROM PUBLIC;

CREATE OR REPLACE FUNCTION %1$I.cowheap_write_state(p_tenant text, p_node text,
    p_epoch bigint, p_digest bytea, p_data bytea, p_release boolean)
RETURNS bytea
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = %1$I, pg_temp
AS $body$
DECLARE
    h bytea;
BEGIN
    PERFORM cowheap_fence(p_tenant, p_node, p_epoch);
    h := cowheap_put_blob(p_digest, p_data);
    UPDATE cowheap_tenants
    SET state = p_digest, state_sha256 = h,
        owner = CASE WHEN p_release THEN NULL ELSE owner END,
        lease_expiry = CASE WHEN p_release THEN 0 ELSE lease_expiry END
    WHERE name = p_tenant;
    RETURN h;
END
$body$;
REVOKE ALL ON FUNCTION %1$I.cowheap_write_state(text, text, bigint, bytea, bytea, boolean)
    FROM PUBLIC;

CREATE OR REPLACE FUNCTION %1$I.cowheap_put_segment(p_tenant text, p_node text,
    p_epoch bigint, p_id bigint, p_digest bytea, p_data bytea)
RETURNS bytea
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = %1$I, pg_temp
AS $body$
DECLARE
    h bytea;
BEGIN
    PERFORM cowheap_fence(p_tenant, p_node, p_epoch);
    IF p_id IS NULL OR p_id < 0 THEN
        RAISE EXCEPTION 'cowheap: a segment id is not negative' USING ERRCODE = '22023';
    END IF;
    h := cowheap_put_blob(p_digest, p_data);
    INSERT INTO cowheap_segments (tenant, id, blob, blob_sha256)
    VALUES (p_tenant, p_id, p_digest, h) ON CONFLICT (tenant, id) DO NOTHING;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'cowheap: the tenant has this segment already' USING ERRCODE = '23505';
    END IF;
    RETURN h;
END
$body$;
REVOKE ALL ON FUNCTION %1$I.cowheap_put_segment(text, text, bigint, bigint, bytea, bytea)
    FROM PUBLIC;

CREATE OR REPLACE FUNCTION %1$I.cowheap_remove_segment(p_tenant text, p_node text,
    p_epoch bigint, p_id bigint)
RETURNS void
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = %1$I, pg_temp
AS $body$
BEGIN
    PERFORM cowheap_fence(p_tenant, p_node, p_epoch);
    DELETE FROM cowheap_segments WHERE tenant = p_tenant AND id = p_id;
END
$body$;
REVOKE ALL ON FUNCTION %1$I.cowheap_remove_segment(text, text, bigint, bigint) FROM PUBLIC;
$f$, current_schema())";

/// The one way a principal's role writes a version, made by [`PgStore::init`] beside
/// [`FENCED_FUNCTIONS`] and like them owned by the operator, `SECURITY DEFINER` on a fixed
/// `search_path`. No principal's role may insert into `cowheap_versions` itself: it calls
/// `cowheap_put_version(origin, number, digest, data)`, which takes the layer's bytes (proof
/// of possession: a version names only a blob whose bytes its writer supplies in the same
/// call), checks the caller may commit to `origin` (the session's principal role is named
/// by `cowheap_committers` for the base, or the caller is the operator: a member of the
/// function's owner), files the bytes as `cowheap_put_blob` does, and inserts the row
/// compare-and-set, `committed_by` the session's principal (NULL for the operator).
/// Refusals: SQLSTATE 42501 (not a committer, also for a base that does not exist), 23514
/// (`number` is not over an existing version), 23505 (`number` is taken).
///
/// `cowheap_put_version_fenced(tenant, node, epoch, origin, number, digest, data)` is the
/// same fenced by a claim ([`Store::put_version_claimed`]): it runs the fence check of
/// [`FENCED_FUNCTIONS`] first, which locks the tenant's row `FOR UPDATE` until the
/// transaction ends, so a claim of the tenant (an update of that row) comes wholly before
/// the version or wholly after it, and checks that the tenant is of the history of
/// `origin`. Refusals: those of the fence (42501 not entitled to the tenant, 55000 a stale
/// claim), 22023 (the tenant is of another base), then those above.
const VERSION_FUNCTION: &str = "SELECT format($f$
CREATE OR REPLACE FUNCTION %1$I.cowheap_put_version(p_origin bytea, p_number bigint,
    p_digest bytea, p_data bytea)
RETURNS bytea
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = %1$I, pg_temp
AS $body$
DECLARE
    who text;
    h bytea;
BEGIN
    IF pg_catalog.pg_has_role(session_user, current_user, 'MEMBER') THEN
        who := NULL;
    ELSE
        SELECT c.principal INTO who FROM cowheap_committers c
        WHERE c.base = p_origin AND 'cowheap_' || c.principal = session_user;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'cowheap: not a committer of the base' USING ERRCODE = '42501';
        END IF;
    END IF;
    IF p_number IS NULL OR p_number < 1 OR (p_number > 1 AND NOT EXISTS (
            SELECT 1 FROM cowheap_versions p
            WHERE p.origin = p_origin AND p.number = p_number - 1)) THEN
        RAISE EXCEPTION 'cowheap: not the next version number' USING ERRCODE = '23514';
    END IF;
    h := cowheap_put_blob(p_digest, p_data);
    INSERT INTO cowheap_versions (origin, number, layer, layer_sha256, committed_by)
    VALUES (p_origin, p_number, p_digest, h, who) ON CONFLICT (origin, number) DO NOTHING;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'cowheap: the version number is taken' USING ERRCODE = '23505';
    END IF;
    RETURN h;
END
$body$;
REVOKE ALL ON FUNCTION %1$I.cowheap_put_version(bytea, bigint, bytea, bytea) FROM PUBLIC;

CREATE OR REPLACE FUNCTION %1$I.cowheap_put_version_fenced(p_tenant text, p_node text,
    p_epoch bigint, p_origin bytea, p_number bigint, p_digest bytea, p_data bytea)
RETURNS bytea
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = %1$I, pg_temp
AS $body$
BEGIN
    PERFORM cowheap_fence(p_tenant, p_node, p_epoch);
    IF NOT EXISTS (SELECT 1 FROM cowheap_tenants t
                   WHERE t.name = p_tenant AND t.base = p_origin) THEN
        RAISE EXCEPTION 'cowheap: the tenant is of another base' USING ERRCODE = '22023';
    END IF;
    RETURN cowheap_put_version(p_origin, p_number, p_digest, p_data);
END
$body$;
REVOKE ALL ON FUNCTION %1$I.cowheap_put_version_fenced(text, text, bigint, bytea, bigint,
    bytea, bytea) FROM PUBLIC;
$f$, current_schema())";

/// A storage hint: blobs are stored out of line without compression. Snapshots compress
/// poorly and the server's compression was most of a large suspend's time (measured: a
/// 1.9 MB snapshot, 150 ms with it, 26 ms without).
const STORAGE_HINT: &str = "ALTER TABLE cowheap_blobs ALTER COLUMN data SET STORAGE EXTERNAL";

/// What a principal's database role may do; row-level security narrows it to its rows.
const ROLE_GRANTS: &str = "SELECT format('\
GRANT SELECT ON cowheap_bases, cowheap_grants, cowheap_principals TO %1$I; \
GRANT SELECT ON cowheap_blobs TO %1$I; \
REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON cowheap_blobs FROM %1$I; \
GRANT EXECUTE ON FUNCTION cowheap_put_blob(bytea, bytea) TO %1$I; \
GRANT SELECT ON cowheap_committers TO %1$I; \
REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON cowheap_versions FROM %1$I; \
GRANT SELECT ON cowheap_versions TO %1$I; \
GRANT EXECUTE ON FUNCTION cowheap_put_version(bytea, bigint, bytea, bytea) TO %1$I; \
GRANT EXECUTE ON FUNCTION cowheap_put_version_fenced(text, text, bigint, bytea, bigint, \
bytea, bytea) TO %1$I; \
GRANT EXECUTE ON FUNCTION cowheap_write_state(text, text, bigint, bytea, bytea, boolean) \
TO %1$I; \
GRANT EXECUTE ON FUNCTION cowheap_put_segment(text, text, bigint, bigint, bytea, bytea) \
TO %1$I; \
GRANT EXECUTE ON FUNCTION cowheap_remove_segment(text, text, bigint, bigint) TO %1$I; \
REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON cowheap_segments FROM %1$I; \
GRANT SELECT ON cowheap_segments TO %1$I; \
REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON cowheap_tenants FROM %1$I; \
GRANT SELECT, UPDATE (owner, epoch, lease_expiry) ON cowheap_tenants TO %1$I', $1::text)";

/// The longest principal name this backend takes (every backend takes the same names).
pub use crate::names::MAX_PRINCIPAL;

/// The database role of a principal.
///
/// # Errors
/// [`StoreError::InvalidName`] for a name longer than [`MAX_PRINCIPAL`].
pub fn role_name(p: &PrincipalName) -> Result<String> {
    check_principal(p)?;
    Ok(format!("cowheap_{p}"))
}

/// How many times a transaction that failed to serialize is tried again.
const RETRIES: usize = 8;

/// A store in a PostgreSQL database. One connection per handle: open a handle per thread
/// that should work in parallel. See the module doc for the schema and the protocol.
pub struct PgStore {
    config: postgres::Config,
    conn: Mutex<Conn>,
    clock: Arc<dyn Clock>,
    access: Access,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore")
            .field("clock", &self.clock)
            .field("access", &self.access)
            .finish_non_exhaustive()
    }
}

/// `v` as a `bigint`, or [`StoreError::Damaged`] naming `what` if it does not fit.
fn i64_of(v: u64, what: &str) -> Result<i64> {
    i64::try_from(v).map_err(|_| StoreError::Damaged {
        what: what.to_owned(),
        problem: "a value past the largest bigint",
    })
}

/// A `bigint` column read back, or [`StoreError::Damaged`] naming `what` if it is negative.
fn u64_of(v: i64, what: &str) -> Result<u64> {
    u64::try_from(v).map_err(|_| StoreError::Damaged {
        what: what.to_owned(),
        problem: "a negative value",
    })
}

fn arr32(v: &[u8], what: &'static str) -> Result<[u8; 32]> {
    v.try_into().map_err(|_| StoreError::Damaged {
        what: what.to_owned(),
        problem: "a digest column is not 32 bytes",
    })
}

/// A connection and whether it has failed under an operation.
struct Conn {
    client: Client,
    broken: bool,
}

/// Whether an error means the connection is gone: no SQLSTATE (the socket), a connection
/// exception (class 08) or the server ending the session (57P01-57P03).
fn lost(e: &StoreError) -> bool {
    match e {
        StoreError::Db { code: None, .. } => true,
        StoreError::Db { code: Some(c), .. } => c.starts_with("08") || c.starts_with("57P0"),
        _ => false,
    }
}

/// Whether a failed transaction is worth trying again.
fn retryable(e: &StoreError) -> bool {
    matches!(e, StoreError::Db { code: Some(c), .. } if c == "40001" || c == "40P01")
}

impl PgStore {
    /// Creates the schema (if missing) in the database `config` names, and opens it as the
    /// operator.
    ///
    /// # Errors
    /// [`StoreError::Db`] if the server cannot be reached or refuses.
    pub fn init(config: &str, clock: Arc<dyn Clock>) -> Result<PgStore> {
        let mut client =
            Client::connect(config, NoTls).map_err(|e| StoreError::db("connect", e))?;
        // A store of the earlier layout (blobs named by digest alone, inserted by any
        // principal) is not upgraded in place: its rows could hold planted bytes.
        let old_layout: bool = client
            .query_one(
                "SELECT to_regclass('cowheap_blobs') IS NOT NULL AND NOT EXISTS ( \
                 SELECT 1 FROM pg_attribute WHERE attrelid = to_regclass('cowheap_blobs') \
                 AND attname = 'sha256' AND NOT attisdropped)",
                &[],
            )
            .map_err(|e| StoreError::db("look for the schema", e))?
            .get(0);
        if old_layout {
            return Err(StoreError::NotAStore {
                what: "a store of an earlier layout (blobs without their SHA-256): copy its \
                       bases and states into a new store"
                    .to_owned(),
            });
        }
        client
            .batch_execute(SCHEMA)
            .map_err(|e| StoreError::db("create the schema", e))?;
        // Each query formats the definition of functions for this store's schema; the
        // definition is then run.
        for (query, what) in [
            (PUT_BLOB_FUNCTION, "make the blob function"),
            (FENCED_FUNCTIONS, "make the fenced write functions"),
            (VERSION_FUNCTION, "make the version function"),
        ] {
            let text: String = client
                .query_one(query, &[])
                .map_err(|e| StoreError::db(what, e))?
                .get(0);
            client
                .batch_execute(&text)
                .map_err(|e| StoreError::db(what, e))?;
        }
        // Only a hint: a compatible database without the setting keeps its default storage.
        if let Err(e) = client.batch_execute(STORAGE_HINT) {
            let unsupported = e
                .code()
                .is_some_and(|c| matches!(c.code(), "0A000" | "42601" | "42704"));
            if !unsupported {
                return Err(StoreError::db("set the blobs' storage", e));
            }
        }
        // Principals added before this layout get the rights it adds (reading versions,
        // committing through the version function, the fenced write functions) and lose
        // those it takes away (writing segment rows, the state columns and versions directly).
        let roles: Vec<String> = client
            .query("SELECT name FROM cowheap_principals", &[])
            .map_err(|e| StoreError::db("list principals", e))?
            .iter()
            .filter_map(|r| role_name(&PrincipalName::new(r.get::<_, String>(0)).ok()?).ok())
            .collect();
        for role in roles {
            let grants: String = client
                .query_one(ROLE_GRANTS, &[&role])
                .map_err(|e| StoreError::db("grant a principal's role", e))?
                .get(0);
            client
                .batch_execute(&grants)
                .map_err(|e| StoreError::db("grant a principal's role", e))?;
        }
        drop(client);
        PgStore::connect(config, clock, Access::Operator)
    }

    /// Connects to the store in the database `config` names (a libpq-style connection
    /// string or URL). The operator connects with the login `config` gives; a principal
    /// connects as its own database role (see [`role_name`]) with its secret as password,
    /// so the server authenticates it and row-level security confines it to its tenants;
    /// the store checks the secret's digest too, for servers that trust every login.
    ///
    /// # Errors
    /// [`StoreError::Db`] if the server cannot be reached; [`StoreError::NotAStore`] if the
    /// database has no store schema; [`StoreError::BadCredentials`] if the principal is
    /// unknown or its secret wrong.
    pub fn connect(config: &str, clock: Arc<dyn Clock>, access: Access) -> Result<PgStore> {
        let mut cfg: postgres::Config = config
            .parse()
            .map_err(|e| StoreError::db("parse the connection string", e))?;
        if let Access::Principal { name, secret } = &access {
            // No role has a name past the longest a principal may have (`add_principal`
            // refuses it on every backend): such a principal is unknown here, as it is to
            // a local store that never added it.
            let role = role_name(name).map_err(|_| StoreError::BadCredentials {
                principal: name.clone(),
            })?;
            cfg.user(&role).password(secret.as_bytes());
        }
        let mut client = match cfg.connect(NoTls) {
            Ok(c) => c,
            Err(e) => {
                // 28P01: invalid password; 28000: no such role (or no entry for it).
                let refused = e
                    .code()
                    .is_some_and(|c| c.code() == "28P01" || c.code() == "28000");
                return Err(match (&access, refused) {
                    (Access::Principal { name, .. }, true) => StoreError::BadCredentials {
                        principal: name.clone(),
                    },
                    _ => StoreError::db("connect", e),
                });
            }
        };
        let has = client
            .query_one("SELECT to_regclass('cowheap_tenants') IS NOT NULL", &[])
            .map_err(|e| StoreError::db("look for the schema", e))?;
        if !has.get::<_, bool>(0) {
            return Err(StoreError::NotAStore {
                what: "the database has no cowheap_tenants table".to_owned(),
            });
        }
        if let Access::Principal { name, secret } = &access {
            let row = client
                .query_opt(
                    "SELECT secret FROM cowheap_principals WHERE name = $1",
                    &[&name.as_str()],
                )
                .map_err(|e| StoreError::db("check credentials", e))?;
            let good = row.is_some_and(|r| {
                let s: Vec<u8> = r.get(0);
                <[u8; 32]>::try_from(s.as_slice())
                    .is_ok_and(|h| blake3::Hash::from(h) == blake3::hash(secret.as_bytes()))
            });
            if !good {
                return Err(StoreError::BadCredentials {
                    principal: name.clone(),
                });
            }
        }
        Ok(PgStore {
            config: cfg,
            conn: Mutex::new(Conn {
                client,
                broken: false,
            }),
            clock,
            access,
        })
    }

    /// Runs `f` in a transaction and commits it, trying again when it failed to serialize;
    /// reconnects first if the connection was lost before.
    fn tx<T>(
        &self,
        op: &'static str,
        mut f: impl FnMut(&mut Transaction<'_>) -> Result<T>,
    ) -> Result<T> {
        let mut conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        if conn.broken || conn.client.is_closed() {
            conn.client = self
                .config
                .connect(NoTls)
                .map_err(|e| StoreError::db("reconnect", e))?;
            conn.broken = false;
        }
        let mut tries = 0;
        loop {
            let attempt = (|| {
                let mut tx = conn
                    .client
                    .transaction()
                    .map_err(|e| StoreError::db(op, e))?;
                let out = f(&mut tx)?;
                tx.commit().map_err(|e| StoreError::db(op, e))?;
                Ok(out)
            })();
            match attempt {
                Err(e) if retryable(&e) && tries < RETRIES => tries += 1,
                Err(e) => {
                    // The operation's outcome is the server's to tell: it is not tried
                    // again, but the next operation starts on a new connection.
                    conn.broken |= lost(&e);
                    return Err(e);
                }
                ok => return ok,
            }
        }
    }

    fn principal(&self) -> Option<&str> {
        self.access.principal_name().map(|p| p.as_str())
    }

    fn operator_only(&self, op: &'static str, what: impl FnOnce() -> String) -> Result<()> {
        match &self.access {
            Access::Operator => Ok(()),
            Access::Principal { name, .. } => Err(StoreError::Denied {
                principal: name.clone(),
                op,
                what: what(),
            }),
        }
    }

    /// [`StoreError::BaseMissing`] unless the store holds base `fp`.
    fn require_base(
        &self,
        tx: &mut Transaction<'_>,
        fp: Fingerprint,
        op: &'static str,
    ) -> Result<()> {
        tx.query_opt(
            "SELECT 1 FROM cowheap_bases WHERE fingerprint = $1",
            &[&fp.0.as_slice()],
        )
        .map_err(|e| StoreError::db(op, e))?
        .map(|_| ())
        .ok_or(StoreError::BaseMissing { fingerprint: fp })
    }

    /// The record (locked with `FOR UPDATE` if `lock`), if this access may see it.
    fn load(
        &self,
        tx: &mut Transaction<'_>,
        t: &TenantName,
        op: &'static str,
        lock: bool,
    ) -> Result<TenantRecord> {
        Ok(self.load_with_sha(tx, t, op, lock)?.0)
    }

    /// [`Self::load`], and the SHA-256 of the state's row (see the module doc).
    fn load_with_sha(
        &self,
        tx: &mut Transaction<'_>,
        t: &TenantName,
        op: &'static str,
        lock: bool,
    ) -> Result<(TenantRecord, Option<[u8; 32]>)> {
        let sql = if lock {
            "SELECT base, state, owner, epoch, lease_expiry, \
             ($2::text IS NULL OR EXISTS (SELECT 1 FROM cowheap_grants g \
               WHERE g.tenant = t.name AND g.principal = $2)), state_sha256 \
             FROM cowheap_tenants t WHERE name = $1 FOR UPDATE"
        } else {
            "SELECT base, state, owner, epoch, lease_expiry, \
             ($2::text IS NULL OR EXISTS (SELECT 1 FROM cowheap_grants g \
               WHERE g.tenant = t.name AND g.principal = $2)), state_sha256 \
             FROM cowheap_tenants t WHERE name = $1"
        };
        let row = tx
            .query_opt(sql, &[&t.as_str(), &self.principal()])
            .map_err(|e| StoreError::db(op, e))?
            .ok_or_else(|| StoreError::TenantMissing { tenant: t.clone() })?;
        let granted: bool = row.get(5);
        if !granted && let Some(p) = self.access.principal_name() {
            return Err(StoreError::Denied {
                principal: p.clone(),
                op,
                what: format!("tenant {t}"),
            });
        }
        let sha: Option<Vec<u8>> = row.get(6);
        let sha = match sha {
            Some(s) => Some(arr32(&s, "cowheap_tenants.state_sha256")?),
            None => None,
        };
        Ok((row_record(t.clone(), &row)?, sha))
    }

    /// Writes the record's owner, epoch and lease (never its state: see
    /// [`Self::write_state_in`]).
    fn save(&self, tx: &mut Transaction<'_>, r: &TenantRecord, op: &'static str) -> Result<()> {
        let owner = r.owner.as_ref().map(|o| o.as_str());
        let epoch = i64_of(r.epoch.0, "an epoch")?;
        let lease = i64_of(r.lease_expiry.0, "a lease expiry")?;
        tx.execute(
            "UPDATE cowheap_tenants SET owner = $2, epoch = $3, lease_expiry = $4 \
             WHERE name = $1",
            &[&r.tenant.as_str(), &owner, &epoch, &lease],
        )
        .map_err(|e| StoreError::db(op, e))?;
        Ok(())
    }

    /// Stores `state` and names it as the claim's tenant's state (and with `release`, drops
    /// the owner), through `cowheap_write_state` (see [`FENCED_FUNCTIONS`]), after the same
    /// fence check on the row locked here.
    fn write_state_in(
        &self,
        tx: &mut Transaction<'_>,
        claim: &Claim,
        state: &[u8],
        release: bool,
        op: &'static str,
    ) -> Result<Digest> {
        let rec = self.load(tx, &claim.tenant, "write", true)?;
        check_fence(&rec, claim)?;
        let d = Digest::of(state);
        let epoch = i64_of(claim.epoch.0, "an epoch")?;
        tx.query_one(
            "SELECT cowheap_write_state($1, $2, $3, $4, $5, $6)",
            &[
                &claim.tenant.as_str(),
                &claim.node.as_str(),
                &epoch,
                &d.0.as_slice(),
                &state,
                &release,
            ],
        )
        .map_err(|e| self.fenced_error(claim, &rec, op, e))?;
        Ok(d)
    }

    /// [`Store::put_version`], fenced by `fence` if it is given
    /// ([`Store::put_version_claimed`]): one transaction either way, the tenant's row
    /// locked first in the fenced one.
    fn write_version(
        &self,
        fence: Option<&Claim>,
        origin: Fingerprint,
        number: u64,
        layer: &[u8],
    ) -> Result<VersionRecord> {
        // Unfenced, the bytes are looked at first, as the local store looks at them; fenced,
        // the claim is, below: a stale, released or forged claim is refused as such whatever
        // bytes it presents, as every fenced write refuses it.
        if fence.is_none() {
            check_layer(origin, number, layer)?;
        }
        self.tx("write a version", |tx| {
            // The tenant's row first, locked `FOR UPDATE` until the transaction ends: a claim
            // of the tenant by another node waits for the version, or came first and fences
            // it here, before any blob is stored. The claim's epoch is taken as a `bigint`
            // only once it is found to be the record's: a claim whose epoch no record can
            // hold is a forged one, `Fenced` here as on every backend and every fenced write.
            let (rec, fence) = match fence {
                Some(claim) => {
                    let rec = self.load(tx, &claim.tenant, "write a version", true)?;
                    check_fence(&rec, claim)?;
                    check_history(&rec, origin)?;
                    check_layer(origin, number, layer)?;
                    let epoch = i64_of(claim.epoch.0, "an epoch")?;
                    (Some(rec), Some((claim, epoch)))
                }
                None => (None, None),
            };
            self.require_base(tx, origin, "write a version")?;
            if let Some(p) = self.access.principal_name() {
                let allowed = tx
                    .query_opt(
                        "SELECT 1 FROM cowheap_committers WHERE base = $1 AND principal = $2",
                        &[&origin.0.as_slice(), &p.as_str()],
                    )
                    .map_err(|e| StoreError::db("write a version", e))?
                    .is_some();
                if !allowed {
                    return Err(StoreError::NotCommitter {
                        principal: p.clone(),
                        base: origin,
                    });
                }
            }
            let newest = newest_version(tx, origin)?;
            // No history reaches a number past the largest a store keeps.
            let num = match i64::try_from(number) {
                Ok(num) if newest == number - 1 => num,
                _ => {
                    return Err(StoreError::VersionConflict {
                        origin,
                        number,
                        newest,
                    });
                }
            };
            // Through the function (see VERSION_FUNCTION), in a savepoint so that after a
            // refusal the transaction still reads the newest number for the conflict.
            let d = Digest::of(layer);
            let mut sp = tx
                .transaction()
                .map_err(|e| StoreError::db("write a version", e))?;
            let written = match fence {
                Some((claim, epoch)) => sp.query_one(
                    "SELECT cowheap_put_version_fenced($1, $2, $3, $4, $5, $6, $7)",
                    &[
                        &claim.tenant.as_str(),
                        &claim.node.as_str(),
                        &epoch,
                        &origin.0.as_slice(),
                        &num,
                        &d.0.as_slice(),
                        &layer,
                    ],
                ),
                None => sp.query_one(
                    "SELECT cowheap_put_version($1, $2, $3, $4)",
                    &[&origin.0.as_slice(), &num, &d.0.as_slice(), &layer],
                ),
            };
            match written {
                Ok(_) => sp
                    .commit()
                    .map_err(|e| StoreError::db("write a version", e))?,
                Err(e) => {
                    sp.rollback()
                        .map_err(|e| StoreError::db("write a version", e))?;
                    // The row is locked and its claim checked above, so the fence refuses
                    // nothing here but after a change behind the store's back.
                    // (A 42501 is read as the commit right's below: the fence's own, not
                    // entitled to the tenant, was answered by the row's load above.)
                    match (fence, &rec, e.code().map(|c| c.code())) {
                        (Some((claim, _)), Some(rec), Some("55000")) => {
                            return Err(self.fenced_error(claim, rec, "write a version", e));
                        }
                        (Some(_), _, Some("22023")) => {
                            return Err(StoreError::LayerMismatch {
                                problem: "the claim is of a tenant of another base",
                            });
                        }
                        _ => {}
                    }
                    return Err(
                        match (e.code().map(|c| c.code()), self.access.principal_name()) {
                            (Some("42501"), Some(p)) => StoreError::NotCommitter {
                                principal: p.clone(),
                                base: origin,
                            },
                            // Taken by another writer, or not over the newest version.
                            (Some("23505" | "23514"), _) => StoreError::VersionConflict {
                                origin,
                                number,
                                newest: newest_version(tx, origin)?,
                            },
                            _ => StoreError::db("write a version", e),
                        },
                    );
                }
            }
            Ok(VersionRecord {
                origin,
                number,
                layer: d,
                committed_by: self.access.principal_name().cloned(),
            })
        })
    }

    /// The typed error for a fenced write function's refusal: 42501 (not entitled) is
    /// [`StoreError::Denied`], 55000 (a stale claim) [`StoreError::Fenced`] against `rec`,
    /// the record read under the row lock; anything else [`StoreError::Db`].
    fn fenced_error(
        &self,
        claim: &Claim,
        rec: &TenantRecord,
        op: &'static str,
        e: postgres::Error,
    ) -> StoreError {
        match (e.code().map(|c| c.code()), self.access.principal_name()) {
            (Some("42501"), Some(p)) => StoreError::Denied {
                principal: p.clone(),
                op,
                what: format!("tenant {}", claim.tenant),
            },
            (Some("55000"), _) => StoreError::Fenced {
                tenant: claim.tenant.clone(),
                held: claim.epoch,
                current: rec.epoch,
            },
            _ => StoreError::db(op, e),
        }
    }

    fn update<T>(
        &self,
        t: &TenantName,
        op: &'static str,
        mut f: impl FnMut(&mut TenantRecord) -> Result<T>,
    ) -> Result<T> {
        self.tx(op, |tx| {
            let mut rec = self.load(tx, t, op, true)?;
            let out = f(&mut rec)?;
            self.save(tx, &rec, op)?;
            Ok(out)
        })
    }

    /// The blob filed under `digest` and `sha256`, its length and BLAKE3 digest checked.
    fn get_blob(
        &self,
        tx: &mut Transaction<'_>,
        digest: &Digest,
        sha256: &[u8; 32],
    ) -> Result<Vec<u8>> {
        let row = tx
            .query_opt(
                "SELECT len, data FROM cowheap_blobs WHERE digest = $1 AND sha256 = $2",
                &[&digest.0.as_slice(), &sha256.as_slice()],
            )
            .map_err(|e| StoreError::db("read a blob", e))?
            .ok_or(StoreError::BlobMissing { digest: *digest })?;
        let expected = u64_of(row.get(0), "cowheap_blobs.len")?;
        let data: Vec<u8> = row.get(1);
        if data.len() as u64 != expected {
            return Err(StoreError::BlobTruncated {
                digest: *digest,
                expected,
                found: data.len() as u64,
            });
        }
        let found = Digest::of(&data);
        if found != *digest {
            return Err(StoreError::BlobCorrupt {
                digest: *digest,
                found,
            });
        }
        Ok(data)
    }
}

/// Stores a blob through `cowheap_put_blob` (see the module doc), for the operator and a
/// principal alike, and returns its digest and the SHA-256 the server computed. A damaged
/// copy of the same bytes is repaired; bytes another writer filed under this digest that
/// are not these stay in a row of their own, which this blob's readers never fetch.
fn put_blob(tx: &mut Transaction<'_>, bytes: &[u8]) -> Result<(Digest, [u8; 32])> {
    let digest = Digest::of(bytes);
    let row = tx
        .query_one(
            "SELECT cowheap_put_blob($1, $2)",
            &[&digest.0.as_slice(), &bytes],
        )
        .map_err(|e| StoreError::db("write a blob", e))?;
    let sha: Vec<u8> = row.get(0);
    Ok((digest, arr32(&sha, "cowheap_put_blob's answer")?))
}

fn row_record(tenant: TenantName, row: &postgres::Row) -> Result<TenantRecord> {
    let base: Vec<u8> = row.get(0);
    let state: Option<Vec<u8>> = row.get(1);
    let owner: Option<String> = row.get(2);
    Ok(TenantRecord {
        base: Fingerprint(arr32(&base, "cowheap_tenants.base")?),
        state: match state {
            Some(s) => Some(Digest(arr32(&s, "cowheap_tenants.state")?)),
            None => None,
        },
        owner: owner.as_deref().map(stored_name).transpose()?.flatten(),
        epoch: Epoch(u64_of(row.get(3), "cowheap_tenants.epoch")?),
        lease_expiry: Millis(u64_of(row.get(4), "cowheap_tenants.lease_expiry")?),
        tenant,
    })
}

impl Store for PgStore {
    fn put_base(&self, fingerprint: Fingerprint, image: &[u8]) -> Result<Digest> {
        self.operator_only("store", || format!("base {fingerprint}"))?;
        self.tx("store a base", |tx| {
            let (d, sha) = put_blob(tx, image)?;
            tx.execute(
                "INSERT INTO cowheap_bases (fingerprint, blob, blob_sha256) VALUES ($1, $2, $3) \
                 ON CONFLICT (fingerprint) DO UPDATE \
                 SET blob = EXCLUDED.blob, blob_sha256 = EXCLUDED.blob_sha256",
                &[&fingerprint.0.as_slice(), &d.0.as_slice(), &sha.as_slice()],
            )
            .map_err(|e| StoreError::db("store a base", e))?;
            Ok(d)
        })
    }

    fn get_base(&self, fingerprint: Fingerprint) -> Result<Vec<u8>> {
        self.tx("read a base", |tx| {
            let row = tx
                .query_opt(
                    "SELECT blob, blob_sha256 FROM cowheap_bases WHERE fingerprint = $1",
                    &[&fingerprint.0.as_slice()],
                )
                .map_err(|e| StoreError::db("read a base", e))?
                .ok_or(StoreError::BaseMissing { fingerprint })?;
            let d: Vec<u8> = row.get(0);
            let d = Digest(arr32(&d, "cowheap_bases.blob")?);
            let sha: Vec<u8> = row.get(1);
            let sha = arr32(&sha, "cowheap_bases.blob_sha256")?;
            self.get_blob(tx, &d, &sha)
        })
    }

    fn bases(&self) -> Result<Vec<Fingerprint>> {
        self.tx("list bases", |tx| {
            let rows = tx
                .query(
                    "SELECT fingerprint FROM cowheap_bases ORDER BY fingerprint",
                    &[],
                )
                .map_err(|e| StoreError::db("list bases", e))?;
            rows.iter()
                .map(|r| {
                    let f: Vec<u8> = r.get(0);
                    Ok(Fingerprint(arr32(&f, "cowheap_bases.fingerprint")?))
                })
                .collect()
        })
    }

    fn add_principal(&self, name: &PrincipalName, secret: &str) -> Result<()> {
        self.operator_only("add", || format!("principal {name}"))?;
        check_secret(name, secret)?;
        let h = blake3::hash(secret.as_bytes());
        let role = role_name(name)?;
        self.tx("add a principal", |tx| {
            // A role of the principal's name the store did not make (no principal row names
            // it) is another's: giving it a login and the secret would hand the principal
            // whatever that role may do.
            let taken: bool = tx
                .query_one(
                    "SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1) \
                     AND NOT EXISTS (SELECT 1 FROM cowheap_principals WHERE name = $2)",
                    &[&role, &name.as_str()],
                )
                .map_err(|e| StoreError::db("add a principal", e))?
                .get(0);
            if taken {
                return Err(StoreError::RoleTaken {
                    principal: name.clone(),
                    role: role.clone(),
                });
            }
            tx.execute(
                "INSERT INTO cowheap_principals (name, secret) VALUES ($1, $2) \
                 ON CONFLICT (name) DO UPDATE SET secret = EXCLUDED.secret",
                &[&name.as_str(), &h.as_bytes().as_slice()],
            )
            .map_err(|e| StoreError::db("add a principal", e))?;
            // DDL takes no parameters: the server quotes the role and the password itself.
            let ddl: String = tx
                .query_one(
                    "SELECT format(CASE WHEN EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1) \
                     THEN 'ALTER ROLE %I LOGIN PASSWORD %L' \
                     ELSE 'CREATE ROLE %I LOGIN PASSWORD %L' END, $1::text, $2::text)",
                    &[&role, &secret],
                )
                .map_err(|e| StoreError::db("add a principal's role", e))?
                .get(0);
            tx.batch_execute(&ddl)
                .map_err(|e| StoreError::db("add a principal's role", e))?;
            let grants: String = tx
                .query_one(ROLE_GRANTS, &[&role])
                .map_err(|e| StoreError::db("grant a principal's role", e))?
                .get(0);
            tx.batch_execute(&grants)
                .map_err(|e| StoreError::db("grant a principal's role", e))?;
            Ok(())
        })
    }

    fn create_tenant(
        &self,
        tenant: &TenantName,
        base: Fingerprint,
        principal: Option<&PrincipalName>,
    ) -> Result<TenantRecord> {
        self.operator_only("create", || format!("tenant {tenant}"))?;
        self.tx("create a tenant", |tx| {
            let has_base = tx
                .query_opt(
                    "SELECT 1 FROM cowheap_bases WHERE fingerprint = $1",
                    &[&base.0.as_slice()],
                )
                .map_err(|e| StoreError::db("create a tenant", e))?
                .is_some();
            if !has_base {
                return Err(StoreError::BaseMissing { fingerprint: base });
            }
            let n = tx
                .execute(
                    "INSERT INTO cowheap_tenants (name, base, state, owner, epoch, lease_expiry) \
                     VALUES ($1, $2, NULL, NULL, 0, 0) ON CONFLICT (name) DO NOTHING",
                    &[&tenant.as_str(), &base.0.as_slice()],
                )
                .map_err(|e| StoreError::db("create a tenant", e))?;
            if n == 0 {
                return Err(StoreError::TenantExists {
                    tenant: tenant.clone(),
                });
            }
            if let Some(p) = principal {
                tx.execute(
                    "INSERT INTO cowheap_grants (tenant, principal) VALUES ($1, $2)",
                    &[&tenant.as_str(), &p.as_str()],
                )
                .map_err(|e| StoreError::db("grant a tenant", e))?;
            }
            Ok(TenantRecord {
                tenant: tenant.clone(),
                base,
                state: None,
                owner: None,
                epoch: Epoch(0),
                lease_expiry: Millis(0),
            })
        })
    }

    fn record(&self, tenant: &TenantName) -> Result<TenantRecord> {
        self.tx("read a record", |tx| self.load(tx, tenant, "read", false))
    }

    fn tenants(&self) -> Result<Vec<TenantRecord>> {
        self.tx("list tenants", |tx| {
            // In the names' byte order, as every backend lists them: the "C" collation,
            // whatever the database's own (an ICU or a libc locale sorts `B` after `a`).
            let rows = tx
                .query(
                    "SELECT base, state, owner, epoch, lease_expiry, name FROM cowheap_tenants t \
                     WHERE $1::text IS NULL OR EXISTS (SELECT 1 FROM cowheap_grants g \
                       WHERE g.tenant = t.name AND g.principal = $1) \
                     ORDER BY name COLLATE \"C\"",
                    &[&self.principal()],
                )
                .map_err(|e| StoreError::db("list tenants", e))?;
            rows.iter()
                .map(|r| row_record(TenantName::new(r.get::<_, String>(5))?, r))
                .collect()
        })
    }

    fn claim(&self, tenant: &TenantName, node: &NodeName, lease_ms: u64) -> Result<Claim> {
        self.update(tenant, "claim", |rec| {
            take(rec, node, self.clock.now(), lease_ms)
        })
    }

    fn now(&self) -> Millis {
        self.clock.now()
    }

    fn renew(&self, claim: &Claim, lease_ms: u64) -> Result<Claim> {
        self.update(&claim.tenant, "renew", |rec| {
            check_fence(rec, claim)?;
            rec.lease_expiry = lease_end(self.clock.now(), lease_ms)?;
            Ok(Claim {
                lease_expiry: rec.lease_expiry,
                ..claim.clone()
            })
        })
    }

    fn write_state(&self, claim: &Claim, state: &[u8]) -> Result<Digest> {
        self.tx("write a state", |tx| {
            self.write_state_in(tx, claim, state, false, "write a state")
        })
    }

    fn suspend(&self, claim: &Claim, state: &[u8]) -> Result<Digest> {
        self.tx("suspend", |tx| {
            self.write_state_in(tx, claim, state, true, "suspend")
        })
    }

    fn release(&self, claim: &Claim) -> Result<()> {
        self.update(&claim.tenant, "release", |rec| {
            check_fence(rec, claim)?;
            rec.owner = None;
            rec.lease_expiry = Millis(0);
            Ok(())
        })
    }

    fn read_state(&self, tenant: &TenantName, digest: Digest) -> Result<Vec<u8>> {
        self.tx("read a state", |tx| {
            let (rec, sha) = self.load_with_sha(tx, tenant, "read", false)?;
            match sha {
                Some(sha) if rec.state == Some(digest) => self.get_blob(tx, &digest, &sha),
                _ => Err(StoreError::BlobMissing { digest }),
            }
        })
    }

    fn blob_stats(&self) -> Result<BlobStats> {
        self.operator_only("count", || "blobs".to_owned())?;
        self.tx("count blobs", |tx| {
            let r = tx
                .query_one(
                    "SELECT count(*), coalesce(sum(len), 0)::bigint FROM cowheap_blobs",
                    &[],
                )
                .map_err(|e| StoreError::db("count blobs", e))?;
            Ok(BlobStats {
                count: u64_of(r.get(0), "the blob count")?,
                bytes: u64_of(r.get(1), "the blob bytes")?,
            })
        })
    }

    /// Each blob no row names is deleted in a transaction of its own, if still no row names
    /// it then: a write that names it meanwhile holds a foreign key to it, so the delete
    /// fails on that key (and is skipped) or the write's own upsert of the blob, waiting
    /// on the delete, files it again.
    fn sweep_blobs(&self) -> Result<BlobStats> {
        self.operator_only("sweep", || "blobs".to_owned())?;
        let unnamed: Vec<(Vec<u8>, Vec<u8>, i64)> = self.tx("list unnamed blobs", |tx| {
            let rows = tx
                .query(
                    &format!("SELECT digest, sha256, len FROM cowheap_blobs b WHERE {UNNAMED}"),
                    &[],
                )
                .map_err(|e| StoreError::db("list unnamed blobs", e))?;
            Ok(rows
                .iter()
                .map(|r| (r.get(0), r.get(1), r.get(2)))
                .collect())
        })?;
        let mut removed = BlobStats::default();
        for (digest, sha, len) in unnamed {
            let gone = self.tx("sweep a blob", |tx| {
                let mut sp = tx
                    .savepoint("sweep")
                    .map_err(|e| StoreError::db("sweep a blob", e))?;
                let deleted = sp.execute(
                    &format!(
                        "DELETE FROM cowheap_blobs b WHERE digest = $1 AND sha256 = $2 \
                         AND {UNNAMED}"
                    ),
                    &[&digest, &sha],
                );
                match deleted {
                    Ok(n) => {
                        sp.commit().map_err(|e| StoreError::db("sweep a blob", e))?;
                        Ok(n == 1)
                    }
                    // Named by a write since the list: kept (the savepoint rolls back).
                    Err(e) if e.code().is_some_and(|c| c.code() == "23503") => Ok(false),
                    Err(e) => Err(StoreError::db("sweep a blob", e)),
                }
            })?;
            if gone {
                removed.count += 1;
                removed.bytes += u64::try_from(len).unwrap_or(0);
            }
        }
        Ok(removed)
    }

    fn allow_commit(&self, base: Fingerprint, principal: &PrincipalName) -> Result<()> {
        self.operator_only("allow", || format!("commits to base {base}"))?;
        self.tx("allow commits", |tx| {
            self.require_base(tx, base, "allow commits")?;
            tx.execute(
                "INSERT INTO cowheap_committers (base, principal) VALUES ($1, $2) \
                 ON CONFLICT DO NOTHING",
                &[&base.0.as_slice(), &principal.as_str()],
            )
            .map_err(|e| StoreError::db("allow commits", e))?;
            Ok(())
        })
    }

    fn committers(&self, base: Fingerprint) -> Result<Vec<PrincipalName>> {
        self.tx("list committers", |tx| {
            // In the names' byte order, whatever the database's collation (as `tenants`).
            let rows = tx
                .query(
                    "SELECT principal FROM cowheap_committers \
                     WHERE base = $1 AND ($2::text IS NULL OR principal = $2) \
                     ORDER BY principal COLLATE \"C\"",
                    &[&base.0.as_slice(), &self.principal()],
                )
                .map_err(|e| StoreError::db("list committers", e))?;
            // A committer `-` (written before that name was refused) is nobody.
            rows.iter()
                .filter_map(|r| stored_name(&r.get::<_, String>(0)).transpose())
                .collect()
        })
    }

    fn put_version(&self, origin: Fingerprint, number: u64, layer: &[u8]) -> Result<VersionRecord> {
        self.write_version(None, origin, number, layer)
    }

    fn put_version_claimed(
        &self,
        claim: &Claim,
        origin: Fingerprint,
        number: u64,
        layer: &[u8],
    ) -> Result<VersionRecord> {
        self.write_version(Some(claim), origin, number, layer)
    }

    fn versions(&self, origin: Fingerprint, after: u64) -> Result<Vec<VersionRecord>> {
        // Past the largest number a store keeps, none is listed.
        let after = i64::try_from(after).unwrap_or(i64::MAX);
        self.tx("list versions", |tx| {
            self.require_base(tx, origin, "list versions")?;
            let rows = tx
                .query(
                    "SELECT number, layer, committed_by FROM cowheap_versions \
                     WHERE origin = $1 AND number > $2 ORDER BY number",
                    &[&origin.0.as_slice(), &after],
                )
                .map_err(|e| StoreError::db("list versions", e))?;
            rows.iter()
                .map(|r| {
                    let layer: Vec<u8> = r.get(1);
                    Ok(VersionRecord {
                        origin,
                        number: u64_of(r.get(0), "cowheap_versions.number")?,
                        layer: Digest(arr32(&layer, "cowheap_versions.layer")?),
                        committed_by: r
                            .get::<_, Option<String>>(2)
                            .as_deref()
                            .map(stored_name)
                            .transpose()?
                            .flatten(),
                    })
                })
                .collect()
        })
    }

    fn get_layer(&self, digest: Digest) -> Result<Vec<u8>> {
        self.tx("read a layer", |tx| {
            // Every version naming the digest, each with the SHA-256 its writer gave: a
            // committer of another history can name any digest with bytes of its own, so
            // the first blob that verifies answers, whatever order the rows come in.
            let rows = tx
                .query(
                    "SELECT DISTINCT layer_sha256 FROM cowheap_versions WHERE layer = $1",
                    &[&digest.0.as_slice()],
                )
                .map_err(|e| StoreError::db("read a layer", e))?;
            let mut refused = StoreError::BlobMissing { digest };
            for row in &rows {
                let sha: Vec<u8> = row.get(0);
                let sha = arr32(&sha, "cowheap_versions.layer_sha256")?;
                match self.get_blob(tx, &digest, &sha) {
                    Ok(bytes) => return Ok(bytes),
                    Err(
                        e @ (StoreError::BlobCorrupt { .. }
                        | StoreError::BlobTruncated { .. }
                        | StoreError::BlobMissing { .. }),
                    ) => refused = e,
                    Err(e) => return Err(e),
                }
            }
            Err(refused)
        })
    }

    fn put_segment(&self, claim: &Claim, id: SegmentId, bytes: &[u8]) -> Result<Digest> {
        check_segment_id(&claim.tenant, id)?;
        let n = i64_of(id.get(), "a segment id")?;
        self.tx("write a segment", |tx| {
            let rec = self.load(tx, &claim.tenant, "write", true)?;
            check_fence(&rec, claim)?;
            let taken = tx
                .query_opt(
                    "SELECT 1 FROM cowheap_segments WHERE tenant = $1 AND id = $2",
                    &[&claim.tenant.as_str(), &n],
                )
                .map_err(|e| StoreError::db("write a segment", e))?
                .is_some();
            let exists = || StoreError::SegmentExists {
                tenant: claim.tenant.clone(),
                id,
            };
            if taken {
                return Err(exists());
            }
            let d = Digest::of(bytes);
            let epoch = i64_of(claim.epoch.0, "an epoch")?;
            tx.query_one(
                "SELECT cowheap_put_segment($1, $2, $3, $4, $5, $6)",
                &[
                    &claim.tenant.as_str(),
                    &claim.node.as_str(),
                    &epoch,
                    &n,
                    &d.0.as_slice(),
                    &bytes,
                ],
            )
            .map_err(|e| match e.code().map(|c| c.code()) {
                Some("23505") => exists(),
                _ => self.fenced_error(claim, &rec, "write a segment", e),
            })?;
            Ok(d)
        })
    }

    fn get_segment(&self, tenant: &TenantName, id: SegmentId) -> Result<Vec<u8>> {
        self.tx("read a segment", |tx| {
            self.load(tx, tenant, "read", false)?;
            // No segment is kept past the largest id.
            let n = i64::try_from(id.get()).map_err(|_| StoreError::SegmentMissing {
                tenant: tenant.clone(),
                id,
            })?;
            let row = tx
                .query_opt(
                    "SELECT blob, blob_sha256 FROM cowheap_segments WHERE tenant = $1 AND id = $2",
                    &[&tenant.as_str(), &n],
                )
                .map_err(|e| StoreError::db("read a segment", e))?
                .ok_or_else(|| StoreError::SegmentMissing {
                    tenant: tenant.clone(),
                    id,
                })?;
            let d: Vec<u8> = row.get(0);
            let d = Digest(arr32(&d, "cowheap_segments.blob")?);
            let sha: Vec<u8> = row.get(1);
            let sha = arr32(&sha, "cowheap_segments.blob_sha256")?;
            self.get_blob(tx, &d, &sha)
        })
    }

    fn remove_segment(&self, claim: &Claim, id: SegmentId) -> Result<()> {
        self.tx("remove a segment", |tx| {
            let rec = self.load(tx, &claim.tenant, "write", true)?;
            check_fence(&rec, claim)?;
            // No segment is kept past the largest id: none to remove.
            let Ok(n) = i64::try_from(id.get()) else {
                return Ok(());
            };
            let epoch = i64_of(claim.epoch.0, "an epoch")?;
            tx.execute(
                "SELECT cowheap_remove_segment($1, $2, $3, $4)",
                &[&claim.tenant.as_str(), &claim.node.as_str(), &epoch, &n],
            )
            .map_err(|e| self.fenced_error(claim, &rec, "remove a segment", e))?;
            Ok(())
        })
    }

    fn segments(&self, tenant: &TenantName) -> Result<Vec<SegmentId>> {
        self.tx("list segments", |tx| {
            self.load(tx, tenant, "read", false)?;
            let rows = tx
                .query(
                    "SELECT id FROM cowheap_segments WHERE tenant = $1 ORDER BY id",
                    &[&tenant.as_str()],
                )
                .map_err(|e| StoreError::db("list segments", e))?;
            rows.iter()
                .map(|r| Ok(SegmentId::new(u64_of(r.get(0), "cowheap_segments.id")?)))
                .collect()
        })
    }
}

/// The newest version of `origin`'s history (0: none committed). Time: O(log versions),
/// on the primary key.
fn newest_version(tx: &mut Transaction<'_>, origin: Fingerprint) -> Result<u64> {
    let n: i64 = tx
        .query_one(
            "SELECT coalesce(max(number), 0)::bigint FROM cowheap_versions WHERE origin = $1",
            &[&origin.0.as_slice()],
        )
        .map_err(|e| StoreError::db("read the newest version", e))?
        .get(0);
    u64_of(n, "the newest version number")
}
