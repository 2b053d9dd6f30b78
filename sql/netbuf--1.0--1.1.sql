/* sql/netbuf--1.0--1.1.sql */

-- complain if script is sourced in psql, rather than via ALTER EXTENSION
\echo Use "ALTER EXTENSION netbuf UPDATE TO '1.1'" to load this file. \quit

-- Version 1.1: netbuf from SQL.  CREATE EXTENSION netbuf runs
-- netbuf--1.0.sql and then this script (there is no netbuf--1.1.sql), so a
-- new installation and an updated one end up with the same objects.

------------------------------------------------------------------------
-- The standby side: requests from SQL over cached session channels
------------------------------------------------------------------------
-- docs/sql-api.md describes them.  Each backend caches one pinned channel
-- per (role, conninfo); conninfo NULL means this standby's primary_conninfo.
-- EXECUTE is revoked from PUBLIC, and a non-superuser must also pass the
-- password rule (netbuf.password_required).

CREATE FUNCTION netbuf.request(op "char", payload bytea, conninfo text DEFAULT NULL)
RETURNS bytea
LANGUAGE C CALLED ON NULL INPUT VOLATILE PARALLEL UNSAFE
AS 'MODULE_PATHNAME', 'netbuf_sql_request';

COMMENT ON FUNCTION netbuf.request("char", bytea, text) IS
  'send op || payload to the primary over this session''s channel and return its reply';

CREATE FUNCTION netbuf.requests(op "char", payloads bytea[], conninfo text DEFAULT NULL)
RETURNS bytea[]
LANGUAGE C CALLED ON NULL INPUT VOLATILE PARALLEL UNSAFE
AS 'MODULE_PATHNAME', 'netbuf_sql_requests';

COMMENT ON FUNCTION netbuf.requests("char", bytea[], text) IS
  'send op || payload for each payload, pipelined, and return the replies in order';

CREATE FUNCTION netbuf.channels(
    OUT conninfo text,
    OUT role text,
    OUT state text,
    OUT serving_pid integer,
    OUT opened_at timestamptz,
    OUT requests bigint,
    OUT replies bigint,
    OUT errors bigint,
    OUT bytes_sent bigint,
    OUT bytes_received bigint,
    OUT last_error text,
    OUT pinned boolean)
RETURNS SETOF record
LANGUAGE C STRICT VOLATILE PARALLEL UNSAFE
AS 'MODULE_PATHNAME', 'netbuf_sql_channels';

COMMENT ON FUNCTION netbuf.channels() IS
  'the channels this backend opened from SQL, passwords masked';

CREATE FUNCTION netbuf.disconnect(conninfo text DEFAULT NULL)
RETURNS boolean
LANGUAGE C CALLED ON NULL INPUT VOLATILE PARALLEL UNSAFE
AS 'MODULE_PATHNAME', 'netbuf_sql_disconnect';

COMMENT ON FUNCTION netbuf.disconnect(text) IS
  'close this role''s channel for conninfo; false if there was none';

CREATE FUNCTION netbuf.disconnect_all()
RETURNS integer
LANGUAGE C STRICT VOLATILE PARALLEL UNSAFE
AS 'MODULE_PATHNAME', 'netbuf_sql_disconnect_all';

COMMENT ON FUNCTION netbuf.disconnect_all() IS
  'close every channel this backend opened from SQL; returns how many';

REVOKE ALL ON FUNCTION netbuf.request("char", bytea, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION netbuf.requests("char", bytea[], text) FROM PUBLIC;
REVOKE ALL ON FUNCTION netbuf.channels() FROM PUBLIC;
REVOKE ALL ON FUNCTION netbuf.disconnect(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION netbuf.disconnect_all() FROM PUBLIC;


------------------------------------------------------------------------
-- The primary side: SQL handlers, the serving view
------------------------------------------------------------------------
