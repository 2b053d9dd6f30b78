--
-- CREATE EXTENSION netbuf, and a database without it
--
-- Each error is followed by its SQLSTATE (\echo :LAST_ERROR_SQLSTATE); in
-- gucs.sql, where core's message texts differ between PostgreSQL majors,
-- errors show their SQLSTATE alone (VERBOSITY sqlstate).

-- Without the extension, a channel's CALL names the missing schema
-- (netbuf_connect and the Rust client add a hint to run CREATE EXTENSION).
CALL netbuf.serve();
\echo :LAST_ERROR_SQLSTATE

-- A role with CREATE on the database makes schema netbuf first
-- (CVE-2023-39417 class): CREATE EXTENSION must refuse to put netbuf's
-- objects into it, where its owner could replace or wrap them.
SET client_min_messages = warning;
DROP ROLE IF EXISTS regress_netbuf_mallory;
RESET client_min_messages;
CREATE ROLE regress_netbuf_mallory;
SELECT format('GRANT CREATE ON DATABASE %I TO regress_netbuf_mallory',
              current_database()) \gexec
SET ROLE regress_netbuf_mallory;
CREATE SCHEMA netbuf;
RESET ROLE;
-- (Newer majors add a CONTEXT that names the extension script's line:
-- not shown, for the same output on PostgreSQL 14 to 18.)
\set SHOW_CONTEXT never
CREATE EXTENSION netbuf;
\echo :LAST_ERROR_SQLSTATE
\set SHOW_CONTEXT errors
-- Nothing was put into mallory's schema, and no extension is recorded.
SELECT count(*) AS netbuf_objects
  FROM (SELECT oid FROM pg_proc WHERE pronamespace = 'netbuf'::regnamespace
        UNION ALL
        SELECT oid FROM pg_class WHERE relnamespace = 'netbuf'::regnamespace
        UNION ALL
        SELECT oid FROM pg_type WHERE typnamespace = 'netbuf'::regnamespace) o;
SELECT count(*) AS extensions FROM pg_extension WHERE extname = 'netbuf';
DROP SCHEMA netbuf;
SELECT format('REVOKE CREATE ON DATABASE %I FROM regress_netbuf_mallory',
              current_database()) \gexec
DROP ROLE regress_netbuf_mallory;

-- Without a squatter the extension installs, in a schema of its own that
-- its creator owns and that goes with DROP EXTENSION.
CREATE EXTENSION netbuf;
SELECT n.nspowner = r.oid AS schema_owned_by_creator,
       d.deptype AS dependency_on_extension
  FROM pg_namespace n
  JOIN pg_roles r ON r.rolname = current_user
  JOIN pg_depend d ON d.classid = 'pg_namespace'::regclass AND d.objid = n.oid
   AND d.refclassid = 'pg_extension'::regclass
 WHERE n.nspname = 'netbuf';
SELECT extname, extversion, extrelocatable
  FROM pg_extension WHERE extname = 'netbuf';
-- Its functions and procedures.
SELECT oid::regprocedure AS object, prokind, prosecdef, obj_description(oid, 'pg_proc')
  FROM pg_proc WHERE pronamespace = 'netbuf'::regnamespace ORDER BY oid::regprocedure::text COLLATE "C";
