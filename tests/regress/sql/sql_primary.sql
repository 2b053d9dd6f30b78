--
-- The primary's SQL API (extension version 1.1): op codes answered by SQL
-- functions, registered in netbuf.ops; the view netbuf.serving; the update
-- from 1.0.  (Channels themselves are tested by tests/sql_primary.rs: a
-- pg_regress session cannot be one.)
--
-- Each error is followed by its SQLSTATE (\echo :LAST_ERROR_SQLSTATE).

CREATE FUNCTION regress_netbuf_handler(payload bytea) RETURNS bytea
  LANGUAGE sql AS $$ SELECT 'ok:'::bytea || payload $$;
CREATE FUNCTION regress_netbuf_other(payload bytea) RETURNS bytea
  LANGUAGE sql AS $$ SELECT payload $$;
CREATE FUNCTION regress_netbuf_text(payload text) RETURNS text
  LANGUAGE sql AS $$ SELECT payload $$;
CREATE FUNCTION regress_netbuf_two(payload bytea, extra int) RETURNS bytea
  LANGUAGE sql AS $$ SELECT payload $$;
CREATE FUNCTION regress_netbuf_set(payload bytea) RETURNS SETOF bytea
  LANGUAGE sql AS $$ SELECT payload $$;
CREATE PROCEDURE regress_netbuf_proc(payload bytea)
  LANGUAGE sql AS $$ SELECT 1 $$;

