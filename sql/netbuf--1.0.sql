/* sql/netbuf--1.0.sql */

-- complain if script is sourced in psql, rather than via CREATE EXTENSION
\echo Use "CREATE EXTENSION netbuf" to load this file. \quit

-- Turns the calling backend into a COPY BOTH server for one netbuf channel.
-- netbuf_connect (on the standby) runs it; it is not meant for psql.
-- max_reply_size: the largest reply the client accepts (NULL: no limit of
-- its own); a larger one is replaced by an error.
CREATE PROCEDURE @extschema@.serve(max_reply_size integer DEFAULT NULL)
LANGUAGE C
AS 'MODULE_PATHNAME', 'netbuf_serve';

COMMENT ON PROCEDURE @extschema@.serve(integer) IS
  'serve a netbuf channel over COPY BOTH until the client ends it';

-- Who may open a channel is decided by EXECUTE on serve() alone:
-- GRANT EXECUTE ON PROCEDURE netbuf.serve TO some_role;
REVOKE ALL ON PROCEDURE @extschema@.serve(integer) FROM PUBLIC;
GRANT USAGE ON SCHEMA @extschema@ TO PUBLIC;
