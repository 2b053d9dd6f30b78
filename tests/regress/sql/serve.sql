--
-- CALL netbuf.serve() outside a channel: what it refuses, before it turns
-- the session into a COPY BOTH server
--

-- The client's reply limit must be positive.
CALL netbuf.serve(max_reply_size => 0);
\echo :LAST_ERROR_SQLSTATE
CALL netbuf.serve(-1);
\echo :LAST_ERROR_SQLSTATE

-- Only a top-level CALL outside a transaction block: the serve loop ends
-- the CALL's transaction so that an idle channel holds no snapshot.
BEGIN;
CALL netbuf.serve();
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;

-- Nor from a function (an atomic context) ...
CREATE FUNCTION regress_serve_from_a_function() RETURNS void
LANGUAGE plpgsql AS $$BEGIN CALL netbuf.serve(); END$$;
SELECT regress_serve_from_a_function();
\echo :LAST_ERROR_SQLSTATE
DROP FUNCTION regress_serve_from_a_function();

-- ... nor from a DO block inside a transaction block.
BEGIN;
DO $$BEGIN CALL netbuf.serve(); END$$;
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;
