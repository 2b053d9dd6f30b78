--
-- Who may open a channel: EXECUTE on netbuf.serve(), and nothing else
--

SET client_min_messages = warning;
DROP ROLE IF EXISTS regress_netbuf_nogrant;
DROP ROLE IF EXISTS regress_netbuf_granted;
RESET client_min_messages;
CREATE ROLE regress_netbuf_nogrant;
CREATE ROLE regress_netbuf_granted;

-- The extension script revokes EXECUTE from PUBLIC: no grantee but the
-- owner, and PUBLIC may use the schema only.
SELECT a.grantee = p.proowner AS grantee_is_owner, a.privilege_type
  FROM pg_proc p, aclexplode(p.proacl) a
 WHERE p.oid = 'netbuf.serve(integer)'::regprocedure;
SELECT has_function_privilege('regress_netbuf_nogrant', 'netbuf.serve(integer)', 'EXECUTE');
SELECT has_schema_privilege('regress_netbuf_nogrant', 'netbuf', 'USAGE');
SELECT has_schema_privilege('regress_netbuf_nogrant', 'netbuf', 'CREATE');

-- A role without the grant is refused before netbuf runs.
SET ROLE regress_netbuf_nogrant;
CALL netbuf.serve();
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;

-- The grant is all it takes: netbuf itself now answers (and refuses a
-- limit of 0 before it serves anything).
GRANT EXECUTE ON PROCEDURE netbuf.serve TO regress_netbuf_granted;
SELECT has_function_privilege('regress_netbuf_granted', 'netbuf.serve(integer)', 'EXECUTE');
SET ROLE regress_netbuf_granted;
CALL netbuf.serve(max_reply_size => 0);
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;

REVOKE EXECUTE ON PROCEDURE netbuf.serve FROM regress_netbuf_granted;
DROP ROLE regress_netbuf_granted;
DROP ROLE regress_netbuf_nogrant;
