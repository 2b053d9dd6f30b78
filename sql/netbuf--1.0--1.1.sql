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

-- Op codes answered by SQL functions.  One row per op code; pg_dump keeps
-- the rows (a configuration table of the extension).  A serving backend
-- looks a request's op code up here when no C handler (the built-ins 'E'
-- and 'N', or a module's) answers it: C handlers win.  Change the rows with
-- register_op() and unregister_op(), which check what a row may hold.
CREATE TABLE netbuf.ops (
  op "char" PRIMARY KEY,
  handler regprocedure NOT NULL
);
SELECT pg_catalog.pg_extension_config_dump('netbuf.ops', '');
REVOKE ALL ON TABLE netbuf.ops FROM PUBLIC;

COMMENT ON TABLE netbuf.ops IS
  'op codes answered by SQL functions (payload bytea) RETURNS bytea: see netbuf.register_op()';

-- handler: a function (payload bytea) RETURNS bytea; the payload is the
-- request without its op code, the reply exactly what the function returns.
-- It runs in the serving backend as the channel's role, which needs EXECUTE
-- on it, in a transaction per request.  For the extension's owner or a
-- superuser.
CREATE FUNCTION netbuf.register_op(op "char", handler regprocedure)
RETURNS void
LANGUAGE C VOLATILE
AS 'MODULE_PATHNAME', 'netbuf_register_op';

CREATE FUNCTION netbuf.unregister_op(op "char")
RETURNS void
LANGUAGE C STRICT VOLATILE
AS 'MODULE_PATHNAME', 'netbuf_unregister_op';

COMMENT ON FUNCTION netbuf.register_op("char", regprocedure) IS
  'answer op code op with the function handler(payload bytea) RETURNS bytea';
COMMENT ON FUNCTION netbuf.unregister_op("char") IS
  'stop answering op code op with the function registered for it';

REVOKE ALL ON FUNCTION netbuf.register_op("char", regprocedure) FROM PUBLIC;
REVOKE ALL ON FUNCTION netbuf.unregister_op("char") FROM PUBLIC;

-- The serving backends of this primary, one row per backend running CALL
-- netbuf.serve().  PostgreSQL 14-16: needs shared_preload_libraries =
-- 'libnetbuf'.  Server-wide monitoring: for pg_read_all_stats.
CREATE FUNCTION netbuf.serving_backends(
  OUT pid integer,
  OUT roleid oid,
  OUT datid oid,
  OUT client_addr text,
  OUT client_port integer,
  OUT application_name text,
  OUT opened_at timestamptz,
  OUT requests bigint,
  OUT replies bigint,
  OUT errors bigint,
  OUT bytes_in bigint,
  OUT bytes_out bigint,
  OUT last_op "char",
  OUT state text)
RETURNS SETOF record
LANGUAGE C VOLATILE
AS 'MODULE_PATHNAME', 'netbuf_serving_backends';

CREATE VIEW netbuf.serving AS
  SELECT s.pid,
         pg_catalog.pg_get_userbyid(s.roleid) AS role,
         d.datname AS database,
         s.client_addr,
         s.client_port,
         s.application_name,
         s.opened_at,
         s.requests,
         s.replies,
         s.errors,
         s.bytes_in,
         s.bytes_out,
         s.last_op,
         s.state
    FROM netbuf.serving_backends() AS s
    LEFT JOIN pg_catalog.pg_database AS d ON d.oid = s.datid;

COMMENT ON FUNCTION netbuf.serving_backends() IS
  'the rows of the view netbuf.serving';
COMMENT ON VIEW netbuf.serving IS
  'the backends serving netbuf channels on this server, with their counters';

REVOKE ALL ON FUNCTION netbuf.serving_backends() FROM PUBLIC;
REVOKE ALL ON netbuf.serving FROM PUBLIC;
GRANT EXECUTE ON FUNCTION netbuf.serving_backends() TO pg_read_all_stats;
GRANT SELECT ON netbuf.serving TO pg_read_all_stats;
