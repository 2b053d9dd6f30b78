/* sql/netbuf--1.0.sql */

-- complain if script is sourced in psql, rather than via CREATE EXTENSION
\echo Use "CREATE EXTENSION netbuf" to load this file. \quit

-- The extension's own schema, created here rather than named in
-- netbuf.control: CREATE EXTENSION would adopt a schema "netbuf" that
-- someone else created beforehand (and could plant objects in), while
-- CREATE SCHEMA without IF NOT EXISTS refuses it.  The schema becomes a
-- member of the extension and goes with DROP EXTENSION.
CREATE SCHEMA netbuf;

-- Turns the calling backend into a COPY BOTH server for one netbuf channel.
-- netbuf_connect (on the standby) runs it; it is not meant for psql.
-- max_reply_size: the largest reply the client accepts (NULL: no limit of
-- its own); a larger one is replaced by an error.
CREATE PROCEDURE netbuf.serve(max_reply_size integer DEFAULT NULL)
LANGUAGE C
AS 'MODULE_PATHNAME', 'netbuf_serve';

COMMENT ON PROCEDURE netbuf.serve(integer) IS
  'serve a netbuf channel over COPY BOTH until the client ends it';

-- Who may open a channel is decided by EXECUTE on serve() alone:
-- GRANT EXECUTE ON PROCEDURE netbuf.serve TO some_role;
REVOKE ALL ON PROCEDURE netbuf.serve(integer) FROM PUBLIC;
GRANT USAGE ON SCHEMA netbuf TO PUBLIC;