-- Registration, re-registration (the function is replaced), removal.
SELECT netbuf.register_op('h', 'regress_netbuf_handler(bytea)');
SELECT op, handler FROM netbuf.ops ORDER BY op;
SELECT netbuf.register_op('h', 'regress_netbuf_other(bytea)');
SELECT netbuf.register_op('\', 'regress_netbuf_handler(bytea)');
SELECT op, handler FROM netbuf.ops ORDER BY op;
SELECT netbuf.unregister_op('h');
SELECT netbuf.unregister_op('\');
SELECT count(*) AS registrations FROM netbuf.ops;

-- Refusals: built-in op codes, handlers that are not
-- (payload bytea) RETURNS bytea, an empty or NULL op code or handler,
-- removing what is not registered.
SELECT netbuf.register_op('E', 'regress_netbuf_handler(bytea)');
\echo :LAST_ERROR_SQLSTATE
SELECT netbuf.register_op('N', 'regress_netbuf_handler(bytea)');
\echo :LAST_ERROR_SQLSTATE
SELECT netbuf.register_op('w', 'regress_netbuf_text(text)');
\echo :LAST_ERROR_SQLSTATE
SELECT netbuf.register_op('w', 'regress_netbuf_two(bytea, int)');
\echo :LAST_ERROR_SQLSTATE
SELECT netbuf.register_op('w', 'regress_netbuf_set(bytea)');
\echo :LAST_ERROR_SQLSTATE
SELECT netbuf.register_op('w', 'regress_netbuf_proc(bytea)');
\echo :LAST_ERROR_SQLSTATE
SELECT netbuf.register_op('w', 'length(bytea)');
\echo :LAST_ERROR_SQLSTATE
SELECT netbuf.register_op('', 'regress_netbuf_handler(bytea)');
\echo :LAST_ERROR_SQLSTATE
SELECT netbuf.register_op(NULL, 'regress_netbuf_handler(bytea)');
\echo :LAST_ERROR_SQLSTATE
SELECT netbuf.register_op('w', NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT netbuf.unregister_op('w');
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) AS registrations FROM netbuf.ops;

-- Who may register: the extension's owner or a superuser.  EXECUTE is
-- revoked from PUBLIC, and a grant does not make a role the owner.
SET client_min_messages = warning;
DROP ROLE IF EXISTS regress_netbuf_registrar;
RESET client_min_messages;
CREATE ROLE regress_netbuf_registrar;
SELECT p.oid::regprocedure AS function, a.grantee = p.proowner AS grantee_is_owner, a.privilege_type
  FROM pg_proc p, aclexplode(p.proacl) a
 WHERE p.oid IN ('netbuf.register_op("char", regprocedure)'::regprocedure,
                 'netbuf.unregister_op("char")'::regprocedure)
 ORDER BY 1;
SET ROLE regress_netbuf_registrar;
SELECT netbuf.register_op('w', 'regress_netbuf_handler(bytea)');
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
GRANT EXECUTE ON FUNCTION netbuf.register_op("char", regprocedure),
                          netbuf.unregister_op("char") TO regress_netbuf_registrar;
SET ROLE regress_netbuf_registrar;
SELECT netbuf.register_op('w', 'regress_netbuf_handler(bytea)');
\echo :LAST_ERROR_SQLSTATE
SELECT netbuf.unregister_op('w');
\echo :LAST_ERROR_SQLSTATE
INSERT INTO netbuf.ops VALUES ('w', 'regress_netbuf_handler(bytea)');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM netbuf.serving;
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
REVOKE EXECUTE ON FUNCTION netbuf.register_op("char", regprocedure),
                           netbuf.unregister_op("char") FROM regress_netbuf_registrar;
DROP ROLE regress_netbuf_registrar;

-- netbuf.ops is the extension's configuration table (pg_dump keeps its
-- rows); netbuf.serving is for pg_read_all_stats.  (Its rows need a
-- channel, and on PostgreSQL 14-16 shared_preload_libraries: see
-- tests/sql_primary.rs.)
SELECT extconfig::regclass[] AS configuration, extcondition
  FROM pg_extension WHERE extname = 'netbuf';
SELECT attname, format_type(atttypid, atttypmod) AS type
  FROM pg_attribute WHERE attrelid = 'netbuf.serving'::regclass AND attnum > 0
 ORDER BY attnum;
SELECT has_table_privilege('pg_read_all_stats', 'netbuf.serving', 'SELECT') AS monitor_may_read,
       has_table_privilege('public', 'netbuf.serving', 'SELECT') AS public_may_read;

-- The update from 1.0: the same objects as a fresh 1.1 installation (the
-- extension's members, and the functions, relations and views of its
-- schema with their privileges).
CREATE FUNCTION regress_netbuf_objects() RETURNS SETOF text LANGUAGE sql AS $$
  SELECT pg_describe_object(classid, objid, 0)
    FROM pg_depend
   WHERE refclassid = 'pg_extension'::regclass AND deptype = 'e'
     AND refobjid = (SELECT oid FROM pg_extension WHERE extname = 'netbuf')
  UNION ALL
  SELECT p.oid::regprocedure::text || ' ' || p.prokind::text || ' ' || p.provolatile::text
         || ' ' || p.prosrc || ' ' || coalesce(p.proacl::text, '-')
    FROM pg_proc p WHERE p.pronamespace = 'netbuf'::regnamespace
  UNION ALL
  SELECT c.relname::text || ' ' || c.relkind::text || ' ' || coalesce(c.relacl::text, '-')
    FROM pg_class c WHERE c.relnamespace = 'netbuf'::regnamespace
  UNION ALL
  SELECT viewname::text || ' ' || definition FROM pg_views WHERE schemaname = 'netbuf'
  UNION ALL
  SELECT 'configuration ' || extconfig::regclass[]::text
    FROM pg_extension WHERE extname = 'netbuf'
$$;
CREATE TEMP TABLE regress_netbuf_fresh AS SELECT * FROM regress_netbuf_objects() AS object;
DROP EXTENSION netbuf;
CREATE EXTENSION netbuf VERSION '1.0';
SELECT extversion FROM pg_extension WHERE extname = 'netbuf';
SELECT to_regclass('netbuf.ops') AS ops_in_1_0;
ALTER EXTENSION netbuf UPDATE;
SELECT extversion FROM pg_extension WHERE extname = 'netbuf';
-- The differences (none), and how many objects were compared.
(SELECT object FROM regress_netbuf_fresh
 EXCEPT ALL
 SELECT * FROM regress_netbuf_objects())
UNION ALL
(SELECT * FROM regress_netbuf_objects()
 EXCEPT ALL
 SELECT object FROM regress_netbuf_fresh);
SELECT count(*) > 10 AS compared_many FROM regress_netbuf_fresh;
DROP TABLE regress_netbuf_fresh;
DROP FUNCTION regress_netbuf_objects();
-- The updated extension works.
SELECT netbuf.register_op('h', 'regress_netbuf_handler(bytea)');
SELECT op, handler FROM netbuf.ops;
SELECT netbuf.unregister_op('h');

DROP FUNCTION regress_netbuf_handler(bytea), regress_netbuf_other(bytea),
  regress_netbuf_text(text), regress_netbuf_two(bytea, int), regress_netbuf_set(bytea);
DROP PROCEDURE regress_netbuf_proc(bytea);
