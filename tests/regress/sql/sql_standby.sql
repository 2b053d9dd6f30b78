--
-- The standby's SQL functions (netbuf.request, netbuf.requests,
-- netbuf.channels, netbuf.disconnect, netbuf.disconnect_all) on a single
-- server: a loopback channel to this very server, privileges and the
-- password rule.  tests/sql_standby.rs runs them on a real standby.
--

SET client_min_messages = warning;
DROP ROLE IF EXISTS regress_netbuf_sql_nogrant;
DROP ROLE IF EXISTS regress_netbuf_sql_caller;
RESET client_min_messages;
CREATE ROLE regress_netbuf_sql_nogrant;
CREATE ROLE regress_netbuf_sql_caller;

-- The functions, and EXECUTE revoked from PUBLIC: the owner is the only
-- grantee.
SELECT p.oid::regprocedure AS function, p.proretset, p.provolatile, p.proparallel,
       (SELECT array_agg(a.grantee = p.proowner) FROM aclexplode(p.proacl) a) AS owner_only
  FROM pg_proc p
 WHERE p.pronamespace = 'netbuf'::regnamespace AND p.prokind = 'f'
   AND p.proname IN ('request', 'requests', 'channels', 'disconnect', 'disconnect_all')
 ORDER BY p.proname;
SELECT pg_get_function_result('netbuf.channels()'::regprocedure);

-- Without the grant, a role is refused before netbuf runs.
SET ROLE regress_netbuf_sql_nogrant;
\set VERBOSITY sqlstate
SELECT netbuf.request('E', 'x');
SELECT netbuf.channels();
SELECT netbuf.disconnect_all();
\set VERBOSITY default
RESET ROLE;

-- This server over its Unix socket, as the current (super)user: kept in a
-- psql variable, so that no port or directory reaches the output.
SELECT format('host=%s port=%s user=%s dbname=%s application_name=regress_netbuf_sql',
              split_part(current_setting('unix_socket_directories'), ',', 1),
              current_setting('port'), current_user, current_database()) AS loopback \gset

-- A loopback channel: the reply is the message as the serving backend
-- sent it, 'E' || payload for the built-in echo.
SELECT encode(netbuf.request('E', 'hello', :'loopback'), 'escape');
SELECT netbuf.request('N', int4send(100) || int4send(200) || int4send(300), :'loopback');
SELECT netbuf.requests('E', ARRAY['a', 'bc']::bytea[], :'loopback');
SELECT netbuf.requests('E', '{}', :'loopback');
SELECT netbuf.request('E', NULL, :'loopback') IS NULL AS null_payload;
SELECT netbuf.requests('E', ARRAY['a', NULL]::bytea[], :'loopback');
SELECT state, role = current_user AS my_role, serving_pid <> pg_backend_pid() AS another_backend,
       requests, replies, errors, bytes_sent, bytes_received, last_error, pinned,
       conninfo LIKE '% application_name=regress_netbuf_sql' AS conninfo_shown
  FROM netbuf.channels();
-- The channel's serving backend is in CALL netbuf.serve().
SELECT count(*) FROM pg_stat_activity
 WHERE pid = (SELECT serving_pid FROM netbuf.channels()) AND query LIKE 'CALL netbuf.serve(%';
-- The same channel serves the next call.
SELECT serving_pid AS first_pid FROM netbuf.channels() \gset
SELECT length(netbuf.request('E', 'again', :'loopback'));
SELECT serving_pid = :first_pid AS same_serving_backend FROM netbuf.channels();
-- An op the serving backend does not know: its ERROR, and the channel goes on.
SELECT netbuf.request('#', 'x', :'loopback');
SELECT encode(netbuf.request('E', 'after', :'loopback'), 'escape');
SELECT requests, replies, errors, last_error FROM netbuf.channels();
SELECT netbuf.disconnect(:'loopback');
SELECT netbuf.disconnect(:'loopback');
SELECT count(*) FROM netbuf.channels();

-- conninfo NULL means primary_conninfo, which is unset on a primary.
SELECT netbuf.request('E', 'x');

-- The password rule: a non-superuser must authenticate with a password it
-- gives; this server trusts every local connection, so all three refuse.
GRANT EXECUTE ON FUNCTION netbuf.request("char", bytea, text), netbuf.channels(),
      netbuf.disconnect_all() TO regress_netbuf_sql_caller;
SET ROLE regress_netbuf_sql_caller;
SELECT netbuf.request('E', 'x');
SELECT netbuf.request('E', 'x', :'loopback');
SELECT netbuf.request('E', 'x', :'loopback' || ' password=not-asked-for');
SELECT count(*) FROM netbuf.channels();
-- Only a superuser sets netbuf.password_required.
\set VERBOSITY sqlstate
SET netbuf.password_required = off;
\set VERBOSITY default
RESET ROLE;
-- A superuser allows it (here for the session; ALTER ROLE ... SET for a role).
SET netbuf.password_required = off;
SET ROLE regress_netbuf_sql_caller;
SELECT encode(netbuf.request('E', 'allowed', :'loopback'), 'escape');
SELECT role, state FROM netbuf.channels();
SELECT netbuf.disconnect_all();
RESET ROLE;
RESET netbuf.password_required;

DROP OWNED BY regress_netbuf_sql_caller;
DROP ROLE regress_netbuf_sql_caller;
DROP ROLE regress_netbuf_sql_nogrant;
